"""Catalog scale: a generated mesh of many domains, each with a raw, a silver and a gold layer of
many datasets, served by a real `meshql serve` on loopback. Measures what grows with the mesh:
the time from starting the server to listening, RSS once listening, GetTables with and without
column schemas, GetDbSchemas, `information_schema` and `mesh.catalog` queries, and a query of
one table — once the server has described the mesh in its system catalog (a first GetTables
right after start, and how long the description took, are reported too).

    python benches/mesh_scale.py                          # 100 domains x 3 layers x 100 = 30,000 tables
    python benches/mesh_scale.py --domains 10 --datasets 10   # 300 tables

Each domain's raw datasets are `sources` over one small CSV file, its silver datasets are views
of them and its gold datasets views of silver, so the mesh needs no build and every table can be
queried. Prints and writes (`--out`, default ~/.cache/meshql/bench/mesh-scale/report.{json,md})
the medians of `--reps` repetitions of each listing.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "robustness"))

import harness  # noqa: E402

# The demo mesh's `admin` (password `admin`).
ADMIN_HASH = ("$argon2id$v=19$m=19456,t=2,p=1$zEicqwBTpqHmoLITDhbD1g$"
              "zxJboJ9H5umLNnC2KU6lzLaqQMbV4SsnuS8G6vjYTM4")
ROWS = "id,name,amount\n1,a,1.5\n2,b,2.5\n3,c,3.5\n"


def generate(root: Path, domains: int, datasets: int) -> Path:
    """Writes the mesh under `root` and returns it."""
    catalog, sql = root / "catalog", root / "sql"
    catalog.mkdir(parents=True)
    names = [f"d{d:03}" for d in range(domains)]
    (catalog / "mesh.yaml").write_text(
        "name: scale\nwarehouse: ./warehouse\ndomains:\n"
        + "".join(f"  - name: {n}\n" for n in names)
        + f"principals:\n  - name: admin\n    groups: [admins]\n    password_hash: \"{ADMIN_HASH}\"\n"
        + "server:\n  addr: 127.0.0.1:0\n")
    for n in names:
        folder = catalog / n
        (folder / "data").mkdir(parents=True)
        (folder / "data" / "rows.csv").write_text(ROWS)
        sources = "".join(
            f"  - name: r{i:03}\n    layer: raw\n    format: csv\n    location: data/rows.csv\n"
            for i in range(datasets))
        (folder / "domain.yaml").write_text(
            f"owner: {n}\ndescription: Generated domain {n}.\nlayers: [raw, silver, gold]\n"
            f"sources:\n{sources}")
        for layer, source, prefix in (("silver", "raw", "r"), ("gold", "silver", "s")):
            out = sql / n / layer
            out.mkdir(parents=True)
            for i in range(datasets):
                (out / f"{layer[0]}{i:03}.sql").write_text(
                    f"-- Generated {layer} dataset {i} of {n}.\n-- @materialized: view\n"
                    f"SELECT id, name, amount * 2 AS amount FROM {source}.{prefix}{i:03}\n")
    return root


def timed(f, reps: int) -> tuple[float, object]:
    """The median of `reps` timings of `f()` in milliseconds, and its last result."""
    times, result = [], None
    for _ in range(reps):
        start = time.perf_counter()
        result = f()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=100)
    parser.add_argument("--datasets", type=int, default=100, help="per layer of each domain")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path,
                        default=Path.home() / ".cache/meshql/bench/mesh-scale")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="meshql-scale-"))
    started = time.perf_counter()
    mesh = generate(work / "mesh", args.domains, args.datasets)
    tables = args.domains * 3 * args.datasets
    print(f"generated {tables} tables in {time.perf_counter() - started:.1f} s: {mesh}", flush=True)

    server = harness.Server(mesh, extra_args=["--no-build"])
    started = time.perf_counter()
    server.start(timeout=600)
    listening = time.perf_counter()
    startup_s = listening - started
    try:
        rss_mb = server.rss() >> 20
        conn = harness.connect(server.uri, "admin")
        cur = conn.cursor()
        results = {}

        def listing(name, f, expect):
            ms, got = timed(f, args.reps)
            if expect is not None and got != expect:
                raise SystemExit(f"{name}: expected {expect}, got {got}")
            results[name] = ms
            print(f"  {name:<40} {ms:9.1f} ms   ({got})", flush=True)

        def rows(f):
            return lambda: f().read_all().num_rows

        def count(sql):
            def run():
                cur.execute(sql)
                return cur.fetch_arrow_table().column(0)[0].as_py()
            return run

        # Right after start: every source's schema is inferred and every view planned once.
        started = time.perf_counter()
        conn.adbc_get_objects(depth="tables").read_all()
        results["GetTables, first call"] = (time.perf_counter() - started) * 1000
        print(f"  {'GetTables, first call':<40} {results['GetTables, first call']:9.1f} ms", flush=True)
        # The rest once the server has described the mesh in its system catalog.
        deadline = time.monotonic() + 900
        while "datasets described" not in server.log():
            if time.monotonic() > deadline:
                raise SystemExit("the server did not describe the mesh within 15 minutes")
            time.sleep(0.1)
        described_s = time.perf_counter() - listening
        print(f"described {described_s:.1f} s after listening", flush=True)
        listing("GetTables", rows(lambda: conn.adbc_get_objects(depth="tables")),
                args.domains + 1)
        listing("GetTables with columns", rows(lambda: conn.adbc_get_objects(depth="all")),
                args.domains + 1)
        listing("GetDbSchemas", rows(lambda: conn.adbc_get_objects(depth="db_schemas")),
                args.domains + 1)
        listing("information_schema.tables count",
                count("SELECT count(*) FROM information_schema.tables "
                      "WHERE table_catalog <> 'mesh' AND table_schema <> 'information_schema'"),
                tables)
        listing("mesh.catalog.datasets count",
                count("SELECT count(*) FROM mesh.catalog.datasets"), tables)
        listing("one gold view",
                count(f"SELECT sum(amount) FROM d000.gold.g{args.datasets - 1:03}"), 30)
        conn.close()
        rss_after_mb = server.rss() >> 20
    finally:
        server.stop()

    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "tables": tables, "domains": args.domains, "datasets_per_layer": args.datasets,
        "startup_s": round(startup_s, 2), "described_s": round(described_s, 1), "rss_mb": {"listening": rss_mb, "after": rss_after_mb},
        "listings_ms": {k: round(v, 1) for k, v in results.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    md = [f"# Mesh scale: {tables} tables ({args.domains} domains x 3 layers x {args.datasets})",
          "", f"- start-up to listening (`serve --no-build`): {startup_s:.2f} s",
          f"- system catalog described (in the background): {described_s:.1f} s after listening",
          f"- RSS listening / after the listings: {rss_mb} / {rss_after_mb} MiB", "",
          "| listing | median ms |", "|---|---|"]
    md += [f"| {k} | {v:.1f} |" for k, v in results.items()]
    (args.out / "report.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
