"""Fixtures for the client suite: a real `meshql serve` on a free port, over a private copy of
the bundled demo mesh."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def meshql_binary() -> str:
    exe = os.environ.get("MESHQL_BIN")
    if exe:
        return exe
    target = os.environ.get("CARGO_TARGET_DIR", str(REPO / "target"))
    return str(Path(target) / "debug" / "meshql")


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """Starts `meshql serve --addr 127.0.0.1:0`; yields its grpc:// URI once it is listening."""
    mesh = tmp_path_factory.mktemp("mesh")
    shutil.copytree(REPO / "catalog", mesh / "catalog")
    shutil.copytree(REPO / "sql", mesh / "sql")
    proc = subprocess.Popen(
        [meshql_binary(), "--mesh", str(mesh), "serve", "--addr", "127.0.0.1:0"],
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
