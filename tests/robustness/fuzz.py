"""SQL fuzzer against a live `meshql serve`: several concurrent clients send generated and mutated
statements (see sqlgen.py) while the server's memory and CPU are watched from outside.

A run fails on any server death, any Internal answer, any answer later than its deadlines plus
one second (a statement is two calls: GetFlightInfo plans within `planning_timeout_secs`, DoGet
plans and streams within `query_timeout_secs`), a peak RSS above the memory budget plus the
stated margin, or CPU still busy after the last client is done.

    python tests/robustness/fuzz.py --statements 50000 --clients 6 --seed 1   # the long form
    python tests/robustness/fuzz.py --statements 1200 --clients 4             # what CI runs

The report (JSON) lists counts per gRPC code and, for each failure kind, the shortest statement
that produced it, with its seed and index, so `--replay SEED:CLIENT:INDEX` reproduces it.
"""

import multiprocessing
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Server, connect, demo_mesh, finish, status_of, suite_arguments  # noqa: E402
from sqlgen import Generator, load_schema  # noqa: E402

# The server under test: a small memory budget and a short deadline, so limits are reached often.
SETTINGS = {
    "memory_limit_mb": 1024,
    "query_memory_limit_mb": 256,
    "query_timeout_secs": 10,
    "planning_timeout_secs": 5,
    "max_concurrent_queries": 8,
    "max_queued_queries": 64,
    "audit_flush_secs": 2,
}
# Memory the process may use beyond the query pool: the catalog, caches, buffers being encoded,
# planner threads.
RSS_MARGIN_MB = 768
# Principals the clients log in as, round robin (admin reaches everything; the others exercise
# governance: denials, masks, row filters).
PRINCIPALS = ["admin", "analyst", "sales", "north", "admin", "marketing"]


def client_loop(uri, user, tables, seed, count, deadline_s, results, stop):
    """One client, in a process of its own (ADBC calls may hold the GIL: threads would wait on
    each other and measure each other's latency)."""
    gen = Generator(tables, seed)
    conn = connect(uri, user, timeout=deadline_s + 60)
    try:
        for i in range(count):
            if stop.is_set():
                return
            sql = gen.statement()
            started = time.monotonic()
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                    cur.fetch_arrow_table()
                code, message = "OK", ""
            except Exception as e:  # every failure is classified below
                code, message = status_of(e), str(e)
            took = time.monotonic() - started
            results.put((seed, i, user, sql, code, message[:2000], took, started))
    finally:
        try:
            conn.close()
        except Exception:
            pass
        results.put(None)


def fuzz(statements=1200, clients=4, seed=1, settings=None, workdir=None, log=print):
    settings = dict(SETTINGS, **(settings or {}))
    deadline_s = settings["query_timeout_secs"] + settings["planning_timeout_secs"]
    budget_mb = settings["memory_limit_mb"] + RSS_MARGIN_MB
    workdir = Path(workdir or tempfile.mkdtemp(prefix="meshql-fuzz-"))
    mesh = demo_mesh(workdir / "mesh", settings)
    ctx = multiprocessing.get_context("spawn")
    queue, stop, results = ctx.Queue(), ctx.Event(), []
    started = time.monotonic()
    with Server(mesh, log=workdir / "serve.log") as server:
        with connect(server.uri) as conn, conn.cursor() as cur:
            tables = load_schema(cur)
        idle_rss = server.rss()
        per_client = max(1, statements // clients)
        workers = [
            ctx.Process(target=client_loop, args=(
                server.uri, PRINCIPALS[c % len(PRINCIPALS)], tables, seed * 1000 + c, per_client,
                deadline_s, queue, stop), daemon=True)
            for c in range(clients)
        ]
        for w in workers:
            w.start()
        running, last_progress = len(workers), 0
        while running:
            try:
                item = queue.get(timeout=0.5)
            except Exception:  # queue.Empty: look at the server
                item = False
            if item is None:
                running -= 1
            elif item:
                results.append(item)
            if not server.alive():
                stop.set()
                break
            if len(results) - last_progress >= 500:
                last_progress = len(results)
                log(f"  {len(results)} statements, peak RSS {server.peak_rss >> 20} MiB")
        for w in workers:
            w.join(timeout=deadline_s + 90)
            if w.is_alive():
                w.kill()
        alive = server.alive()
        time.sleep(1.0)  # the last client left a second ago
        busy = server.busy_cpu(2.0) if alive else 0.0
        end_rss = server.rss() if alive else 0
        peak_rss = server.peak_rss
        server_log = server.log()
    elapsed = time.monotonic() - started

    codes = Counter(r[4] for r in results)
    samples = defaultdict(list)
    for r in results:
        if r[4] != "OK" and len(samples[r[4]]) < 3:
            samples[r[4]].append({"message": r[5][:300], "sql": r[3][:300]})
    failures = defaultdict(list)
    for seed_, i, user, sql, code, message, took, _ in results:
        if code == "Internal":
            failures["internal"].append((message.split("(Internal;")[0][:300], seed_, i, user, sql))
        if took > deadline_s + 1:
            failures["over_deadline"].append((f"{took:.1f} s, {code}", seed_, i, user, sql))
    if not alive:
        failures["death"].append((server_log[-3000:], 0, 0, "", "the server died"))
    if peak_rss > budget_mb << 20:
        failures["rss"].append((f"peak RSS {peak_rss >> 20} MiB > {budget_mb} MiB", 0, 0, "", ""))
    if busy > 0.10:
        failures["busy_cpu"].append((f"{busy:.2f} cores busy after the last client", 0, 0, "", ""))
    # One example per distinct message: the shortest statement that produced it.
    distinct = {}
    for kind, items in failures.items():
        by_message = {}
        for message, seed_, i, user, sql in items:
            key = message[:120]
            if key not in by_message or len(sql) < len(by_message[key]["sql"]):
                by_message[key] = {"message": message, "replay": f"{seed_}:{i}", "user": user,
                                   "sql": sql[:2000]}
        distinct[kind] = {"count": len(items), "examples": list(by_message.values())[:40]}
    report = {
        "statements": len(results),
        "clients": clients,
        "seed": seed,
        "elapsed_s": round(elapsed, 1),
        "codes": dict(codes.most_common()),
        "samples": dict(samples),
        "deaths": 0 if alive else 1,
        "internal": codes.get("Internal", 0),
        "over_deadline": len(failures.get("over_deadline", [])),
        "max_latency_s": round(max((r[6] for r in results), default=0), 2),
        "rss_mb": {"idle": idle_rss >> 20, "peak": peak_rss >> 20, "end": end_rss >> 20,
                   "budget": budget_mb},
        "busy_cores_after": round(busy, 3),
        "failures": distinct,
        "timeline": [(round(r[7] - started, 2), round(r[6], 2), r[4], r[3][:150]) for r in results]
        if os.environ.get("MESHQL_FUZZ_TIMELINE") else None,
        "ok": not failures,
    }
    return report


def main():
    args = suite_arguments(__doc__, statements=1200, clients=4, seed=1, replay=None)
    if args.replay:
        seed, index = (int(x) for x in args.replay.split(":"))
        with Server(demo_mesh(Path(tempfile.mkdtemp(prefix="meshql-replay-")) / "mesh")) as server:
            with connect(server.uri) as conn, conn.cursor() as cur:
                gen = Generator(load_schema(cur), seed)
        for _ in range(index):
            gen.statement()
        print(gen.statement())
        return 0
    return finish(fuzz(args.statements, args.clients, args.seed), args.out)


if __name__ == "__main__":
    sys.exit(main())
