"""The robustness suites in their short forms (the long forms are the scripts' defaults raised:
see each script's docstring and the README's Development section)."""

import json
import os

import concurrency
import crash
import differential
import fuzz
import soak


def _explain(report) -> str:
    return json.dumps(report, indent=1, default=str)[:8000]


def test_fuzzed_sql_neither_kills_nor_stalls_the_server(tmp_path):
    statements = int(os.environ.get("MESHQL_FUZZ_STATEMENTS", "1200"))
    report = fuzz.fuzz(statements=statements, clients=4, seed=int(os.environ.get("MESHQL_FUZZ_SEED", "1")),
                       workdir=tmp_path)
    assert report["ok"], _explain(report)


def test_meshql_and_duckdb_agree_on_generated_queries(tmp_path):
    queries = int(os.environ.get("MESHQL_DIFF_QUERIES", "300"))
    report = differential.differential(queries=queries, seed=1, workdir=tmp_path)
    assert report["ok"], _explain(report)


def test_kill_nine_leaves_every_table_consistent(tmp_path):
    iterations = int(os.environ.get("MESHQL_CRASH_ITERATIONS", "6"))
    report = crash.crash(iterations=iterations, seed=1, workdir=tmp_path)
    assert report["ok"], _explain(report)


def test_concurrent_runs_and_ingest_keep_exact_counts(tmp_path):
    report = concurrency.concurrency(rounds=2, batches=10, workdir=tmp_path)
    assert report["ok"], _explain(report)


def test_a_bounded_soak_has_no_errors_and_no_drift(tmp_path):
    seconds = int(os.environ.get("MESHQL_SOAK_SECONDS", "20"))
    report = soak.soak(seconds=seconds, clients=4, workdir=tmp_path)
    assert report["ok"], _explain(report)
