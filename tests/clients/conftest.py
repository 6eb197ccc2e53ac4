"""Fixtures for the client suite: a real `meshql serve` on a free port, over a private copy of
the bundled demo mesh."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# A long-lived admin token the server accepts (MESHQL_ADMIN_TOKEN); test-only.
ADMIN_TOKEN = "test-admin-token-0123456789"

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "robustness"))

from harness import meshql_binary  # noqa: E402  (one place says where the binary is)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """Starts `meshql serve --addr 127.0.0.1:0`; yields its grpc:// URI once it is listening."""
    mesh = tmp_path_factory.mktemp("mesh")
    shutil.copytree(REPO / "catalog", mesh / "catalog")
    shutil.copytree(REPO / "sql", mesh / "sql")
    env = dict(os.environ, MESHQL_ADMIN_TOKEN=ADMIN_TOKEN)
    proc = subprocess.Popen(
        [meshql_binary(), "--mesh", str(mesh), "serve", "--addr", "127.0.0.1:0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    uri = None
    seen = []
    # The server prints its address once the port is bound; no sleeping, no polling.
    for line in proc.stdout:
        seen.append(line)
        m = re.search(r"on (grpc://127\.0\.0\.1:\d+)", line)
        if m:
            uri = m.group(1)
            break
    if uri is None:
        proc.kill()
        raise RuntimeError("meshql serve did not start:\n" + "".join(seen))
    try:
        yield uri
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture()
def connect(server):
    """Opens an ADBC connection as one of the demo principals (each password is the user name)."""
    import adbc_driver_flightsql.dbapi as flightsql

    opened = []

    def open_as(user="analyst", password=None, **db_kwargs):
        if user is not None:
            db_kwargs.setdefault("username", user)
            db_kwargs.setdefault("password", password if password is not None else user)
        conn = flightsql.connect(server, db_kwargs=db_kwargs, autocommit=True)
        opened.append(conn)
        return conn

    yield open_as
    for conn in opened:
        conn.close()
