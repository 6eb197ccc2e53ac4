"""Tables other engines write, served read-only as `sources`: Apache Iceberg tables PyIceberg
creates and appends to (through its SQLite catalog), and Delta tables the `deltalake` package
writes. meshql must serve exactly the rows those libraries read back, see their next commit
without a restart, and answer a broken table with an error naming it while serving the rest."""

import datetime
import decimal
import time
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from deltalake import DeltaTable, write_deltalake
from pyiceberg.catalog.sql import SqlCatalog

from harness import Server, connect, demo_mesh, run, status_of

# How long a commit by another engine may take to be served: the staleness bound set below, plus
# the planning caches' check of the table's identity, with room for a slow machine.
SEEN_WITHIN_SECS = 30


def people(first_id: int, names: list[str]) -> pa.Table:
    """Rows of every type both formats carry, with NULLs and non-ASCII text."""
    n = len(names)
    ids = list(range(first_id, first_id + n))
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "name": pa.array(names),
        "score": pa.array([None if i % 3 == 2 else i * 1.25 for i in ids]),
        "born": pa.array([datetime.date(1980 + i % 30, 1 + i % 12, 1 + i % 28) for i in ids]),
        "seen": pa.array([datetime.datetime(2026, 1, 1, 12, 0, i % 60) for i in ids], pa.timestamp("us")),
        "seen_utc": pa.array([datetime.datetime(2026, 3, 1, i % 24, 0, 0) for i in ids],
                             pa.timestamp("us", tz="UTC")),
        "amount": pa.array([decimal.Decimal(i) / 100 for i in ids], pa.decimal128(10, 2)),
        "active": pa.array([i % 2 == 0 for i in ids]),
    })


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """An Iceberg table in a PyIceberg SQLite catalog and a Delta table, each with 3 rows, and a
    demo mesh serving them (plus broken tables) as sources of the `sales` domain."""
    root = tmp_path_factory.mktemp("formats")
    catalog = SqlCatalog("crm", uri=f"sqlite:///{root}/catalog.db", warehouse=f"file://{root}/iceberg")
    catalog.create_namespace("crm")
    first = people(1, ["Ada", "Bea", "Chloé"])
    iceberg = catalog.create_table("crm.people", schema=first.schema)
    iceberg.append(first)
    first_metadata = iceberg.metadata_location.removeprefix("file://")
    delta = root / "delta" / "people"
    write_deltalake(str(delta), first)

    # Broken tables: a folder that is no table of either format, an Iceberg table whose newest
    # metadata file is damaged, and one whose data file went away.
    (root / "empty").mkdir()
    damaged = catalog.create_table("crm.damaged", schema=first.schema)
    damaged.append(first)
    newest = sorted((root / "iceberg/crm/damaged/metadata").glob("*.metadata.json"))[-1]
    newest.write_text(newest.read_text()[:200])
    gone = catalog.create_table("crm.gone", schema=first.schema)
    gone.append(first)
    for data in (root / "iceberg/crm/gone/data").glob("*.parquet"):
        data.unlink()

    mesh = demo_mesh(root / "mesh", {"catalog_staleness_secs": 1})
    sources = [
        {"name": "people_iceberg", "layer": "raw", "format": "iceberg",
         "location": str(root / "iceberg/crm/people")},
        {"name": "people_first", "layer": "raw", "format": "iceberg", "location": first_metadata},
        {"name": "people_delta", "layer": "raw", "format": "delta", "location": str(delta)},
        {"name": "not_iceberg", "layer": "raw", "format": "iceberg", "location": str(root / "empty")},
        {"name": "not_delta", "layer": "raw", "format": "delta", "location": str(root / "empty")},
        {"name": "damaged", "layer": "raw", "format": "iceberg",
         "location": str(root / "iceberg/crm/damaged")},
        {"name": "gone", "layer": "raw", "format": "iceberg", "location": str(root / "iceberg/crm/gone")},
        # By its entry in PyIceberg's catalog, as PyIceberg users name it.
        {"name": "people_by_catalog", "layer": "raw", "format": "iceberg", "location": "crm.people",
         "catalog": {"type": "sql", "uri": f"sqlite:///{root}/catalog.db", "name": "crm"}},
        {"name": "not_in_catalog", "layer": "raw", "format": "iceberg", "location": "crm.nobody",
         "catalog": {"type": "sql", "uri": f"sqlite:///{root}/catalog.db", "name": "crm"}},
    ]
    # Appended as text: a YAML round trip would turn the policies' `on:` keys into `true`.
    with open(mesh / "catalog" / "sales" / "domain.yaml", "a") as domain:
        domain.write(yaml.safe_dump({"sources": sources}, sort_keys=False))
    with Server(mesh) as server:
        yield {"server": server, "iceberg": iceberg, "delta": delta, "first": first}


