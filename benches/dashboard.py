"""Dashboard latency: the same few queries repeated by 1, 4 and 16 clients over Flight SQL (ADBC),
against two servers on the built demo mesh — one with the result cache off (every repetition
recomputes) and one with it on (the default) — measured in one run, block by block.

    python benches/dashboard.py                  # 1/4/16 clients, 200 queries per client
    python benches/dashboard.py --queries 50 --clients 1,4

Prints and writes (`--out`, default ~/.cache/meshql/bench/dashboard/report.{json,md}) p50 and
p99 per server and client count, and the ratio of the two p50s.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "robustness"))

import harness  # noqa: E402

QUERIES = [
    # A cross-domain join of two products.
    "SELECT t.region, t.month, t.revenue, r.roas FROM finance.gold.revenue_vs_target t "
    "JOIN marketing.gold.roas_by_region r ON r.region = t.region ORDER BY 1, 2",
    # A filtered aggregate.
    "SELECT region, date_trunc('month', order_date) AS month, sum(orders) AS orders, "
    "sum(revenue) AS revenue FROM sales.gold.daily_revenue WHERE units > 10 GROUP BY 1, 2 ORDER BY 1, 2",
    # A top-N over a product with masked identifiers.
    "SELECT customer_id, revenue FROM sales.gold.customer_value ORDER BY revenue DESC LIMIT 20",
]


def measure(uri: str, clients: int, per_client: int) -> list[float]:
    latencies, lock, errors = [], threading.Lock(), []

    def client(c: int):
        try:
            with harness.connect(uri, user="analyst") as conn, conn.cursor() as cur:
                mine = []
                for i in range(per_client):
                    sql = QUERIES[(c + i) % len(QUERIES)]
                    start = time.perf_counter()
                    cur.execute(sql)
                    cur.fetch_arrow_table()
                    mine.append((time.perf_counter() - start) * 1000)
                with lock:
                    latencies.extend(mine)
        except Exception as e:  # reported below: a benchmark with errors is no benchmark
            errors.append(str(e)[:300])

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"queries failed: {errors[:3]}")
    return latencies


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=200, help="queries per client (default 200)")
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--out", type=Path, default=Path.home() / ".cache/meshql/bench/dashboard")
    args = ap.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    report = {"benchmark": "dashboard", "queries_per_client": args.queries, "cpus": os.cpu_count(),
              "load_before": os.getloadavg(), "blocks": []}
    with tempfile.TemporaryDirectory(prefix="meshql-dashboard-") as tmp:
        servers = {}
        for name, cache_mb in (("cache off", 0), ("cache on", 256)):
            mesh = harness.demo_mesh(Path(tmp) / name.replace(" ", "-"), {"result_cache_mb": cache_mb})
            built = harness.run(["run"], mesh)
            if built.returncode != 0:
                raise SystemExit(f"meshql run failed:\n{built.stdout}{built.stderr}")
            servers[name] = harness.Server(mesh).start()
        try:
            for clients in counts:
                for name, server in servers.items():
                    measure(server.uri, 1, len(QUERIES))  # connections and first plans
                    server_cpu, client_cpu = server.cpu_seconds(), _own_cpu()
                    ms = sorted(measure(server.uri, clients, args.queries))
                    server_cpu = server.cpu_seconds() - server_cpu
                    client_cpu = _own_cpu() - client_cpu
                    block = {"server": name, "clients": clients, "queries": len(ms),
                             "p50_ms": round(statistics.median(ms), 2),
                             "p99_ms": round(ms[int(len(ms) * 0.99) - 1], 2),
                             # CPU time per query: what the server spends, and what the clients
                             # (Python and the ADBC driver, on the same cores) spend.
                             "server_cpu_ms": round(server_cpu / len(ms) * 1000, 3),
                             "client_cpu_ms": round(client_cpu / len(ms) * 1000, 3)}
                    report["blocks"].append(block)
                    print(json.dumps(block), flush=True)
        finally:
            for server in servers.values():
                server.stop()
    report["load_after"] = os.getloadavg()
    lines = ["# Dashboard latency (demo mesh, ADBC, analyst)", "",
             f"{args.queries} queries per client, {os.cpu_count()} cpus, load {report['load_before'][0]:.2f} "
             f"before / {report['load_after'][0]:.2f} after", "",
             "| clients | cache off p50 | cache off p99 | cache on p50 | cache on p99 | on/off p50 "
             "| server CPU/query (off, on) | client CPU/query (off, on) |",
             "|---|---|---|---|---|---|---|---|"]
    for clients in counts:
        off, on = (next(b for b in report["blocks"] if b["server"] == s and b["clients"] == clients)
                   for s in ("cache off", "cache on"))
        lines.append(f"| {clients} | {off['p50_ms']} ms | {off['p99_ms']} ms | {on['p50_ms']} ms | "
                     f"{on['p99_ms']} ms | {on['p50_ms'] / off['p50_ms']:.2f} | "
                     f"{off['server_cpu_ms']}, {on['server_cpu_ms']} ms | "
                     f"{off['client_cpu_ms']}, {on['client_cpu_ms']} ms |")
    markdown = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    (args.out / "report.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
