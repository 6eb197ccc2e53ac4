"""Stopping the server: SIGTERM ends it promptly — at once when idle, after at most
`server.shutdown_grace_secs` when a request would run on — even when whoever read its output
is gone (a closed pipe must neither kill nor hang it)."""

import os
import re
import signal
import subprocess
import threading
import time

import pytest

from harness import ADMIN_TOKEN, connect, demo_mesh, meshql_binary

GRACE = 3


def _start(mesh):
    proc = subprocess.Popen(
        [meshql_binary(), "--mesh", str(mesh), "serve", "--addr", "127.0.0.1:0"],
        env=dict(os.environ, MESHQL_ADMIN_TOKEN=ADMIN_TOKEN),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    for line in proc.stdout:
        m = re.search(r"on (grpc://127\.0\.0\.1:\d+)", line)
        if m:
            # Whoever read the output is gone from here on.
            proc.stdout.close()
            return proc, m.group(1)
        if time.monotonic() > deadline:
            break
    proc.kill()
    pytest.fail("meshql serve did not start")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    return demo_mesh(tmp_path_factory.mktemp("shutdown") / "mesh",
                     {"shutdown_grace_secs": GRACE, "query_timeout_secs": 600})


def _stopped_within(proc, seconds):
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"the server was still running {seconds} s after SIGTERM")
    return code, time.monotonic() - started


def test_sigterm_stops_an_idle_server_whose_output_is_unread(mesh):
    proc, uri = _start(mesh)
    with connect(uri) as conn, conn.cursor() as cur:
        # Requests that log (one fails) after the reader of the output left.
        cur.execute("SELECT 1 AS one")
        assert cur.fetchall() == [(1,)]
        with pytest.raises(Exception):
            cur.execute("SELECT * FROM no_such_table")
    code, took = _stopped_within(proc, 10)
    assert code == 0
    assert took < 5, took


def test_sigterm_ends_a_server_with_a_long_query_after_the_grace(mesh):
    proc, uri = _start(mesh)
    outcome = {}

    def long_query():
        try:
            with connect(uri, timeout=60) as conn, conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM generate_series(1, 50000000000) WHERE value % 7 = 3")
                cur.fetchall()
                outcome["result"] = "answered"
        except Exception as e:  # the server went away under it: expected
            outcome["result"] = str(e)[:200]

    t = threading.Thread(target=long_query, daemon=True)
    t.start()
    time.sleep(2)
    code, took = _stopped_within(proc, GRACE + 10)
    assert code == 0
    assert GRACE - 1 <= took < GRACE + 5, took
    t.join(timeout=30)
    assert outcome.get("result") != "answered"
