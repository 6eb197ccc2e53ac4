"""Transfers: how fast meshql streams a large and a small result over Flight SQL, next to a plain
pyarrow.flight server that holds the same rows in memory, with one client for both.

    python benches/transfers.py                  # TPC-H SF 1 lineitem: all 6 M rows, and 100,000
    python benches/transfers.py --sf 0.1 --reps 5
    python benches/transfers.py --smoke          # SF 0.01, one repetition (the test command's form)

The client is pyarrow.flight for both servers: GetFlightInfo with a Flight SQL
`CommandStatementQuery`, then DoGet of its endpoint, read to the end into an Arrow table. meshql
serves lineitem as a Parquet source of a `tpch` domain, read in place (what `benches/tpch/run.py`
serves); the baseline process reads the file into memory once, before it is timed. Repetitions
alternate between the two servers. Writes `report.{json,md}` (`--out`, default
~/.cache/meshql/bench/transfers-sf<SF>): bytes, rows, medians, throughput and the ratio of
meshql's rows per second to the baseline's (the servers' Arrow types differ a little: meshql
sends strings as Utf8 unless `view_types` is set, so bytes are reported for each).
"""

import argparse
import json
import os
import socket
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

SMALL_ROWS = 100_000
QUERIES = {
    "all of lineitem": "SELECT * FROM lineitem",
    f"{SMALL_ROWS:,} rows": f"SELECT * FROM lineitem LIMIT {SMALL_ROWS}",
}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def statement_command(sql: str) -> bytes:
    """`Any(CommandStatementQuery { query: sql })`, as Flight SQL clients send it."""
    query = _field(1, sql.encode())
    return _field(1, b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery") + _field(2, query)


def serve_baseline(port: int, lineitem: Path) -> None:
    """The baseline: a pyarrow.flight server answering each benchmark query from memory."""
    import pyarrow.flight as flight
    import pyarrow.parquet as pq

    table = pq.read_table(lineitem)
    tables = {statement_command(sql): table.slice(0, SMALL_ROWS) if "LIMIT" in sql else table
              for sql in QUERIES.values()}

    class Baseline(flight.FlightServerBase):
        def get_flight_info(self, context, descriptor):
            t = tables[descriptor.command]
            endpoint = flight.FlightEndpoint(descriptor.command, [])
            return flight.FlightInfo(t.schema, descriptor, [endpoint], t.num_rows, t.nbytes)

        def do_get(self, context, ticket):
            return flight.RecordBatchStream(tables[ticket.ticket])

    server = Baseline(f"grpc://127.0.0.1:{port}")
    print("ready", flush=True)
    server.serve()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(client, sql: str, options):
    import pyarrow.flight as flight

    info = client.get_flight_info(flight.FlightDescriptor.for_command(statement_command(sql)), options)
    tables = [client.do_get(e.ticket, options).read_all() for e in info.endpoints]
    return tables[0] if len(tables) == 1 else __import__("pyarrow").concat_tables(tables)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sf", type=float, default=1.0, help="TPC-H scale factor of lineitem (default 1)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions per query and server (default 5)")
    ap.add_argument("--data", type=Path, help="TPC-H Parquet directory (default ~/.cache/meshql/tpch/sf<SF>)")
    ap.add_argument("--out", type=Path, help="report directory (default ~/.cache/meshql/bench/transfers-sf<SF>)")
    ap.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                    help="a server setting of the benchmark mesh (repeatable), e.g. 'accelerate=[tpch.raw]'")
    ap.add_argument("--smoke", action="store_true", help="SF 0.01, one repetition")
    ap.add_argument("--serve-baseline", nargs=2, metavar=("PORT", "LINEITEM"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_baseline:
        serve_baseline(int(args.serve_baseline[0]), Path(args.serve_baseline[1]))
        return 0
    if args.smoke:
        args.sf, args.reps = 0.01, 1
    sf = f"{args.sf:g}"
    data = args.data or Path.home() / ".cache/meshql/tpch" / f"sf{sf}"
    out = args.out or Path.home() / ".cache/meshql/bench" / f"transfers-sf{sf}"
    tpch.generate(data, args.sf)

    import pyarrow.flight as flight

    report = {"benchmark": "transfers", "scale_factor": args.sf, "repetitions": args.reps,
              "settings": args.setting,
              "machine": tpch.machine(), "load_before": os.getloadavg(), "queries": {}}
    port = free_port()
    baseline = subprocess.Popen([sys.executable, __file__, "--serve-baseline", str(port),
                                 str(data / "lineitem.parquet")], stdout=subprocess.PIPE, text=True)
    with tempfile.TemporaryDirectory(prefix="meshql-transfers-") as tmp:
        server = harness.Server(tpch.write_mesh(Path(tmp), data, args.setting)).start()
        try:
            if baseline.stdout.readline().strip() != "ready":
                raise SystemExit("the pyarrow.flight baseline did not start")
            clients = {
                "meshql": (flight.connect(server.uri), flight.FlightCallOptions(headers=[
                    (b"authorization", f"Bearer {harness.ADMIN_TOKEN}".encode())])),
                "pyarrow.flight": (flight.connect(f"grpc://127.0.0.1:{port}"), flight.FlightCallOptions()),
            }
            for label, sql in QUERIES.items():
                qualified = sql.replace("FROM lineitem", "FROM tpch.raw.lineitem")
                times = {name: [] for name in clients}
                shapes = {}
                for rep in range(args.reps + 1):  # the first round warms caches, untimed
                    for name, (client, options) in clients.items():
                        start = time.perf_counter()
                        table = fetch(client, qualified if name == "meshql" else sql, options)
                        elapsed = time.perf_counter() - start
                        shapes[name] = (table.num_rows, table.nbytes)
                        if rep:
                            times[name].append(elapsed)
                if shapes["meshql"][0] != shapes["pyarrow.flight"][0]:
                    raise SystemExit(f"{label}: meshql sent {shapes['meshql'][0]} rows, "
                                     f"the baseline {shapes['pyarrow.flight'][0]}")
                entry = {"sql": sql, "rows": shapes["meshql"][0]}
                for name in clients:
                    median = statistics.median(times[name])
                    entry[name] = {"median_s": round(median, 4), "bytes": shapes[name][1],
                                   "gb_per_s": round(shapes[name][1] / median / 1e9, 3)}
                # The same rows: the ratio of the times is that of rows per second.
                entry["throughput_ratio"] = round(entry["pyarrow.flight"]["median_s"] / entry["meshql"]["median_s"], 3)
                report["queries"][label] = entry
                print(json.dumps({label: entry}), flush=True)
            report["meshql_peak_rss_mib"] = round(server.peak_rss / 2**20)
        finally:
            server.stop()
            baseline.terminate()
            baseline.wait(timeout=30)
    report["load_after"] = os.getloadavg()
    lines = [f"# Transfers (TPC-H SF {sf} lineitem over Flight, one pyarrow.flight client)", "",
             f"{args.reps} repetitions, medians; load {report['load_before'][0]:.2f} before / "
             f"{report['load_after'][0]:.2f} after; meshql peak RSS {report['meshql_peak_rss_mib']} MiB"
             + (f"; settings: {', '.join(args.setting)}" if args.setting else ""), "",
             "| result | rows | meshql | pyarrow.flight (in memory) | meshql / baseline rows per second |",
             "|---|---|---|---|---|"]
    for label, e in report["queries"].items():
        lines.append(f"| {label} | {e['rows']:,} | {e['meshql']['median_s'] * 1000:.1f} ms, "
                     f"{e['meshql']['gb_per_s']} GB/s | {e['pyarrow.flight']['median_s'] * 1000:.1f} ms, "
                     f"{e['pyarrow.flight']['gb_per_s']} GB/s | {e['throughput_ratio']} |")
    markdown = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
