"""TPC-H through meshql's Flight SQL, side by side with in-process DataFusion and DuckDB.

The data comes from `tpchgen-cli` (Parquet, one file per table, cached by scale factor). meshql
serves the files as read-only `sources` of a `tpch` domain and is queried over ADBC with the
session's catalog and schema set to `tpch.raw`; DataFusion (Python, the same major version as
meshql's) and DuckDB read the same files in this process at the same thread count. Queries are
interleaved per repetition (meshql, DataFusion, DuckDB, meshql, ...), so a machine's noise hits
every engine alike; each answer is checked equal across engines (floats and decimals to 1e-6
relative). The report is JSON and a Markdown table: machine, versions, load average, medians and
ratios.

    python benches/tpch/run.py                       # SF 1, 3 repetitions, all 22 queries
    python benches/tpch/run.py --sf 10 --reps 1      # the long form
    python benches/tpch/run.py --queries 1,18,21     # some queries
    python benches/tpch/run.py --smoke               # SF 0.01, one repetition (the test command)

The exit status is non-zero when meshql fails a query or answers differently from the others.
Queries live in `queries/qNN.sql` with the specification's validation parameters; a few ORDER
BYs gained a tie-breaker so that answers compare row by row.
"""

import argparse
import datetime as dt
import decimal
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "robustness"))

import harness  # noqa: E402  (the robustness suites' server wrapper)

TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]
ENGINES = ["meshql", "datafusion", "duckdb"]


def arguments() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sf", type=float, default=1.0, help="scale factor (default 1)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per query and engine (default 3)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="threads of the in-process engines")
    ap.add_argument("--queries", default="1-22", help="e.g. 1,3,18 or 1-22 (default)")
    ap.add_argument("--engines", default=",".join(ENGINES), help="comma-separated subset of " + ",".join(ENGINES))
    ap.add_argument("--data", type=Path, help="Parquet directory (default ~/.cache/meshql/tpch/sf<SF>)")
    ap.add_argument("--out", type=Path, help="directory for report.json and report.md "
                    "(default ~/.cache/meshql/bench/tpch-sf<SF>)")
    ap.add_argument("--timeout", type=float, default=600, help="client-side limit per query, seconds")
    ap.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                    help="a server setting of the benchmark mesh (repeatable), e.g. query_memory_limit_mb=0")
    ap.add_argument("--format", choices=["parquet", "delta"], default="parquet",
                    help="what meshql reads: the Parquet files in place (default), or Delta copies "
                    "of them written by `meshql run`; the in-process engines read the Parquet files")
    ap.add_argument("--smoke", action="store_true", help="SF 0.01, one repetition")
    args = ap.parse_args()
    if args.smoke:
        args.sf, args.reps = 0.01, 1
    args.queries = parse_queries(args.queries)
    args.engines = [e for e in args.engines.split(",") if e]
    unknown = set(args.engines) - set(ENGINES)
    if unknown or "meshql" not in args.engines:
        ap.error(f"--engines must include meshql and name only {', '.join(ENGINES)}")
    sf = f"{args.sf:g}"
    args.data = args.data or Path.home() / ".cache/meshql/tpch" / f"sf{sf}"
    args.out = args.out or Path.home() / ".cache/meshql/bench" / f"tpch-sf{sf}"
    return args


