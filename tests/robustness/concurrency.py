"""Concurrency: two `meshql run --force` at once on one warehouse, and eight clients ingesting into
one raw table at once. Counts are exact afterwards; a conflict is reported as a conflict (exit 5,
FailedPrecondition), never as an internal error, and no acknowledged row is lost or doubled.

    python tests/robustness/concurrency.py --rounds 10 --batches 50   # the long form
    python tests/robustness/concurrency.py                            # what CI runs
"""

import multiprocessing
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from crash import delta_counts  # noqa: E402
from harness import Server, connect, demo_mesh, finish, meshql_binary, run, status_of, suite_arguments  # noqa: E402

INGEST_CLIENTS = 8
ROWS_PER_BATCH = 100


def concurrent_runs(mesh: Path, expected: dict, rounds: int):
    outcomes, wrong = Counter(), []
    for _ in range(rounds):
        procs = [subprocess.Popen([meshql_binary(), "--mesh", str(mesh), "run", "--force"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(2)]
        for p in procs:
            out, _ = p.communicate(timeout=600)
            outcomes[p.returncode] += 1
            if p.returncode not in (0, 5):
                wrong.append({"exit": p.returncode, "output": out[-3000:]})
            elif p.returncode == 5 and "another writer" not in out:
                wrong.append({"exit": 5, "output": out[-3000:], "why": "no conflict message"})
        got = delta_counts(mesh / "warehouse")
        bad = {t: (got.get(t), n) for t, n in expected.items() if got.get(t) != n}
        if bad:
            wrong.append({"counts": bad})
    return {"exit_codes": dict(outcomes), "problems": wrong}


def ingest_client(uri, client, batches, results):
    import pyarrow as pa

    conn = connect(uri, "sales", timeout=120)
    for b in range(batches):
        start = (client * batches + b) * ROWS_PER_BATCH
        data = pa.table({"id": pa.array(range(start, start + ROWS_PER_BATCH), pa.int64()),
                         "client": pa.array([client] * ROWS_PER_BATCH, pa.int32())})
        try:
            with conn.cursor() as cur:
                cur.adbc_ingest("shared", data, mode="create_append", catalog_name="sales",
                                db_schema_name="raw")
            results.put(("OK", ""))
        except Exception as e:
            results.put((status_of(e), str(e)[:500]))
    conn.close()
    results.put(None)


def concurrent_ingest(mesh: Path, batches: int):
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    with Server(mesh) as server:
        procs = [ctx.Process(target=ingest_client, args=(server.uri, c, batches, results), daemon=True)
                 for c in range(INGEST_CLIENTS)]
        for p in procs:
            p.start()
        codes, messages, running = Counter(), {}, len(procs)
        while running:
            item = results.get(timeout=600)
            if item is None:
                running -= 1
                continue
            codes[item[0]] += 1
            if item[0] != "OK":
                messages.setdefault(item[0], item[1])
        for p in procs:
            p.join(timeout=60)
        with connect(server.uri) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*), count(DISTINCT id) FROM sales.raw.shared")
            served, distinct = cur.fetchone()
    stored = delta_counts(mesh / "warehouse").get("sales.raw.shared", 0)
    acknowledged = codes["OK"] * ROWS_PER_BATCH
    problems = []
    if stored != acknowledged or served != acknowledged or distinct != acknowledged:
        problems.append({"acknowledged": acknowledged, "stored": stored, "served": served,
                         "distinct_ids": distinct})
    if set(codes) - {"OK", "FailedPrecondition", "ResourceExhausted"}:
        problems.append({"unexpected_codes": messages})
    return {"batches": INGEST_CLIENTS * batches, "codes": dict(codes), "rows": stored,
            "messages": messages, "problems": problems}


def concurrency(rounds=2, batches=10, workdir=None, log=print):
    workdir = Path(workdir or tempfile.mkdtemp(prefix="meshql-concurrency-"))
    mesh = demo_mesh(workdir / "mesh")
    first = run(["run"], mesh)
    if first.returncode != 0:
        raise RuntimeError(f"the first run failed:\n{first.stdout}\n{first.stderr}")
    expected = delta_counts(mesh / "warehouse")
    runs = concurrent_runs(mesh, expected, rounds)
    log(f"  concurrent runs: {runs['exit_codes']}")
    ingest = concurrent_ingest(mesh, batches)
    log(f"  concurrent ingest: {ingest['codes']}")
    final = run(["run"], mesh)
    staging = mesh / "warehouse" / "_mesh" / "staging"
    left = sorted(str(p.relative_to(staging)) for p in staging.glob("*/*/*/*")) if staging.exists() else []
    return {
        "runs": runs,
        "ingest": ingest,
        "next_run_exit": final.returncode,
        "staging_left": left,
        "ok": not runs["problems"] and not ingest["problems"] and final.returncode == 0 and not left,
    }


def main():
    args = suite_arguments(__doc__, rounds=2, batches=10)
    return finish(concurrency(args.rounds, args.batches), args.out)


if __name__ == "__main__":
    sys.exit(main())