def query(uri: str, sql: str) -> pa.Table:
    with connect(uri) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table()


def failure(uri: str, sql: str) -> Exception:
    with pytest.raises(Exception) as caught:
        query(uri, sql)
    return caught.value


def rows(table: pa.Table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: r["id"])


def rows_by(table: pa.Table) -> list[dict]:
    """Every row, in an order that does not depend on the scan's."""
    return sorted(table.to_pylist(), key=lambda r: sorted((k, str(v)) for k, v in r.items()))


def test_iceberg_and_delta_tables_are_served_exactly_as_their_libraries_read_them(tables):
    uri = tables["server"].uri
    iceberg = query(uri, "SELECT * FROM sales.raw.people_iceberg")
    assert rows(iceberg) == rows(tables["iceberg"].scan().to_arrow())
    by_catalog = query(uri, "SELECT * FROM sales.raw.people_by_catalog")
    assert rows(by_catalog) == rows(tables["iceberg"].scan().to_arrow())
    delta = query(uri, "SELECT * FROM sales.raw.people_delta")
    assert rows(delta) == rows(DeltaTable(str(tables["delta"])).to_pyarrow_table())
    assert iceberg.schema.names == tables["first"].schema.names
    # Filters and projections are pushed into the Iceberg scan; DataFusion re-checks them.
    picked = query(uri, "SELECT name FROM sales.raw.people_iceberg WHERE id >= 2 AND active")
    assert picked.to_pylist() == [{"name": "Bea"}]
    # The two formats join like any two tables of the mesh.
    joined = query(uri, """SELECT count(*) AS n FROM sales.raw.people_iceberg i
                           JOIN sales.raw.people_delta d ON i.id = d.id AND i.name = d.name""")
    assert joined.to_pylist() == [{"n": 3}]


def test_the_catalog_shows_each_source_with_its_format(tables):
    expected = [
        {"dataset": "people_by_catalog", "format": "iceberg"},
        {"dataset": "people_delta", "format": "delta"},
        {"dataset": "people_first", "format": "iceberg"},
        {"dataset": "people_iceberg", "format": "iceberg"},
    ]
    # The system catalog is described in the background after start-up.
    deadline = time.monotonic() + SEEN_WITHIN_SECS
    listed = []
    while time.monotonic() < deadline and listed != expected:
        listed = query(tables["server"].uri, """SELECT dataset, format FROM mesh.catalog.datasets
                                                WHERE domain = 'sales' AND dataset LIKE 'people_%'
                                                ORDER BY dataset""").to_pylist()
        time.sleep(0.5)
    assert listed == expected
    # A table that cannot be read is described with the reason, beside every other dataset.
    problems = query(tables["server"].uri, """SELECT dataset, problem FROM mesh.catalog.datasets
                                              WHERE domain = 'sales' AND layer = 'raw'""").to_pylist()
    problem = {r["dataset"]: r["problem"] for r in problems}
    assert problem["people_iceberg"] is None and problem["people_delta"] is None
    assert "not an Iceberg table" in problem["not_iceberg"]
    assert "not a Delta table" in problem["not_delta"]
    assert "invalid Iceberg table" in problem["damaged"]