def parse_queries(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    bad = [q for q in out if not 1 <= q <= 22]
    if bad:
        raise SystemExit(f"no TPC-H query {bad[0]}")
    return out


def generate(data: Path, sf: float) -> None:
    """Writes the eight tables with tpchgen-cli unless they are already there."""
    if all((data / f"{t}.parquet").exists() for t in TABLES):
        return
    data.mkdir(parents=True, exist_ok=True)
    cli = Path(sys.executable).with_name("tpchgen-cli")
    print(f"generating TPC-H SF {sf:g} into {data} ...", flush=True)
    subprocess.run([str(cli), "parquet", "-s", f"{sf:g}", "--output-dir", str(data)], check=True)


def write_mesh(root: Path, data: Path, settings: list[str], delta: bool = False) -> Path:
    """A mesh with one `tpch` domain whose raw layer is the Parquet files, read in place, and
    with `delta` a silver layer holding a Delta copy of each (built by `meshql run`);
    `settings` (`key=value`) go into its `server:` block. The result cache is off unless a
    setting turns it on: a repetition measures the engine, not a kept answer (dashboard.py
    measures the cache)."""
    (root / "catalog" / "tpch").mkdir(parents=True)
    server = {"result_cache_mb": "0"}
    server.update((k.strip(), v.strip()) for k, v in (s.split("=", 1) for s in settings))
    (root / "catalog" / "mesh.yaml").write_text(
        "name: tpch\nwarehouse: ./warehouse\ndomains:\n  - name: tpch\nserver:\n"
        + "".join(f"  {k}: {v}\n" for k, v in server.items()))
    sources = "".join(
        f"  - name: {t}\n    layer: raw\n    format: parquet\n    location: {data / (t + '.parquet')}\n"
        for t in TABLES)
    layers = "[raw, silver]" if delta else "[raw]"
    (root / "catalog" / "tpch" / "domain.yaml").write_text(
        f"owner: benchmarks\nlayers: {layers}\nsources:\n{sources}")
    if delta:
        silver = root / "sql" / "tpch" / "silver"
        silver.mkdir(parents=True)
        for t in TABLES:
            (silver / f"{t}.sql").write_text(f"SELECT * FROM raw.{t}\n")
        built = harness.run(["run"], root, timeout=3600)
        if built.returncode != 0:
            raise SystemExit(f"meshql run (the Delta copies) failed:\n{built.stdout}{built.stderr}")
    return root


class Meshql:
    name = "meshql"

    def __init__(self, mesh: Path, timeout: float, schema: str = "raw"):
        self.server = harness.Server(mesh).start()
        import adbc_driver_flightsql
        import adbc_driver_flightsql.dbapi as flightsql

        options = {
            adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {harness.ADMIN_TOKEN}",
            "adbc.flight.sql.rpc.timeout_seconds.fetch": str(timeout),
            "adbc.flight.sql.rpc.timeout_seconds.query": str(timeout),
        }
        self.conn = flightsql.connect(self.server.uri, db_kwargs=options, autocommit=True)
        self.conn.adbc_current_catalog = "tpch"
        self.conn.adbc_current_db_schema = schema

    def version(self) -> str:
        out = subprocess.run([harness.meshql_binary(), "--version"], capture_output=True, text=True)
        return out.stdout.strip()

    def run(self, sql: str):
        with self.conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetch_arrow_table()

    def close(self):
        self.conn.close()
        self.server.stop()


class DataFusion:
    name = "datafusion"

    def __init__(self, data: Path, threads: int):
        import datafusion

        self.module = datafusion
        self.ctx = datafusion.SessionContext(datafusion.SessionConfig().with_target_partitions(threads))
        for t in TABLES:
            self.ctx.register_parquet(t, str(data / f"{t}.parquet"))

    def version(self) -> str:
        return f"datafusion-python {self.module.__version__}"

    def run(self, sql: str):
        import pyarrow as pa

        df = self.ctx.sql(sql)
        # An empty answer has no batches to take the schema from.
        return pa.Table.from_batches(df.collect(), schema=df.schema())

    def close(self):
        pass


class DuckDB:
    name = "duckdb"

    def __init__(self, data: Path, threads: int):
        import duckdb

        self.module = duckdb
        self.con = duckdb.connect()
        self.con.execute(f"SET threads = {threads}")
        for t in TABLES:
            self.con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{data / (t + '.parquet')}')")

    def version(self) -> str:
        return f"duckdb {self.module.__version__}"

    def run(self, sql: str):
        return self.con.execute(sql).to_arrow_table()

    def close(self):
        self.con.close()


def normalised(table) -> list[tuple]:
    """Rows with numbers as floats rounded to 9 significant digits and dates as ISO text."""

    def value(v):
        if isinstance(v, (decimal.Decimal, float, int)) and not isinstance(v, bool):
            f = float(v)
            return 0.0 if f == 0 else float(f"{f:.9g}")
        if isinstance(v, (dt.date, dt.datetime)):
            return v.isoformat()
        return v

    return [tuple(value(v) for v in row.values()) for row in table.to_pylist()]


def same(a: list[tuple], b: list[tuple]) -> bool:
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b):
        if len(ra) != len(rb):
            return False
        for x, y in zip(ra, rb):
            if isinstance(x, float) and isinstance(y, float):
                if not math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-6):
                    return False
            elif x != y:
                return False
    return True


