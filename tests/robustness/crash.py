"""Crash consistency: `kill -9` of `meshql run` and of `meshql serve` at random points, during runs
and during ingest. After each kill every table opens with the `deltalake` package (Delta) or
PyIceberg (Iceberg, through the warehouse's SQL catalog) with exact counts (no acknowledged ingest row lost, no run half-published); at the end the next run
succeeds and no staging is left behind.

    python tests/robustness/crash.py --iterations 40 --seed 1   # the long form
    python tests/robustness/crash.py --iterations 6             # what CI runs
"""

import multiprocessing
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Server, connect, demo_mesh, finish, meshql_binary, run, suite_arguments  # noqa: E402

INGEST_TABLES = 3
BATCH_ROWS = 500


def delta_counts(warehouse: Path) -> dict[str, int]:
    """Rows of every Delta table of the warehouse (outside `_mesh`), read with deltalake."""
    from deltalake import DeltaTable

    counts = {}
    for log in sorted(warehouse.glob("*/*/*/_delta_log")):
        table = log.parent
        if table.relative_to(warehouse).parts[0] == "_mesh":
            continue
        name = ".".join(table.relative_to(warehouse).parts)
        counts[name] = DeltaTable(str(table)).to_pyarrow_dataset().count_rows()
    return counts


def iceberg_counts(warehouse: Path) -> dict[str, int]:
    """Rows of every Iceberg table of the warehouse's catalog, read with PyIceberg."""
    catalog_file = warehouse / "_mesh" / "iceberg.db"
    if not catalog_file.exists():
        return {}
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog("meshql", uri=f"sqlite:///{catalog_file}", warehouse=warehouse.as_uri())
    counts = {}
    for namespace in catalog.list_namespaces():
        for sub in catalog.list_namespaces(namespace) or [namespace]:
            for ident in catalog.list_tables(sub):
                table = catalog.load_table(ident)
                if table.current_snapshot() is not None:
                    counts[".".join(ident)] = table.scan().to_arrow().num_rows
    return counts


def table_counts(warehouse: Path) -> dict[str, int]:
    return {**delta_counts(warehouse), **iceberg_counts(warehouse)}


def ingest_client(uri, table, stop, acked):
    """Appends batches until stopped or the server dies; reports each acknowledged batch."""
    import pyarrow as pa

    try:
        conn = connect(uri, "sales", timeout=30)
        start = 0
        while not stop.is_set():
            data = pa.table({"id": pa.array(range(start, start + BATCH_ROWS), pa.int64()),
                             "note": pa.array(["crash"] * BATCH_ROWS)})
            with conn.cursor() as cur:
                cur.adbc_ingest(table, data, mode="create_append", catalog_name="sales",
                                db_schema_name="raw")
            acked.put((table, BATCH_ROWS))
            start += BATCH_ROWS
    except Exception:
        return  # the server was killed under us


def kill_during_run(mesh: Path, expected: dict, rng: random.Random, duration: float):
    proc = subprocess.Popen([meshql_binary(), "--mesh", str(mesh), "run", "--force"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(rng.uniform(0, duration * 1.2))
    proc.kill()
    proc.wait(timeout=30)
    got = table_counts(mesh / "warehouse")
    wrong = {t: (got.get(t), n) for t, n in expected.items() if got.get(t) != n}
    return {"kind": "run", "corrupt_or_wrong": wrong}


def kill_during_ingest(mesh: Path, rng: random.Random, totals: dict):
    ctx = multiprocessing.get_context("spawn")
    server = Server(mesh).start()
    stop, acked = ctx.Event(), ctx.Queue()
    clients = [ctx.Process(target=ingest_client, args=(server.uri, f"crash_{k}", stop, acked), daemon=True)
               for k in range(INGEST_TABLES)]
    for c in clients:
        c.start()
    time.sleep(rng.uniform(1.0, 4.0))
    server.kill()
    stop.set()
    for c in clients:
        c.join(timeout=30)
        if c.is_alive():
            c.kill()
    while not acked.empty():
        table, rows = acked.get()
        totals[table] = totals.get(table, 0) + rows
    got = table_counts(mesh / "warehouse")
    problems = {}
    for k in range(INGEST_TABLES):
        table = f"crash_{k}"
        have, sure = got.get(f"sales.raw.{table}", 0), totals.get(table, 0)
        # Every acknowledged batch is there; at most the one in flight when the kill came, too.
        if not sure <= have <= sure + BATCH_ROWS:
            problems[table] = {"acknowledged": sure, "in_table": have}
        totals[table] = have  # what the next iteration appends to
    return {"kind": "ingest", "corrupt_or_wrong": problems}


def crash(iterations=6, seed=1, workdir=None, log=print):
    rng = random.Random(seed)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="meshql-crash-"))
    mesh = demo_mesh(workdir / "mesh")
    t0 = time.monotonic()
    first = run(["run"], mesh)
    duration = time.monotonic() - t0
    if first.returncode != 0:
        raise RuntimeError(f"the first run failed:\n{first.stdout}\n{first.stderr}")
    expected = table_counts(mesh / "warehouse")
    results, totals = [], {}
    for i in range(iterations):
        if i % 2 == 0:
            outcome = kill_during_run(mesh, expected, rng, duration)
        else:
            outcome = kill_during_ingest(mesh, rng, totals)
        results.append(outcome)
        log(f"  iteration {i + 1}: {outcome['kind']}, problems: {outcome['corrupt_or_wrong'] or 'none'}")
    final = run(["run"], mesh)
    staging = mesh / "warehouse" / "_mesh" / "staging"
    left = sorted(str(p.relative_to(staging)) for p in staging.glob("*/*/*/*")) if staging.exists() else []
    after = table_counts(mesh / "warehouse")
    bad = [r for r in results if r["corrupt_or_wrong"]]
    return {
        "iterations": iterations,
        "corrupt_or_wrong": len(bad),
        "examples": bad[:5],
        "next_run_exit": final.returncode,
        "next_run_output": final.stdout[-2000:] + final.stderr[-2000:] if final.returncode else "",
        "staging_left": left,
        "tables_after": len(after),
        "ok": not bad and final.returncode == 0 and not left,
    }


def main():
    args = suite_arguments(__doc__, iterations=6, seed=1)
    return finish(crash(args.iterations, args.seed), args.out)


if __name__ == "__main__":
    sys.exit(main())