def test_a_commit_by_the_other_engine_is_served_without_a_restart(tables):
    uri = tables["server"].uri
    count = "SELECT count(*) AS n FROM sales.raw.{}"
    assert query(uri, count.format("people_iceberg")).to_pylist() == [{"n": 3}]
    assert query(uri, count.format("people_delta")).to_pylist() == [{"n": 3}]
    more = people(4, ["Dan", "Eve"])
    tables["iceberg"].append(more)
    write_deltalake(str(tables["delta"]), more, mode="append")
    deadline = time.monotonic() + SEEN_WITHIN_SECS
    seen = {}
    while time.monotonic() < deadline:
        seen = {name: query(uri, count.format(name)).to_pylist()[0]["n"]
                for name in ("people_iceberg", "people_delta", "people_by_catalog")}
        if seen == {"people_iceberg": 5, "people_delta": 5, "people_by_catalog": 5}:
            break
        time.sleep(0.5)
    assert seen == {"people_iceberg": 5, "people_delta": 5, "people_by_catalog": 5}
    iceberg = query(uri, "SELECT * FROM sales.raw.people_iceberg")
    assert rows(iceberg) == rows(tables["iceberg"].refresh().scan().to_arrow())
    # A source naming one metadata file keeps serving the snapshot that file describes.
    assert rows(query(uri, "SELECT * FROM sales.raw.people_first")) == rows(tables["first"])


@pytest.mark.parametrize("dataset, status, words", [
    ("not_iceberg", "NotFound", ["is not an Iceberg table", "no `metadata/` folder"]),
    ("not_delta", "NotFound", ["is not a Delta table", "no `_delta_log/`"]),
    ("damaged", "InvalidArgument", ["invalid Iceberg table", "metadata"]),
    ("gone", "InvalidArgument", ["invalid Iceberg table", ".parquet"]),
    ("not_in_catalog", "NotFound", ["has no table `crm.nobody`", "catalog.db"]),
])
def test_a_broken_table_is_named_and_the_others_are_still_served(tables, dataset, status, words):
    uri = tables["server"].uri
    error = failure(uri, f"SELECT * FROM sales.raw.{dataset}")
    assert status_of(error) == status, error
    for word in words:
        assert word in str(error), error
    assert "Internal" not in str(error)
    assert query(uri, "SELECT count(*) AS n FROM sales.raw.people_delta").num_rows == 1
    assert tables["server"].alive()


@pytest.mark.parametrize("entry, words", [
    ({"location": "crm.people", "catalog": {"type": "sql", "uri": "nowhere.db", "name": "crm"}},
     ["Iceberg catalog file not found", "nowhere.db"]),
    ({"location": "people", "catalog": {"type": "sql", "uri": "catalog.db", "name": "crm"}},
     ["`location` is the table's name in it, `namespace.table`"]),
    ({"location": "crm.people", "catalog": {"type": "rest", "uri": "not a url"}},
     ["a REST catalog needs its `uri`"]),
    ({"location": "crm.people", "format": "delta", "catalog": {"type": "sql", "uri": "catalog.db"}},
     ["`catalog` names the Iceberg catalog of an `iceberg` source"]),
])
def test_a_bad_catalog_entry_of_a_source_is_reported_with_its_position(tmp_path, entry, words):
    mesh = demo_mesh(tmp_path / "mesh")
    (mesh / "catalog/sales/catalog.db").write_bytes(b"")
    source = {"name": "people", "layer": "raw", "format": "iceberg", **entry}
    with open(mesh / "catalog" / "sales" / "domain.yaml", "a") as domain:
        domain.write(yaml.safe_dump({"sources": [source]}, sort_keys=False))
    done = run(["check"], mesh)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "domain.yaml:" in done.stdout + done.stderr
    for word in words:
        assert word in done.stdout + done.stderr, done.stdout + done.stderr


def test_a_source_table_cannot_be_written(tables):
    error = failure(tables["server"].uri, "INSERT INTO sales.raw.people_iceberg SELECT * FROM sales.raw.people_delta")
    assert status_of(error) in ("PermissionDenied", "InvalidArgument"), error


