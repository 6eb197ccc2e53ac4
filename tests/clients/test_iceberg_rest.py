"""meshql's Iceberg tables registered in an Iceberg REST catalog: Apache Iceberg's own REST
catalog server (tests/iceberg-rest, resolved with Maven) on a loopback port, as installations
running Polaris, Lakekeeper, Nessie or Gravitino would configure it. PyIceberg reads through the
same catalog exactly what meshql serves; commits of both sides are seen by the other; a catalog
that cannot be reached or is misconfigured is named in the error, and the other tables are
still served."""

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from pyiceberg.catalog.rest import RestCatalog

from harness import Server, connect, demo_mesh, run, status_of

REPO = Path(__file__).resolve().parents[2]
SERVER_MAIN = "org.apache.iceberg.rest.RESTCatalogServer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def class_path(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("iceberg-rest") / "classpath"
    done = subprocess.run(
        ["mvn", "-q", "-B", "-f", str(REPO / "tests/iceberg-rest/pom.xml"),
         "dependency:build-classpath", f"-Dmdep.outputFile={out}"],
        capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return out.read_text().strip()


@pytest.fixture()
def rest_catalog(class_path, tmp_path):
    """A fresh REST catalog server (its own SQLite database) on a free port; yields its URL."""
    port = free_port()
    env = dict(os.environ,
               CATALOG_URI=f"jdbc:sqlite:file:{tmp_path}/rest-catalog.db",
               CATALOG_WAREHOUSE=f"file://{tmp_path}/rest-warehouse",
               CATALOG_REST_PORT=str(port))
    log = open(tmp_path / "rest-catalog.log", "w")
    server = subprocess.Popen(["java", "-cp", class_path, SERVER_MAIN],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/v1/config", timeout=5):
                break
        except OSError:
            assert server.poll() is None, (tmp_path / "rest-catalog.log").read_text()
            assert time.monotonic() < deadline, "the REST catalog did not start"
            time.sleep(0.3)
    try:
        yield uri
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def with_rest_catalog(mesh: Path, uri: str, extra: str = "") -> Path:
    # Appended as text: a YAML round trip would turn the policies' `on:` keys into `true`.
    with open(mesh / "catalog" / "mesh.yaml", "a") as f:
        f.write(f"iceberg_catalog:\n  type: rest\n  uri: {uri}\n{extra}")
    return mesh


def query(uri: str, sql: str, user: str = "admin"):
    with connect(uri, user) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table()


def key(row: dict):
    return (row["region"], row["month"])


def test_meshql_commits_its_iceberg_tables_through_the_rest_catalog_and_pyiceberg_reads_them(
        tmp_path, rest_catalog):
    mesh = with_rest_catalog(demo_mesh(tmp_path / "mesh"), rest_catalog)
    done = run(["run"], mesh)
    assert done.returncode == 0, done.stdout + done.stderr
    # Nothing went to the embedded catalog.
    assert not (mesh / "warehouse/_mesh/iceberg.db").exists()
    catalog = RestCatalog("rest", uri=rest_catalog)
    assert sorted(catalog.list_namespaces("finance")) == [("finance", "gold"), ("finance", "raw"),
                                                          ("finance", "silver")]
    product = catalog.load_table("finance.gold.revenue_vs_target")
    assert product.location().endswith("/warehouse/finance/gold/revenue_vs_target")
    with Server(mesh) as server:
        served = query(server.uri, "SELECT * FROM finance.gold.revenue_vs_target")
        assert served.num_rows == 12
        assert sorted(served.to_pylist(), key=key) == sorted(product.scan().to_arrow().to_pylist(), key=key)
        # A full refresh is one more overwrite snapshot, committed through the catalog; the
        # first one stays readable by time travel.
        done = run(["run", "--force", "--select", "finance.silver.revenue_targets"], mesh)
        assert done.returncode == 0, done.stdout + done.stderr
        table = catalog.load_table("finance.silver.revenue_targets")
        assert len(table.snapshots()) == 2
        assert table.current_snapshot().summary.operation.value == "overwrite"
        old = query(server.uri, "SELECT count(*) AS n FROM finance.silver.revenue_targets VERSION AS OF 1")
        assert old.to_pylist() == [{"n": 12}]


def test_a_commit_another_engine_makes_through_the_rest_catalog_is_served_and_built_on(
        tmp_path, rest_catalog):
    mesh = with_rest_catalog(demo_mesh(tmp_path / "mesh", {"catalog_staleness_secs": 1}), rest_catalog)
    done = run(["run"], mesh)
    assert done.returncode == 0, done.stdout + done.stderr
    catalog = RestCatalog("rest", uri=rest_catalog)
    raw = catalog.load_table("finance.raw.revenue_targets")
    before = raw.scan().to_arrow()
    raw.append(before.slice(0, 2))
    with Server(mesh) as server:
        count = "SELECT count(*) AS n FROM finance.raw.revenue_targets"
        deadline = time.monotonic() + 30
        seen = None
        while time.monotonic() < deadline and seen != 14:
            seen = query(server.uri, count).to_pylist()[0]["n"]
            time.sleep(0.3)
        assert seen == 14
    # meshql's next commit goes on top of PyIceberg's, through the same catalog.
    done = run(["run", "--force", "--select", "finance.raw.revenue_targets"], mesh)
    assert done.returncode == 0, done.stdout + done.stderr
    table = catalog.load_table("finance.raw.revenue_targets")
    assert table.scan().to_arrow().num_rows == 12
    assert [s.summary.operation.value for s in table.snapshots()] == ["overwrite", "append", "overwrite"]


def test_concurrent_commits_through_the_rest_catalog_all_land(tmp_path, rest_catalog):
    """Four processes replace one table at once: the catalog refuses every commit of a race but
    one (409), and each loser retries on the winner's snapshot, so every run lands."""
    from harness import meshql_binary

    mesh = with_rest_catalog(demo_mesh(tmp_path / "mesh"), rest_catalog)
    done = run(["run"], mesh)
    assert done.returncode == 0, done.stdout + done.stderr
    name = "finance.silver.revenue_targets"
    runs = [subprocess.Popen([meshql_binary(), "--mesh", str(mesh), "run", "--force", "--select", name],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(4)]
    outputs = [r.communicate(timeout=300)[0] for r in runs]
    assert [r.returncode for r in runs] == [0] * 4, outputs
    table = RestCatalog("rest", uri=rest_catalog).load_table(name)
    assert len({s.sequence_number for s in table.snapshots()}) == 5
    assert table.scan().to_arrow().num_rows == 12


def test_an_unreachable_rest_catalog_is_named_and_the_delta_tables_are_still_served(
        tmp_path, rest_catalog):
    mesh = demo_mesh(tmp_path / "mesh")
    # Built once with the catalog up, then served with the catalog's address gone.
    with_rest_catalog(mesh, rest_catalog)
    done = run(["run"], mesh)
    assert done.returncode == 0, done.stdout + done.stderr
    text = (mesh / "catalog/mesh.yaml").read_text()
    gone = f"http://127.0.0.1:{free_port()}"
    (mesh / "catalog/mesh.yaml").write_text(text.replace(rest_catalog, gone))
    with Server(mesh, extra_args=["--no-build"]) as server:
        with pytest.raises(Exception) as caught:
            query(server.uri, "SELECT * FROM finance.gold.revenue_vs_target")
        assert status_of(caught.value) == "Unavailable", caught.value
        assert f"the Iceberg REST catalog `{gone}/` cannot be reached" in str(caught.value)
        assert query(server.uri, "SELECT count(*) AS n FROM sales.gold.daily_revenue").num_rows == 1
    done = run(["run", "--force", "--select", "finance.raw.revenue_targets"], mesh)
    assert done.returncode != 0
    assert "cannot be reached" in done.stdout + done.stderr


@pytest.mark.parametrize("settings, words", [
    ("iceberg_catalog:\n  type: rest\n", ["mesh.yaml:", "needs its `uri`"]),
    ("iceberg_catalog:\n  type: rest\n  uri: ftp://x\n", ["mesh.yaml:", "invalid REST catalog URL `ftp://x`"]),
    ("iceberg_catalog:\n  token: env:X\n", ["mesh.yaml:", "`token` is a setting of REST catalogs"]),
    ("iceberg_catalog:\n  type: glue\n", ["mesh.yaml:", "glue"]),
    ("iceberg_catalog:\n  name: crm\n", ["mesh.yaml:", ":9: `name` is a setting of a source", "always named `meshql`"]),
])
def test_bad_catalog_settings_are_reported_with_their_position(tmp_path, settings, words):
    mesh = demo_mesh(tmp_path / "mesh")
    with open(mesh / "catalog" / "mesh.yaml", "a") as f:
        f.write(settings)
    done = run(["check"], mesh)
    assert done.returncode == 2, done.stdout + done.stderr
    for word in words:
        assert word in done.stdout + done.stderr, done.stdout + done.stderr


def test_a_token_from_an_unset_variable_is_refused_naming_it(tmp_path, rest_catalog):
    mesh = with_rest_catalog(demo_mesh(tmp_path / "mesh"), rest_catalog,
                             "  token: env:MESHQL_TEST_UNSET_TOKEN\n")
    done = run(["run"], mesh)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "`MESHQL_TEST_UNSET_TOKEN`, which is not set" in done.stdout + done.stderr


def test_a_catalog_answering_nonsense_is_named_and_nothing_is_written(tmp_path):
    """A server at the catalog's address that is no Iceberg catalog (a web page for every
    request): the error says what it answered, and no table is created."""
    import http.server
    import threading

    class Page(http.server.BaseHTTPRequestHandler):
        def answer(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>not a catalog</html>")

        do_GET = do_POST = answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        mesh = with_rest_catalog(demo_mesh(tmp_path / "mesh"), uri)
        done = run(["run", "--select", "finance.raw.revenue_targets"], mesh)
    finally:
        server.shutdown()
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert f"the Iceberg REST catalog `{uri}/` answered `finance.raw.revenue_targets` with something that is not a table" in output, output
    assert not (mesh / "warehouse/finance/raw/revenue_targets/metadata").exists()


def test_the_token_is_sent_and_a_refusal_of_it_says_what_to_check(tmp_path):
    """A catalog that refuses the credentials (401, with a REST error body): the token from the
    environment was sent as a bearer token, the extra header too, and the error names the
    setting to fix."""
    import http.server
    import json
    import threading

    seen = []

    class Refusing(http.server.BaseHTTPRequestHandler):
        def answer(self):
            seen.append((self.headers.get("Authorization"), self.headers.get("X-Tenant")))
            body = json.dumps({"error": {"message": "token expired", "type": "NotAuthorizedException",
                                         "code": 401}}).encode()
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        mesh = with_rest_catalog(demo_mesh(tmp_path / "mesh"), uri,
                                 "  token: env:MESHQL_TEST_REST_TOKEN\n  headers:\n    X-Tenant: acme\n")
        done = run(["run", "--select", "finance.raw.revenue_targets"], mesh,
                   env=dict(os.environ, MESHQL_TEST_REST_TOKEN="s3cret"))
    finally:
        server.shutdown()
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert seen and set(seen) == {("Bearer s3cret", "acme")}, seen
    assert "refused to read its configuration (401 Unauthorized): token expired; check iceberg_catalog.token" in output, output
    assert "s3cret" not in output
