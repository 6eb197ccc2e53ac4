"""Table formats: the same TPC-H lineitem written and read as Delta Lake and as Apache Iceberg
by meshql, side by side in one run.

    python benches/formats.py                 # SF 1 (6 M rows), 3 repetitions
    python benches/formats.py --sf 10 --reps 1
    python benches/formats.py --smoke         # SF 0.01, one repetition (the test command's form)

A mesh with one `tpch` domain: lineitem as a Parquet source, and two transforms copying it,
`-- @format: delta` and `-- @format: iceberg`. Each repetition runs `meshql run --force` of one
copy (the write: read the Parquet source, write data files, commit) and then the read queries
through `meshql query` (embedded: process start, planning and the scan), alternating formats;
one of them again on the table's first version (`VERSION AS OF`: time travel reads an old
version the way it reads the current one).
The Iceberg copy is also read back with PyIceberg, and its rows counted, to check what was
written. Writes `report.{json,md}` (`--out`, default ~/.cache/meshql/bench/formats-sf<SF>):
medians, rows per second and Iceberg's time over Delta's.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "tpch"))
sys.path.insert(0, str(HERE.parent / "tests" / "robustness"))

import harness  # noqa: E402
import run as tpch  # noqa: E402

FORMATS = ("delta", "iceberg")
# The first version of each copy: Delta counts from 0, Iceberg's sequence numbers from 1.
FIRST_VERSION = {"delta": 0, "iceberg": 1}
TIME_TRAVEL = "three columns, first version"
READS = {
    "three columns": "SELECT count(*), sum(l_extendedprice), max(l_shipdate) FROM {t}",
    "filtered count": "SELECT count(*) FROM {t} WHERE l_shipdate >= DATE '1998-09-01'",
    "every column": "SELECT count(*), max(l_comment), max(l_shipinstruct), max(l_shipmode), sum(l_tax), "
                    "sum(l_discount), max(l_returnflag), max(l_linestatus), max(l_commitdate), "
                    "max(l_receiptdate), sum(l_quantity), max(l_orderkey), max(l_partkey), "
                    "max(l_suppkey), max(l_linenumber) FROM {t}",
}


def write_mesh(root: Path, lineitem: Path) -> Path:
    (root / "catalog" / "tpch").mkdir(parents=True)
    (root / "catalog" / "mesh.yaml").write_text("name: formats\ndomains:\n  - name: tpch\n")
    (root / "catalog" / "tpch" / "domain.yaml").write_text(
        "owner: tpch\nsources:\n  - name: lineitem\n    layer: raw\n    format: parquet\n"
        f"    location: {lineitem}\n")
    silver = root / "sql" / "tpch" / "silver"
    silver.mkdir(parents=True)
    for f in FORMATS:
        (silver / f"lineitem_{f}.sql").write_text(f"-- @format: {f}\nSELECT * FROM raw.lineitem\n")
    return root


def timed(args: list[str], mesh: Path) -> float:
    start = time.perf_counter()
    done = harness.run(args, mesh)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"meshql {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sf", type=float, default=1.0, help="TPC-H scale factor (default 1)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    ap.add_argument("--data", type=Path, help="TPC-H Parquet directory (default ~/.cache/meshql/tpch/sf<SF>)")
    ap.add_argument("--out", type=Path, help="report directory (default ~/.cache/meshql/bench/formats-sf<SF>)")
    ap.add_argument("--smoke", action="store_true", help="SF 0.01, one repetition")
    args = ap.parse_args()
    if args.smoke:
        args.sf, args.reps = 0.01, 1
    sf = f"{args.sf:g}"
    data = args.data or Path.home() / ".cache/meshql/tpch" / f"sf{sf}"
    out = args.out or Path.home() / ".cache/meshql/bench" / f"formats-sf{sf}"
    tpch.generate(data, args.sf)
    import pyarrow.parquet as pq
    from pyiceberg.catalog.sql import SqlCatalog

    rows = pq.ParquetFile(data / "lineitem.parquet").metadata.num_rows
    report = {"benchmark": "formats", "scale_factor": args.sf, "repetitions": args.reps, "rows": rows,
              "machine": tpch.machine(), "load_before": os.getloadavg(), "operations": {}}
    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="meshql-formats-") as tmp:
        mesh = write_mesh(Path(tmp), data / "lineitem.parquet")
        for _ in range(args.reps):
            for f in FORMATS:
                table = f"tpch.silver.lineitem_{f}"
                times.setdefault(("write", f), []).append(timed(["run", "--force", "--select", table], mesh))
                for label, sql in READS.items():
                    times.setdefault((label, f), []).append(timed(["query", sql.format(t=table)], mesh))
                old = f"{table} VERSION AS OF {FIRST_VERSION[f]}"
                sql = READS["three columns"].format(t=old)
                times.setdefault((TIME_TRAVEL, f), []).append(timed(["query", sql], mesh))
        warehouse = mesh / "warehouse"
        catalog = SqlCatalog("meshql", uri=f"sqlite:///{warehouse}/_mesh/iceberg.db", warehouse=warehouse.as_uri())
        read_back = catalog.load_table("tpch.silver.lineitem_iceberg").scan().to_arrow().num_rows
        if read_back != rows:
            raise SystemExit(f"PyIceberg reads {read_back} rows of the Iceberg copy, not {rows}")
        report["bytes"] = {f: sum(p.stat().st_size for p in (warehouse / "tpch/silver" / f"lineitem_{f}").rglob("*.parquet"))
                           for f in FORMATS}
    for label in ("write", *READS, TIME_TRAVEL):
        entry = {}
        for f in FORMATS:
            median = statistics.median(times[(label, f)])
            entry[f] = {"median_s": round(median, 3), "rows_per_s": round(rows / median)}
        entry["iceberg_over_delta"] = round(entry["iceberg"]["median_s"] / entry["delta"]["median_s"], 2)
        report["operations"][label] = entry
        print(json.dumps({label: entry}), flush=True)
    report["load_after"] = os.getloadavg()
    lines = [f"# Table formats (TPC-H SF {sf} lineitem, {rows:,} rows, written and read by meshql)", "",
             f"{args.reps} repetitions, medians (whole `meshql` commands); load "
             f"{report['load_before'][0]:.2f} before / {report['load_after'][0]:.2f} after; Parquet bytes "
             f"of every version kept: delta {report['bytes']['delta']:,}, iceberg {report['bytes']['iceberg']:,}", "",
             "| operation | Delta | Iceberg | Iceberg / Delta time |", "|---|---|---|---|"]
    for label, e in report["operations"].items():
        cell = lambda f: f"{e[f]['median_s']:.3f} s ({e[f]['rows_per_s'] / 1e6:.2f} M rows/s)"  # noqa: E731
        lines.append(f"| {label} | {cell('delta')} | {cell('iceberg')} | {e['iceberg_over_delta']:.2f} |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwrote {out}/report.json and report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
