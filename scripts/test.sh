#!/usr/bin/env bash
# Runs every test of meshql: the Rust suites (unit, integration, benches in test mode) and the
# Python client suite, in a virtual environment this script creates, and the JDBC suite. Needs
# cargo, python3, and Java 17 with Maven.
# Everything is built in the release profile and in cargo's own target folder (or
# $CARGO_TARGET_DIR when set), the ones `cargo run --release -- serve` uses, so the README's two
# commands build the DataFusion/Delta stack once between them; the script checks that promise.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --release --locked --all-targets

# The server the README's other command runs must already be built: every unit of
# `cargo build --release --bin meshql` (what `cargo run --release` builds) is fresh after the tests.
python3 scripts/check_fresh.py
target_dir=$(cargo metadata --locked --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
export MESHQL_BIN="$target_dir/release/meshql"

venv="${MESHQL_VENV:-$HOME/.cache/meshql/venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/clients/requirements.txt
"$venv/bin/python" -m pytest -q tests/clients tests/robustness

# The JDBC suite: the Arrow Flight SQL JDBC driver (from Maven Central) against `meshql serve`.
(cd tests/jdbc && mvn -B -q test)

# The TPC-H harness in its smoke form: all 22 queries at SF 0.01, answers checked against
# DataFusion and DuckDB (timings at this size mean nothing; see benches/README.md).
"$venv/bin/python" benches/tpch/run.py --smoke
# The transfer, table-format and dashboard benchmarks in short forms, so that they keep working.
"$venv/bin/python" benches/transfers.py --smoke
"$venv/bin/python" benches/formats.py --smoke
"$venv/bin/python" benches/dashboard.py --queries 5 --clients 1,2 \
  --out "$target_dir/bench-smoke/dashboard"