def test_time_travel_reads_each_version_as_pyiceberg_and_deltalake_read_it(tables):
    uri = tables["server"].uri
    more = people(100, ["Fay"])
    tables["iceberg"].append(more)
    write_deltalake(str(tables["delta"]), more, mode="append")
    iceberg = tables["iceberg"].refresh()
    snapshots = sorted(iceberg.snapshots(), key=lambda s: s.sequence_number)
    assert len(snapshots) >= 2
    for snapshot in snapshots:
        expected = rows(iceberg.scan(snapshot_id=snapshot.snapshot_id).to_arrow())
        # By snapshot id, by sequence number, and by the time it was committed.
        for clause in (f"VERSION AS OF {snapshot.snapshot_id}",
                       f"VERSION AS OF {snapshot.sequence_number}",
                       f"TIMESTAMP AS OF arrow_cast({snapshot.timestamp_ms} * 1000, 'Timestamp(Microsecond, None)')"):
            served = query(uri, f"SELECT * FROM sales.raw.people_iceberg {clause}")
            assert rows(served) == expected, clause
        by_catalog = query(uri, f"SELECT * FROM sales.raw.people_by_catalog VERSION AS OF {snapshot.snapshot_id}")
        assert rows(by_catalog) == expected
    delta = DeltaTable(str(tables["delta"]))
    for version in range(delta.version() + 1):
        expected = rows(DeltaTable(str(tables["delta"]), version=version).to_pyarrow_table())
        served = query(uri, f"SELECT * FROM sales.raw.people_delta VERSION AS OF {version}")
        assert rows(served) == expected, version
    # The listing shows the other engines' commits, as they made them.
    deadline = time.monotonic() + SEEN_WITHIN_SECS
    listed = []
    while time.monotonic() < deadline:
        listed = query(uri, """SELECT snapshot_id, version, rows_added, current FROM mesh.ops.versions
                               WHERE dataset = 'people_iceberg' ORDER BY version""").to_pylist()
        if len(listed) == len(snapshots):
            break
        time.sleep(0.5)
    assert [r["snapshot_id"] for r in listed] == [s.snapshot_id for s in snapshots]
    assert listed[-1]["current"] and not listed[0]["current"]
    assert listed[0]["rows_added"] == 3
    versions = query(uri, """SELECT version FROM mesh.ops.versions
                             WHERE dataset = 'people_delta' ORDER BY version""").to_pylist()
    assert [r["version"] for r in versions] == list(range(delta.version() + 1))
    error = failure(uri, "SELECT * FROM sales.raw.people_delta VERSION AS OF 1000")
    assert status_of(error) == "NotFound" and "has no version 1000" in str(error), error


def test_time_travel_through_a_prepared_statement_and_with_masks(iceberg_mesh):
    done = run(["run", "--force", "--select", "sales.gold.customer_value+"], iceberg_mesh)
    assert done.returncode == 0, done.stdout + done.stderr
    with Server(iceberg_mesh) as server:
        # A prepared statement with a parameter reads the version it was prepared with.
        sql = """SELECT count(*) AS n FROM finance.gold.revenue_vs_target VERSION AS OF 1
                 WHERE region = ?"""
        with connect(server.uri) as conn, conn.cursor() as cur:
            for region in ("north", "south"):
                cur.execute(sql, parameters=(region,))
                assert cur.fetch_arrow_table().to_pylist() == [{"n": 3}], region
        # An analyst sees an old version's customer ids hashed, as it sees the current ones.
        old = "SELECT customer_id FROM sales.gold.customer_value VERSION AS OF 0 ORDER BY 1"
        now = "SELECT customer_id FROM sales.gold.customer_value ORDER BY 1"
        with connect(server.uri, "analyst") as conn, conn.cursor() as cur:
            cur.execute(old)
            hashed = [r["customer_id"] for r in cur.fetch_arrow_table().to_pylist()]
            cur.execute(now)
            assert [r["customer_id"] for r in cur.fetch_arrow_table().to_pylist()] == hashed
        assert all(len(h) == 64 for h in hashed), hashed[:3]
        with connect(server.uri, "sales") as conn, conn.cursor() as cur:
            cur.execute(old)
            clear = [r["customer_id"] for r in cur.fetch_arrow_table().to_pylist()]
        assert clear != hashed and len(clear) == len(hashed)


# Warehouse tables stored as Iceberg: what meshql writes, PyIceberg reads.

def warehouse_catalog(mesh: Path) -> SqlCatalog:
    """The mesh's embedded Iceberg catalog, opened as PyIceberg users open it."""
    warehouse = mesh / "warehouse"
    return SqlCatalog("meshql", uri=f"sqlite:///{warehouse}/_mesh/iceberg.db", warehouse=f"file://{warehouse}")


