"""DataFusion session settings compared on TPC-H, in process: how meshql's defaults are chosen.

Runs the 22 queries in datafusion-python (the same DataFusion line as meshql) once per variant
of the session settings, the variants interleaved per repetition, and prints each variant's
geometric mean against the first, with the queries it slows and speeds most. meshql's own
settings (`Engine::session_config`) take what wins here; `run.py` then checks the gain end to end.

    python benches/tpch/settings.py --data ~/.cache/meshql/tpch/sf1
    python benches/tpch/settings.py --variant pushdown=datafusion.execution.parquet.pushdown_filters:true
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import datafusion

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import TABLES, geomean  # noqa: E402

QUERIES = Path(__file__).resolve().parent / "queries"

VARIANTS = {
    "default": {},
    "batch16k": {"datafusion.execution.batch_size": "16384"},
    "batch32k": {"datafusion.execution.batch_size": "32768"},
    "partitions2x": {"datafusion.execution.target_partitions": str(2 * (os.cpu_count() or 1))},
    "pushdown": {
        "datafusion.execution.parquet.pushdown_filters": "true",
        "datafusion.execution.parquet.reorder_filters": "true",
    },
}


def arguments() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path.home() / ".cache/meshql/tpch/sf1",
                    help="Parquet directory (run.py generates it)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per query and variant")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=KEY:VALUE[,KEY:VALUE]",
                    help="a variant of your own (repeatable); the built-in ones run when none is given")
    args = ap.parse_args()
    if args.variant:
        variants = {"default": {}}
        for v in args.variant:
            name, _, pairs = v.partition("=")
            variants[name] = dict(p.split(":", 1) for p in pairs.split(",") if p)
        args.variants = variants
    else:
        args.variants = VARIANTS
    return args


def session(data: Path, threads: int, settings: dict) -> "datafusion.SessionContext":
    config = datafusion.SessionConfig().with_target_partitions(threads)
    for key, value in settings.items():
        config = config.set(key, value)
    ctx = datafusion.SessionContext(config)
    for t in TABLES:
        ctx.register_parquet(t, str(data / f"{t}.parquet"))
    return ctx


def main() -> int:
    args = arguments()
    if not all((args.data / f"{t}.parquet").exists() for t in TABLES):
        raise SystemExit(f"no TPC-H data in {args.data}; `run.py --data {args.data}` generates it")
    contexts = {name: session(args.data, args.threads, s) for name, s in args.variants.items()}
    times: dict[str, dict[int, list[float]]] = {name: {} for name in contexts}
    for q in range(1, 23):
        sql = (QUERIES / f"q{q:02d}.sql").read_text()
        for _ in range(args.reps):
            for name, ctx in contexts.items():
                started = time.perf_counter()
                ctx.sql(sql).collect()
                times[name].setdefault(q, []).append(time.perf_counter() - started)
    base = {q: statistics.median(v) for q, v in times["default"].items()}
    print(f"datafusion-python {datafusion.__version__}, {args.threads} threads, {args.data}")
    for name in contexts:
        medians = {q: statistics.median(v) for q, v in times[name].items()}
        ratios = {q: medians[q] / base[q] for q in medians}
        order = sorted(ratios, key=ratios.get)
        print(f"{name:14s} geomean {geomean(list(ratios.values())):.3f}  total {sum(medians.values()):6.2f} s  "
              f"best {[(q, round(ratios[q], 2)) for q in order[:3]]}  "
              f"worst {[(q, round(ratios[q], 2)) for q in order[-3:]]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
