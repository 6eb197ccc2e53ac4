"""Clients that misbehave at the protocol level: guessing passwords, oversized credentials, floods
of logins and connections, idle and garbage connections, empty tickets, empty uploads. The server
answers each with a clear error, keeps its memory, and goes on serving everyone else."""

import base64
import socket
import threading
import time

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from harness import Server, connect, demo_mesh, status_of


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    mesh = demo_mesh(tmp_path_factory.mktemp("hostile") / "mesh",
                     {"max_connections": 64, "idle_timeout_secs": 3})
    with Server(mesh) as s:
        yield s


def _client(server):
    return flight.FlightClient(server.uri)


def _basic(user, password):
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return [(b"authorization", f"Basic {raw}".encode())]


def _login(server, user, password):
    client = _client(server)
    try:
        return client.authenticate_basic_token(user, password)
    finally:
        client.close()


def _works(server):
    with connect(server.uri, "analyst") as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM sales.gold.daily_revenue")
        return cur.fetchone()[0] == 360


def test_password_guessing_backs_off_and_spares_other_users(server):
    for _ in range(5):
        with pytest.raises(flight.FlightUnauthenticatedError):
            _login(server, "finance", "guess")
    # The right password waits too: guessing cannot go on at full speed.
    with pytest.raises(Exception) as held:
        _login(server, "finance", "finance")
    assert "too many failed logins" in str(held.value)
    assert "try again in" in str(held.value)
    # Other users log in as usual.
    assert _works(server)
    time.sleep(1.2)
    assert _login(server, "finance", "finance")


def test_oversized_credentials_get_a_clear_answer(server):
    with pytest.raises(flight.FlightUnauthenticatedError) as err:
        _login(server, "u" * 65_536, "x")
    assert "at most 256 bytes" in str(err.value)
    client = _client(server)
    options = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer " + b"t" * 40_000)])
    with pytest.raises(flight.FlightUnauthenticatedError) as err:
        list(client.do_action(flight.Action("meshql.NoSuchAction", b""), options=options))
    assert "credentials are at most" in str(err.value)
    assert _works(server)


def test_a_flood_of_wrong_logins_keeps_memory_and_serves_others(server):
    before = server.rss()
    errors = []

    def guess(i):
        try:
            _login(server, f"nobody{i}", "wrong")
        except flight.FlightError as e:
            errors.append(type(e).__name__)

    # 48 at once: within server.max_connections (64) of this server, beyond the Argon2 slots.
    threads = [threading.Thread(target=guess, args=(i,)) for i in range(48)]
    for t in threads:
        t.start()
    assert _works(server)
    for t in threads:
        t.join(timeout=120)
    assert len(errors) == 48
    # Argon2 runs a few checks at a time (19 MiB each), not a hundred.
    assert server.rss() - before < 400 << 20, (before >> 20, server.rss() >> 20)


def test_empty_tickets_and_empty_uploads_are_answered(server):
    client = _client(server)
    token = client.authenticate_basic_token("admin", "admin")
    options = flight.FlightCallOptions(headers=[token])
    with pytest.raises(Exception) as err:
        client.do_get(flight.Ticket(b""), options=options).read_all()
    assert "not a ticket of this server" in str(err.value)
    assert "Unimplemented" not in str(err.value)
    # Bytes that do not decode, and a known message type with a broken body: the user's error in
    # words, never the decoder's debug dump nor Internal.
    type_url = b"type.googleapis.com/arrow.flight.protocol.sql.TicketStatementQuery"
    broken = b"\x0a" + bytes([len(type_url)]) + type_url + b"\x12\x02\x0a\xff"
    for ticket in (b"\xff\x00garbage\x01", broken):
        with pytest.raises(Exception) as err:
            client.do_get(flight.Ticket(ticket), options=options).read_all()
        # pyarrow raises InvalidArgument as ArrowInvalid (Internal would be FlightInternalError).
        assert isinstance(err.value, pa.ArrowInvalid), repr(err.value)
        assert "not a ticket of this server" in str(err.value), err.value
        assert "DecodeError" not in str(err.value), err.value
    # ADBC sends nothing at all for an upload of no rows: a clear error, not Unimplemented.
    with connect(server.uri, "sales") as conn, conn.cursor() as cur:
        empty = pa.table({"id": pa.array([], pa.int64())})
        with pytest.raises(Exception) as err:
            cur.adbc_ingest("nothing_yet", empty, mode="create", catalog_name="sales",
                            db_schema_name="raw")
        assert status_of(err.value) == "InvalidArgument", err.value
        assert "the upload is empty" in str(err.value)


def test_connection_floods_idle_and_garbage_connections(server):
    # More connections than server.max_connections: the extra ones are closed, the server lives.
    sockets = []
    for _ in range(80):
        s = socket.create_connection(("127.0.0.1", int(server.uri.rsplit(":", 1)[1])))
        sockets.append(s)
    time.sleep(0.5)
    closed = 0
    for s in sockets:
        s.settimeout(0.2)
        try:
            if s.recv(1) == b"":
                closed += 1
        except (socket.timeout, ConnectionResetError):
            pass
    assert closed >= 80 - 64, closed
    # Garbage instead of HTTP/2 costs that connection only.
    sockets[0].sendall(b"\x00" * 4096 + b"GET / HTTP/1.1\r\n\r\n")
    for s in sockets:
        s.close()
    # An idle connection is closed after server.idle_timeout_secs.
    idle = socket.create_connection(("127.0.0.1", int(server.uri.rsplit(":", 1)[1])))
    idle.settimeout(10)
    started = time.monotonic()
    try:
        while idle.recv(4096):  # whatever the server greets with, then the end
            pass
    except ConnectionResetError:
        pass
    assert time.monotonic() - started < 8
    idle.close()
    assert server.alive()
    assert _works(server)