@pytest.fixture()
def iceberg_mesh(tmp_path):
    """The demo mesh (its finance domain is stored as Iceberg), run once."""
    mesh = demo_mesh(tmp_path / "mesh")
    assert "format: iceberg" in (mesh / "catalog" / "finance" / "domain.yaml").read_text()
    done = run(["run"], mesh)
    assert done.returncode == 0, done.stdout + done.stderr
    return mesh


def test_pyiceberg_reads_the_iceberg_tables_meshql_writes(iceberg_mesh):
    catalog = warehouse_catalog(iceberg_mesh)
    product = catalog.load_table("finance.gold.revenue_vs_target")
    assert len(product.snapshots()) == 1
    with Server(iceberg_mesh) as server:
        served = query(server.uri, "SELECT * FROM finance.gold.revenue_vs_target")
        listed = query(server.uri, """SELECT layer, dataset, format FROM mesh.catalog.datasets
                                      WHERE domain = 'finance' ORDER BY layer, dataset""").to_pylist()
    key = lambda r: (r["region"], r["month"])
    assert served.num_rows == 12
    assert sorted(served.to_pylist(), key=key) == sorted(product.scan().to_arrow().to_pylist(), key=key)
    assert {r["format"] for r in listed} == {"iceberg"}
    # The other domains stay Delta, and the cross-format join of the product is exact.
    assert (iceberg_mesh / "warehouse/sales/gold/daily_revenue/_delta_log").is_dir()


def test_a_full_refresh_is_one_overwrite_snapshot_readers_never_see_half_of(iceberg_mesh):
    catalog = warehouse_catalog(iceberg_mesh)
    name = "finance.silver.revenue_targets"
    seen: set[int] = set()
    stop = False

    def poll():
        while not stop:
            seen.add(catalog.load_table(name).scan().to_arrow().num_rows)

    import threading
    reader = threading.Thread(target=poll)
    reader.start()
    try:
        for _ in range(4):
            done = run(["run", "--force", "--select", name], iceberg_mesh)
            assert done.returncode == 0, done.stdout + done.stderr
    finally:
        stop = True
        reader.join(timeout=60)
    assert seen == {12}
    table = catalog.load_table(name)
    assert len(table.snapshots()) == 5
    assert table.current_snapshot().summary.operation.value == "overwrite"
    # Every earlier snapshot still holds the rows it was committed with.
    for snapshot in table.snapshots():
        assert table.scan(snapshot_id=snapshot.snapshot_id).to_arrow().num_rows == 12


def test_a_changed_transform_replaces_the_columns_and_keeps_the_old_snapshot(iceberg_mesh):
    sql = iceberg_mesh / "sql/finance/silver/revenue_targets.sql"
    sql.write_text(sql.read_text().replace("    month,\n", "    month,\n    upper(region) AS region_code,\n"))
    done = run(["run", "--select", "finance.silver.revenue_targets"], iceberg_mesh)
    assert done.returncode == 0, done.stdout + done.stderr
    table = warehouse_catalog(iceberg_mesh).load_table("finance.silver.revenue_targets")
    now = table.scan().to_arrow()
    assert now.schema.names == ["region", "month", "region_code", "revenue_target"]
    assert {r["region_code"] for r in now.to_pylist()} == {r["region"].upper() for r in now.to_pylist()}
    first = min(table.snapshots(), key=lambda s: s.sequence_number)
    assert table.scan(snapshot_id=first.snapshot_id).to_arrow().schema.names == ["region", "month", "revenue_target"]
    # Time travel reads the old snapshot with the columns it was written with.
    with Server(iceberg_mesh) as server:
        old = query(server.uri, f"SELECT * FROM finance.silver.revenue_targets VERSION AS OF {first.sequence_number}")
    assert old.schema.names == ["region", "month", "revenue_target"]
    assert rows_by(old) == rows_by(table.scan(snapshot_id=first.snapshot_id).to_arrow())


