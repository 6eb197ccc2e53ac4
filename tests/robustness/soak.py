"""A bounded soak: several clients send a dashboard-like mix of valid queries for a fixed time.
Reported: queries, error rate, p50 and p99 latency, RSS at the start and end (drift), CPU left
busy after the last client. Every query is valid, so any error is a failure.

    python tests/robustness/soak.py --seconds 300 --clients 16   # the long form
    python tests/robustness/soak.py --seconds 20 --clients 4     # what CI runs
"""

import multiprocessing
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Server, connect, demo_mesh, finish, status_of, suite_arguments  # noqa: E402

# What dashboards ask, as the demo principals (row filters and masks included).
MIX = [
    ("analyst", "SELECT region, sum(revenue) AS revenue, sum(orders) AS orders FROM sales.gold.daily_revenue GROUP BY region ORDER BY region"),
    ("analyst", "SELECT t.region, t.month, t.revenue, r.roas FROM finance.gold.revenue_vs_target t JOIN marketing.gold.roas_by_region r USING (region) WHERE t.month = '2026-03' ORDER BY 1"),
    ("analyst", "SELECT customer_id, revenue FROM sales.gold.customer_value ORDER BY revenue DESC LIMIT 10"),
    ("north", "SELECT order_date, revenue FROM sales.gold.daily_revenue ORDER BY order_date DESC LIMIT 30"),
    ("sales", "SELECT status, count(*) AS n, sum(amount) AS amount FROM sales.silver.clean_transactions GROUP BY status"),
    ("sales", "SELECT store_id, count(*) FROM sales.silver.clean_transactions WHERE order_date BETWEEN DATE '2026-02-01' AND DATE '2026-02-28' GROUP BY store_id ORDER BY 2 DESC"),
    ("marketing", "SELECT channel, sum(spend) AS spend, sum(clicks) AS clicks FROM marketing.gold.campaign_performance GROUP BY channel"),
    ("finance", "SELECT * FROM finance.gold.revenue_vs_target WHERE attainment < 1.0 ORDER BY attainment"),
    ("admin", "SELECT count(*) FROM sales.raw.transactions WHERE unit_price > 100.5"),
]


def client(uri, index, seconds, out):
    rng = random.Random(index)
    conns = {}
    latencies, errors = [], []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        user, sql = rng.choice(MIX)
        conn = conns.get(user) or conns.setdefault(user, connect(uri, user, timeout=120))
        t = time.monotonic()
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                cur.fetch_arrow_table()
            latencies.append(time.monotonic() - t)
        except Exception as e:
            errors.append(f"{status_of(e)}: {str(e)[:300]}")
    for c in conns.values():
        c.close()
    out.put((latencies, errors))


def soak(seconds=20, clients=4, workdir=None, log=print):
    workdir = Path(workdir or tempfile.mkdtemp(prefix="meshql-soak-"))
    mesh = demo_mesh(workdir / "mesh", {"audit_flush_secs": 2})
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    with Server(mesh, log=workdir / "serve.log") as server:
        # Warm up (catalog caches), then measure from a settled start.
        with connect(server.uri, "analyst") as conn, conn.cursor() as cur:
            for _, sql in MIX[:3]:
                cur.execute(sql)
                cur.fetchall()
        start_rss = server.rss()
        procs = [ctx.Process(target=client, args=(server.uri, i, seconds, out), daemon=True)
                 for i in range(clients)]
        for p in procs:
            p.start()
        latencies, errors = [], []
        for _ in procs:
            lat, err = out.get(timeout=seconds + 300)
            latencies += lat
            errors += err
        for p in procs:
            p.join(timeout=60)
        end_rss = server.rss()
        time.sleep(1.0)
        busy = server.busy_cpu(2.0)
        peak = server.peak_rss
    total = len(latencies) + len(errors)
    lat_ms = sorted(x * 1000 for x in latencies)
    q = statistics.quantiles(lat_ms, n=100) if len(lat_ms) >= 2 else [0] * 99
    report = {
        "seconds": seconds,
        "clients": clients,
        "queries": total,
        "errors": len(errors),
        "error_rate": round(len(errors) / total, 6) if total else 0,
        "error_examples": sorted(set(errors))[:10],
        "p50_ms": round(q[49], 2),
        "p99_ms": round(q[98], 2),
        "rss_mb": {"start": start_rss >> 20, "end": end_rss >> 20, "peak": peak >> 20},
        "busy_cores_after": round(busy, 3),
    }
    # Memory may settle at a higher plateau as caches fill, but must not keep growing.
    report["ok"] = not errors and total > 0 and busy <= 0.10 and (end_rss - start_rss) < (512 << 20)
    return report


def main():
    args = suite_arguments(__doc__, seconds=20, clients=4)
    return finish(soak(args.seconds, args.clients), args.out)


if __name__ == "__main__":
    sys.exit(main())
