#!/usr/bin/env bash
# Runs every test of meshql: the Rust suites (unit, integration, benches in test mode) and the
# Python client suite, in a virtual environment this script creates. Needs only cargo and python3.
# Everything is built in the release profile, the one `cargo run --release -- serve` uses, so
# the README's two commands build the DataFusion/Delta stack once between them.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/meshql/target}"

cargo test --release --locked --all-targets

if [ -d tests/clients ]; then
  venv="${MESHQL_VENV:-$HOME/.cache/meshql/venv}"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/clients/requirements.txt
  cargo build --release --locked --bin meshql
  export MESHQL_BIN="$CARGO_TARGET_DIR/release/meshql"
  "$venv/bin/python" -m pytest -q tests/clients tests/robustness
  # The TPC-H harness in its smoke form: all 22 queries at SF 0.01, answers checked against
  # DataFusion and DuckDB (timings at this size mean nothing; see benches/README.md).
  "$venv/bin/python" benches/tpch/run.py --smoke
  # The transfer, table-format and dashboard benchmarks in short forms, so that they keep working.
  "$venv/bin/python" benches/transfers.py --smoke
  "$venv/bin/python" benches/formats.py --smoke
  "$venv/bin/python" benches/dashboard.py --queries 5 --clients 1,2 \
    --out "$CARGO_TARGET_DIR/bench-smoke/dashboard"
fi