def test_an_incremental_merge_into_iceberg_updates_matching_rows_and_inserts_the_others(iceberg_mesh):
    sql = iceberg_mesh / "sql/finance/silver/revenue_targets.sql"
    original = sql.read_text()
    sql.write_text("-- @materialized: incremental\n-- @unique_key: region, month\n" + original)
    name = "finance.silver.revenue_targets"
    catalog = warehouse_catalog(iceberg_mesh)
    before = catalog.load_table(name).scan().to_arrow().to_pylist()
    # North's targets doubled, and one new month: 3 rows updated, 1 inserted, 8 untouched.
    raw = iceberg_mesh / "catalog/finance/data/revenue_targets.csv"
    lines = raw.read_text().splitlines()
    changed = [lines[0]] + [
        f"{r},{m},{float(t) * 2:.2f}" for r, m, t in (line.split(",") for line in lines[1:]) if r == "north"
    ] + ["north,2026-04,100000.00"]
    raw.write_text("\n".join(changed) + "\n")
    select = ["--select", "finance.raw.revenue_targets", "--select", name]
    done = run(["run", *select], iceberg_mesh)
    assert done.returncode == 0, done.stdout + done.stderr
    table = catalog.load_table(name)
    assert table.current_snapshot().summary.operation.value == "overwrite"
    key = lambda r: (r["region"], r["month"])
    after = {key(r): r["revenue_target"] for r in table.scan().to_arrow().to_pylist()}
    expected = {key(r): r["revenue_target"] for r in before}
    for r in before:
        if r["region"] == "north":
            expected[key(r)] = r["revenue_target"] * 2
    expected[("north", "2026-04")] = decimal.Decimal("100000.00")
    assert after == expected
    # The served rows are PyIceberg's, and the version before the merge is still readable.
    with Server(iceberg_mesh) as server:
        served = query(server.uri, f"SELECT * FROM {name}")
        old = query(server.uri, f"SELECT * FROM {name} VERSION AS OF 1")
    assert {key(r): r["revenue_target"] for r in served.to_pylist()} == expected
    assert sorted(old.to_pylist(), key=key) == sorted(before, key=key)
    # A key repeated among the new rows is refused, and the table keeps its snapshot.
    raw.write_text("\n".join(changed + ["north,2026-04,1.00"]) + "\n")
    done = run(["run", *select], iceberg_mesh)
    assert done.returncode != 0
    assert "region" in done.stdout + done.stderr
    assert catalog.load_table(name).current_snapshot().snapshot_id == table.current_snapshot().snapshot_id


def test_concurrent_full_refreshes_of_one_iceberg_table_all_commit_one_after_another(iceberg_mesh):
    """Four processes replace one table at once: each commit's compare-and-swap either wins or
    retries on the snapshot that won, so every run succeeds and no snapshot is lost."""
    import subprocess

    from harness import meshql_binary

    name = "finance.silver.revenue_targets"
    runs = [subprocess.Popen([meshql_binary(), "--mesh", str(iceberg_mesh), "run", "--force", "--select", name],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(4)]
    outputs = [r.communicate(timeout=300)[0] for r in runs]
    assert [r.returncode for r in runs] == [0] * 4, outputs
    table = warehouse_catalog(iceberg_mesh).load_table(name)
    assert len(table.snapshots()) == 5
    assert table.scan().to_arrow().num_rows == 12
    assert len({s.sequence_number for s in table.snapshots()}) == 5


def test_a_lost_catalog_file_loses_no_table(iceberg_mesh):
    """The tables' folders hold their metadata: a catalog file deleted (or replaced by an empty
    one) gets each table registered again at its newest metadata file, and nothing is rebuilt."""
    (iceberg_mesh / "warehouse" / "_mesh" / "iceberg.db").unlink()
    with Server(iceberg_mesh) as server:
        served = query(server.uri, "SELECT count(*) AS n FROM finance.gold.revenue_vs_target")
    assert served.to_pylist() == [{"n": 12}]
    done = run(["run"], iceberg_mesh)
    assert done.returncode == 0, done.stdout + done.stderr
    finance = [line for line in done.stdout.splitlines() if "finance." in line]
    assert finance and all(line.startswith("up_to_date") for line in finance), done.stdout
    table = warehouse_catalog(iceberg_mesh).load_table("finance.gold.revenue_vs_target")
    assert len(table.snapshots()) == 1 and table.scan().to_arrow().num_rows == 12
