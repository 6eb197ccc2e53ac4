"""A mu-pipelines job run by `meshql job run` outside any mesh: its CSV destination is read back
by Python's csv module and by pyarrow, and its table is queried over Flight SQL with ADBC; all
three agree."""

import csv
import json
import re
import subprocess
from pathlib import Path

import pyarrow.csv as pacsv
import pytest

from conftest import meshql_binary

ORDERS = """order_id,customer,amount,placed_at
1,ada,10.50,2026-01-01 10:00:00
2,grace,,2026-01-02 11:30:00
3,linus,7.25,2026-01-03 09:15:00
4,"hopper, grace",99.00,2026-01-04 08:00:00
"""

JOB = [
    {
        "execution": [
            {
                "type": "IngestCSV",
                "file_location": "data/orders.csv",
                "additional_attributes": [
                    {"key": "header", "value": "True"},
                    {"key": "inferSchema", "value": "True"},
                ],
            },
            {"type": "TransformSQL", "alias": "orders", "sql_file_location": "sql/paid.sql"},
        ],
        "destination": [
            {"type": "DestinationDefaultCatalog", "table_name": "shop.silver.paid", "mode": "overwrite"},
            {
                "type": "DestinationCSV",
                "file_location": "out/paid",
                "mode": "overwrite",
                "additional_attributes": [{"key": "header", "value": "true"}],
            },
        ],
    }
]

PAID_SQL = """
SELECT order_id, customer, amount
FROM orders
WHERE amount IS NOT NULL
ORDER BY order_id
"""


@pytest.fixture()
def job_folder(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "orders.csv").write_text(ORDERS)
    (tmp_path / "jobs" / "sql").mkdir(parents=True)
    (tmp_path / "jobs" / "sql" / "paid.sql").write_text(PAID_SQL)
    (tmp_path / "jobs" / "paid.json").write_text(json.dumps(JOB, indent=2))
    (tmp_path / "global-properties.json").write_text('{"library": "spark"}')
    return tmp_path


def run_job(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            meshql_binary(),
            "job",
            "run",
            "--global-properties",
            "global-properties.json",
            "jobs/paid.json",
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_csv_destination_matches_the_table(job_folder: Path):
    done = run_job(job_folder)
    assert done.returncode == 0, done.stdout + done.stderr

    parts = sorted((job_folder / "out" / "paid").glob("part-*.csv"))
    assert len(parts) == 1, list((job_folder / "out" / "paid").iterdir())
    assert (job_folder / "out" / "paid" / "_SUCCESS").exists()

    with parts[0].open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [
        ["order_id", "customer", "amount"],
        ["1", "ada", "10.5"],
        ["3", "linus", "7.25"],
        ["4", "hopper, grace", "99.0"],
    ]

    table = pacsv.read_csv(parts[0])
    assert table.column_names == ["order_id", "customer", "amount"]
    assert table.to_pylist() == [
        {"order_id": 1, "customer": "ada", "amount": 10.5},
        {"order_id": 3, "customer": "linus", "amount": 7.25},
        {"order_id": 4, "customer": "hopper, grace", "amount": 99.0},
    ]

    # The same rows, served from the warehouse the job wrote.
    import adbc_driver_flightsql.dbapi as flightsql

    proc = subprocess.Popen(
        [meshql_binary(), "serve", "--addr", "127.0.0.1:0"],
        cwd=job_folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        uri = None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            m = re.search(r"on (grpc://127\.0\.0\.1:\d+)", line)
            if m:
                uri = m.group(1)
                break
        assert uri, "".join(seen)
        with flightsql.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SELECT order_id, customer, amount FROM shop.silver.paid ORDER BY order_id")
            served = cur.fetch_arrow_table()
        assert served.to_pylist() == table.to_pylist()
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    # Unchanged job and data: the re-run does no work and says so.
    again = run_job(job_folder)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 ok, 1 up to date" in again.stdout, again.stdout


def test_a_bad_job_file_names_line_and_column(job_folder: Path):
    (job_folder / "jobs" / "paid.json").write_text(
        '[{"execution": [{"type": "IngestKafka", "topic": "orders"}],\n'
        ' "destination": [{"type": "print"}]}]'
    )
    done = run_job(job_folder)
    assert done.returncode == 2, done.stdout + done.stderr
    assert (
        "jobs/paid.json:1:26: $[0].execution[0].type: the mu-pipelines execution step "
        "`IngestKafka` is not run by meshql" in done.stderr
    ), done.stderr
    assert not (job_folder / "warehouse").exists()


def test_a_job_run_with_the_iceberg_format_writes_a_table_pyiceberg_reads_and_serve_finds(job_folder: Path):
    from pyiceberg.catalog.sql import SqlCatalog

    import harness

    done = subprocess.run([meshql_binary(), "job", "run", "--format", "iceberg", "jobs/paid.json"],
                          cwd=job_folder, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    warehouse = job_folder / "warehouse"
    catalog = SqlCatalog("meshql", uri=f"sqlite:///{warehouse}/_mesh/iceberg.db", warehouse=warehouse.as_uri())
    table = catalog.load_table("shop.silver.paid").scan().to_arrow()
    assert table.column("order_id").to_pylist() == [1, 3, 4]
    assert not (warehouse / "shop/silver/paid/_delta_log").exists()
    # `meshql serve` in the same folder finds the Iceberg table and serves it.
    import adbc_driver_flightsql.dbapi as flightsql

    with harness.Server(job_folder) as server, flightsql.connect(
            server.uri, db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {harness.ADMIN_TOKEN}"},
            autocommit=True) as conn, \
            conn.cursor() as cur:
        cur.execute("SELECT order_id, customer FROM shop.silver.paid ORDER BY order_id")
        assert cur.fetchall() == [(1, "ada"), (3, "linus"), (4, "hopper, grace")]
    # Inside a mesh folder the mesh decides the format: the flag is refused there.
    mesh = harness.demo_mesh(job_folder / "mesh")
    refused = subprocess.run([meshql_binary(), "--mesh", str(mesh), "job", "run", "--format", "iceberg",
                              str(job_folder / "jobs/paid.json")], capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "--format applies outside a mesh folder" in refused.stderr, refused.stderr