def geomean(xs: list[float]) -> float | None:
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else None


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cpus": os.cpu_count(), "cpu": model, "memory_gib": round(memory / 2**30, 1),
            "os": platform.platform(), "python": platform.python_version()}


def main() -> int:
    args = arguments()
    generate(args.data, args.sf)
    args.out.mkdir(parents=True, exist_ok=True)
    queries = {q: (HERE / "queries" / f"q{q:02}.sql").read_text() for q in args.queries}
    if 11 in queries:
        # Q11's FRACTION is 0.0001 / SF (specification, 2.4.11.3).
        queries[11] = queries[11].replace("* 0.0001", f"* {0.0001 / args.sf:.10f}".rstrip("0"))
    report = {"benchmark": "tpch", "scale_factor": args.sf, "format": args.format, "settings": args.setting, "repetitions": args.reps,
              "threads": args.threads, "machine": machine(), "load_before": os.getloadavg(),
              "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "queries": {}}
    with tempfile.TemporaryDirectory(prefix="meshql-tpch-") as tmp:
        engines = []
        try:
            delta = args.format == "delta"
            mesh = write_mesh(Path(tmp), args.data, args.setting, delta)
            engines.append(Meshql(mesh, args.timeout, "silver" if delta else "raw"))
            if "datafusion" in args.engines:
                engines.append(DataFusion(args.data, args.threads))
            if "duckdb" in args.engines:
                engines.append(DuckDB(args.data, args.threads))
            report["versions"] = {e.name: e.version() for e in engines}
            for q, sql in queries.items():
                report["queries"][f"q{q}"] = run_query(q, sql, engines, args.reps)
            report["meshql_peak_rss_mib"] = round(engines[0].server.peak_rss / 2**20)
            report["meshql_alive"] = engines[0].server.alive()
        finally:
            for e in engines:
                e.close()
    report["load_after"] = os.getloadavg()
    summarise(report, [e for e in ENGINES if e in args.engines])
    (args.out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    markdown = to_markdown(report, [e for e in ENGINES if e in args.engines])
    (args.out / "report.md").write_text(markdown)
    print(markdown)
    print(f"reports in {args.out}")
    return 0 if report["ok"] else 1


def run_query(q: int, sql: str, engines: list, reps: int) -> dict:
    times = {e.name: [] for e in engines}
    answers, errors = {}, {}
    for _ in range(reps):
        for e in engines:
            if e.name in errors:
                continue
            start = time.perf_counter()
            try:
                table = e.run(sql)
            except Exception as error:  # an engine's failure is a result, reported below
                errors[e.name] = f"{harness.status_of(error)}: {str(error).splitlines()[0][:300]}"
                continue
            times[e.name].append(time.perf_counter() - start)
            answers.setdefault(e.name, normalised(table))
    result = {"rows": {n: len(a) for n, a in answers.items()},
              "median_ms": {n: round(statistics.median(t) * 1000, 1) for n, t in times.items() if t},
              "errors": errors}
    reference = next((answers[n] for n in ("datafusion", "duckdb") if n in answers), None)
    result["matches"] = (reference is None or "meshql" not in answers
                         or same(answers["meshql"], reference))
    if "datafusion" in answers and "duckdb" in answers:
        result["reference_engines_agree"] = same(answers["datafusion"], answers["duckdb"])
    line = "  ".join(f"{n} {ms:8.1f} ms" for n, ms in result["median_ms"].items())
    flag = "" if result["matches"] and not errors else f"  {'MISMATCH ' if not result['matches'] else ''}{errors}"
    print(f"q{q:<3} {line}{flag}", flush=True)
    return result


def summarise(report: dict, names: list[str]) -> None:
    rows = report["queries"].values()
    both = lambda a, b: [r for r in rows if a in r["median_ms"] and b in r["median_ms"]]
    ratios = {}
    for other in names[1:]:
        pairs = both("meshql", other)
        ratios[f"meshql/{other}"] = geomean([r["median_ms"]["meshql"] / r["median_ms"][other] for r in pairs])
    if "datafusion" in names and "duckdb" in names:
        pairs = both("datafusion", "duckdb")
        ratios["datafusion/duckdb"] = geomean([r["median_ms"]["datafusion"] / r["median_ms"]["duckdb"] for r in pairs])
    report["geomean_ratios"] = {k: round(v, 3) if v else None for k, v in ratios.items()}
    failed = [q for q, r in report["queries"].items() if "meshql" in r["errors"]]
    wrong = [q for q, r in report["queries"].items() if not r["matches"]]
    report["meshql_failed"], report["meshql_mismatched"] = failed, wrong
    report["ok"] = not failed and not wrong and report.get("meshql_alive", False)


def to_markdown(report: dict, names: list[str]) -> str:
    m = report["machine"]
    lines = [
        f"# TPC-H SF {report['scale_factor']:g}: meshql over Flight SQL vs in-process engines",
        "",
        f"- machine: {m['cpus']} cpus ({m['cpu']}), {m['memory_gib']} GiB, {m['os']}",
        f"- versions: {', '.join(report.get('versions', {}).values())}",
        f"- {report['repetitions']} repetition(s), interleaved; medians; {report['threads']} threads in-process",
        f"- load average before/after: {report['load_before'][0]:.2f} / {report['load_after'][0]:.2f}",
        f"- meshql reads: {'Delta copies (meshql run)' if report.get('format') == 'delta' else 'the Parquet files'}"
        + (f"; settings: {', '.join(report['settings'])}" if report.get("settings") else ""),
        f"- meshql peak RSS: {report.get('meshql_peak_rss_mib', '?')} MiB",
        "",
        "| query | " + " | ".join(f"{n} ms" for n in names) + " | "
        + " | ".join(f"meshql/{n}" for n in names[1:]) + " | answer |",
        "|---" * (len(names) * 2) + "|---|",
    ]
    for q, r in report["queries"].items():
        ms = r["median_ms"]
        cells = [f"{ms[n]:.1f}" if n in ms else ("error" if n in r["errors"] else "-") for n in names]
        ratios = [f"{ms['meshql'] / ms[n]:.2f}" if "meshql" in ms and n in ms else "-" for n in names[1:]]
        answer = "same" if r["matches"] and not r["errors"] else ("DIFFERENT" if not r["matches"] else "; ".join(
            f"{n}: {e}" for n, e in r["errors"].items()))
        lines.append(f"| {q} | " + " | ".join(cells + ratios) + f" | {answer} |")
    lines.append("")
    for k, v in report["geomean_ratios"].items():
        lines.append(f"- geomean {k}: {v if v is not None else '-'}")
    if report["meshql_failed"] or report["meshql_mismatched"]:
        lines.append(f"- meshql failed: {report['meshql_failed']}; answered differently: {report['meshql_mismatched']}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
