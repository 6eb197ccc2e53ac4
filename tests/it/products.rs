//! Data products: contracts validated like every spec file, write-audit-publish, the semver
//! guard.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datafusion::arrow::array::{Array, Float64Array, Int64Array};
use meshql::engine::Engine;
use meshql::quality::semver::{Impact, diff, verdict};
use meshql::spec::contract::{ContractColumn, Version};
use tempfile::TempDir;

use crate::common::{
    edit, embedded_count, engine, mesh_with, meshql_in as meshql, run_all, runtime, start_server,
};

const CONTRACT: &str = r#"apiVersion: v3.1.0
kind: DataContract
id: shop-orders
version: 1.0.0
status: active
domain: shop
description:
  purpose: Every order, checked.
schema:
  - name: orders
    physicalName: shop.silver.orders
    logicalType: object
    properties:
      - name: id
        logicalType: integer
        required: true
        unique: true
      - name: amount
        logicalType: number
        quality:
          - id: amount_in_range
            type: sql
            query: SELECT COUNT(*) FROM {object} WHERE amount < 0 OR amount > 1000
            mustBe: 0
    quality:
      - metric: rowCount
        mustBeGreaterThan: 0
      - id: few_small_orders
        type: sql
        query: SELECT COUNT(*) FROM {object} WHERE amount < 5
        mustBeLessThan: 1
        severity: warning
slaProperties:
  - property: latency
    value: 1
    unit: d
"#;

fn shop() -> TempDir {
    mesh_with(&[
        (
            "catalog/mesh.yaml",
            "name: shop\ndomains:\n  - name: shop\n",
        ),
        ("catalog/shop/domain.yaml", "owner: shop\n"),
        (
            "catalog/shop/data/orders.csv",
            "id,amount\n1,10\n2,20\n3,30\n",
        ),
        (
            "catalog/shop/jobs/load.json",
            r#"[{"execution": [{"type": "IngestCSV", "file_location": "data/orders.csv",
                 "additional_attributes": [{"key": "header", "value": "True"}, {"key": "inferSchema", "value": "True"}]}],
                 "destination": [{"type": "table", "table_name": "shop.raw.orders", "mode": "overwrite"}]}]"#,
        ),
        (
            "sql/shop/silver/orders.sql",
            "SELECT id, CAST(amount AS DOUBLE) AS amount FROM raw.orders\n",
        ),
        (
            "sql/shop/gold/total.sql",
            "SELECT SUM(amount) AS total FROM silver.orders\n",
        ),
        ("catalog/shop/products/orders.yaml", CONTRACT),
    ])
}

#[test]
fn a_bad_batch_is_blocked_and_no_reader_ever_sees_it() {
    runtime().block_on(async {
        let dir = shop();
        let e = engine(dir.path());
        let first = run_all(&e).await;
        assert!(first.succeeded(), "{first:#?}");
        let version = |e: &Arc<Engine>| {
            let e = Arc::clone(e);
            async move {
                e.catalog()
                    .snapshot(&meshql::spec::DatasetName::new("shop", "silver", "orders"))
                    .await
                    .unwrap()
                    .and_then(|s| s.version)
            }
        };
        assert_eq!(version(&e).await, Some(0));

        // A null key, a duplicate key and an out-of-range amount.
        std::fs::write(
            dir.path().join("catalog/shop/data/orders.csv"),
            "id,amount\n1,10\n2,20\n2,21\n,40\n5,5000\n",
        )
        .unwrap();

        // A reader polls the served product for the whole run.
        let (addr, _stop) = start_server(Arc::clone(&e)).await;
        let done = Arc::new(AtomicBool::new(false));
        let poller = {
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                let mut c = meshql::client::Client::connect(&format!("grpc://{addr}")).await.unwrap();
                c.login("admin", "admin").await.ok();
                let mut polls = 0;
                loop {
                    let (_, batches) = c
                        .query("SELECT count(*) AS n, count(id) AS ids, max(amount) AS top FROM shop.silver.orders")
                        .await
                        .expect("poll");
                    let b = &batches[0];
                    let n = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
                    let ids = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
                    let top = b.column(2).as_any().downcast_ref::<Float64Array>().unwrap().value(0);
                    assert_eq!((n, ids, top), (3, 3, 30.0), "a reader saw unaudited rows");
                    polls += 1;
                    if done.load(Ordering::SeqCst) {
                        return polls;
                    }
                }
            })
        };
        let second = run_all(&e).await;
        done.store(true, Ordering::SeqCst);
        let polls = poller.await.expect("poller");
        assert!(polls >= 2, "the reader polled {polls} times");

        let labels: Vec<(String, &str)> = second
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.status.label()))
            .collect();
        assert_eq!(
            labels,
            [
                ("shop.raw.orders".to_string(), "ok"),
                ("shop.silver.orders".to_string(), "blocked"),
                ("shop.gold.total".to_string(), "skipped"),
            ]
        );
        let why = second.nodes[1].status.detail().unwrap();
        assert!(
            why.starts_with(
                "publish blocked by contract `shop-orders` 1.0.0: 3 rule(s) failed; the table keeps its previous version\n"
            ),
            "{why}"
        );
        assert!(why.contains("rule `id_required` (nullValues): expected mustBe 0, observed 1\n    {\"amount\":40.0}"), "{why}");
        assert!(why.contains("rule `id_unique` (duplicateValues): expected mustBe 0, observed 1\n    {\"id\":2,\"copies\":2}"), "{why}");
        assert!(why.contains("rule `amount_in_range` (sql): expected mustBe 0, observed 1"), "{why}");
        assert!(!why.contains("few_small_orders"), "warnings do not block: {why}");

        // The served version is the audited one.
        assert_eq!(version(&e).await, Some(0));
        assert_eq!(embedded_count(&e, "SELECT count(*) FROM shop.silver.orders").await, 3);
        assert_eq!(
            embedded_count(&e, "SELECT count(*) FROM mesh.ops.runs WHERE status = 'blocked' AND node = 'shop.silver.orders'").await,
            1
        );
        // Every evaluation is recorded, passed or failed.
        assert_eq!(
            embedded_count(
                &e,
                &format!(
                    "SELECT count(*) FROM mesh.ops.checks WHERE run_id = '{}' AND result = 'fail'",
                    second.run_id
                )
            )
            .await,
            3
        );
        assert_eq!(
            embedded_count(
                &e,
                &format!(
                    "SELECT count(*) FROM mesh.ops.checks WHERE run_id = '{}' AND result = 'pass'",
                    second.run_id
                )
            )
            .await,
            3,
            "schema, rowCount and the warning pass"
        );

        // Fixed data publishes again.
        std::fs::write(
            dir.path().join("catalog/shop/data/orders.csv"),
            "id,amount\n1,10\n2,20\n4,40\n",
        )
        .unwrap();
        let third = run_all(&e).await;
        assert!(third.succeeded(), "{third:#?}");
        assert_eq!(version(&e).await, Some(1));
        // The staging table is gone once its rows are published.
        assert!(!dir.path().join("warehouse/_mesh/staging/shop/silver/orders").exists());
    });
}

#[test]
fn a_contract_that_disagrees_with_the_sql_blocks_with_a_diff() {
    runtime().block_on(async {
        let dir = shop();
        edit(
            &dir.path().join("sql/shop/silver/orders.sql"),
            "CAST(amount AS DOUBLE) AS amount",
            "CAST(amount AS VARCHAR) AS amount, 'x' AS note",
        );
        edit(&dir.path().join("catalog/shop/products/orders.yaml"), "      - name: id\n", "      - name: id\n        description: The key.\n");
        let e = engine(dir.path());
        let report = run_all(&e).await;
        let node = report.node("shop.silver.orders").unwrap();
        assert_eq!(node.status.label(), "blocked");
        let why = node.status.detail().unwrap();
        assert!(
            why.contains(
                "rule `schema` (schema): expected the contract's columns and types, observed 2\n    \
                 ~ amount: the contract says number, the data is Utf8View\n    \
                 + note: in the data (Utf8View), missing from the contract"
            ),
            "{why}"
        );
        assert!(e.catalog().snapshot(&meshql::spec::DatasetName::new("shop", "silver", "orders")).await.unwrap().is_none());
    });
}

#[test]
fn check_pins_contract_problems_and_bad_rule_sql() {
    let dir = shop();
    let file = dir.path().join("catalog/shop/products/orders.yaml");
    edit(&file, "status: active", "status: actve");
    edit(&file, "WHERE amount < 5\n", "WHERE amount <\n");
    edit(
        &file,
        "      - metric: rowCount",
        "      - metric: rowcount",
    );
    edit(
        &file,
        "  purpose: Every order, checked.",
        "  purpose: Every order, checked.\n  owner: shop",
    );
    let (code, _, err) = meshql(dir.path(), &["check"]);
    assert_eq!(code, Some(2), "{err}");
    let f = file.display();
    for expected in [
        format!(
            "{f}:5:9: invalid status `actve`; expected one of: proposed, draft, active, deprecated, retired (did you mean `active`?)"
        ),
        format!(
            "{f}:9:3: unknown key `owner`; expected one of: authoritativeDefinitions, customProperties, limitations, purpose, usage"
        ),
        format!(
            "{f}:27:17: unknown metric `rowcount`; expected one of: nullValues, missingValues, invalidValues, duplicateValues, rowCount (did you mean `rowCount`?)"
        ),
        format!("{f}:31:60: quality rule query: invalid SQL: Expected: an expression, found: EOF"),
    ] {
        assert!(err.contains(&expected), "missing {expected}\nin\n{err}");
    }
}

fn col(name: &str, logical: &str, required: bool) -> ContractColumn {
    ContractColumn {
        name: name.into(),
        logical_type: Some(logical.into()),
        physical_type: None,
        description: None,
        required,
        unique: false,
        primary_key: false,
        primary_key_position: None,
        classification: None,
    }
}

#[test]
fn semver_guard_cases() {
    let v = |s: &str| Version::parse(s).unwrap();
    let old = vec![
        col("id", "integer", true),
        col("amount", "number", false),
        col("note", "string", false),
    ];
    let cases: Vec<(&str, Vec<ContractColumn>, &str, Option<&str>)> = vec![
        // Dropping a column.
        (
            "drop",
            vec![col("id", "integer", true), col("amount", "number", false)],
            "1.1.0",
            Some("1.0.0 → 1.1.0 breaks consumers: bump the major version (to 2.0.0)"),
        ),
        (
            "drop, major bump",
            vec![col("id", "integer", true), col("amount", "number", false)],
            "2.0.0",
            None,
        ),
        // Renaming one.
        (
            "rename",
            vec![
                col("id", "integer", true),
                col("amount", "number", false),
                col("comment", "string", false),
            ],
            "1.0.1",
            Some("1.0.0 → 1.0.1 breaks consumers: bump the major version (to 2.0.0)"),
        ),
        // Narrowing a type.
        (
            "narrow",
            vec![
                col("id", "integer", true),
                col("amount", "integer", false),
                col("note", "string", false),
            ],
            "1.1.0",
            Some("1.0.0 → 1.1.0 breaks consumers: bump the major version (to 2.0.0)"),
        ),
        // Widening one is an addition.
        (
            "widen",
            vec![
                col("id", "number", true),
                col("amount", "number", false),
                col("note", "string", false),
            ],
            "1.1.0",
            None,
        ),
        // Relaxing `required`.
        (
            "relax",
            vec![
                col("id", "integer", false),
                col("amount", "number", false),
                col("note", "string", false),
            ],
            "1.9.0",
            Some("1.0.0 → 1.9.0 breaks consumers: bump the major version (to 2.0.0)"),
        ),
        // Adding a column without, then with, a minor bump.
        (
            "add",
            vec![
                col("id", "integer", true),
                col("amount", "number", false),
                col("note", "string", false),
                col("vat", "number", false),
            ],
            "1.0.1",
            Some("1.0.0 → 1.0.1 changes the schema: bump at least the minor version (to 1.1.0)"),
        ),
        (
            "add, minor bump",
            vec![
                col("id", "integer", true),
                col("amount", "number", false),
                col("note", "string", false),
                col("vat", "number", false),
            ],
            "1.1.0",
            None,
        ),
        // No schema change: any forward version.
        ("same", old.clone(), "1.0.0", None),
        (
            "backwards",
            old.clone(),
            "0.9.0",
            Some("the version goes backwards (1.0.0 → 0.9.0)"),
        ),
    ];
    for (what, new, version, expected) in cases {
        let changes = diff(&old, &new);
        assert_eq!(
            verdict(v("1.0.0"), v(version), &changes).as_deref(),
            expected,
            "{what}: {changes:?}"
        );
    }
    let rename = diff(
        &old,
        &[
            col("id", "integer", true),
            col("amount", "number", false),
            col("comment", "string", false),
        ],
    );
    assert_eq!(rename.len(), 1);
    assert_eq!(rename[0].line, "~ note → comment: renamed");
    assert_eq!(rename[0].impact, Impact::Breaking);
}

#[test]
fn check_compares_contracts_with_what_was_published() {
    let dir = shop();
    let (code, _, err) = meshql(dir.path(), &["run"]);
    assert_eq!(code, Some(0), "{err}");
    let file = dir.path().join("catalog/shop/products/orders.yaml");
    // Relax `required` on the key and call it a minor release.
    edit(
        &file,
        "        required: true\n        unique: true",
        "        unique: true",
    );
    edit(&file, "version: 1.0.0", "version: 1.1.0");
    let (code, _, err) = meshql(dir.path(), &["check"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{}:4:10: contract `shop-orders` of `shop.silver.orders`: 1.0.0 → 1.1.0 breaks consumers: bump the major version (to 2.0.0)\n  \
             changes since the published 1.0.0:\n    ~ id: no longer required (relaxed)",
            file.display()
        )),
        "{err}"
    );
    edit(&file, "version: 1.1.0", "version: 2.0.0");
    let (code, out, err) = meshql(dir.path(), &["check"]);
    assert_eq!(code, Some(0), "{out}{err}");
}

/// An HTTP server on loopback collecting the JSON bodies POSTed to it.
async fn webhook_receiver() -> (String, Arc<std::sync::Mutex<Vec<serde_json::Value>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got: Arc<std::sync::Mutex<Vec<serde_json::Value>>> = Arc::default();
    let sink = Arc::clone(&got);
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let sink = Arc::clone(&sink);
            tokio::spawn(async move {
                let mut reader = BufReader::new(socket);
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    // Request line and headers.
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).await.unwrap();
                    sink.lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap());
                    reader
                        .get_mut()
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await
                        .unwrap();
                }
            });
        }
    });
    (url, got)
}

#[test]
fn blocked_publishes_failed_runs_and_stale_products_reach_the_webhooks() {
    runtime().block_on(async {
        let (url, got) = webhook_receiver().await;
        let dir = shop();
        edit(
            &dir.path().join("catalog/mesh.yaml"),
            "domains:\n",
            &format!("notifications:\n  webhooks:\n    - url: {url}\ndomains:\n"),
        );
        let e = engine(dir.path());
        assert!(run_all(&e).await.succeeded());
        assert!(got.lock().unwrap().is_empty(), "a good run sends nothing");

        std::fs::write(dir.path().join("catalog/shop/data/orders.csv"), "id,amount\n1,10\n1,20\n").unwrap();
        let report = run_all(&e).await;
        let events = got.lock().unwrap().clone();
        let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["publish_blocked", "run_failed"]);
        assert_eq!(events[0]["node"], "shop.silver.orders");
        assert_eq!(events[0]["run_id"], report.run_id.as_str());
        assert_eq!(events[0]["failed_rules"][0]["rule"], "id_unique");
        assert_eq!(events[1]["failed"][0]["status"], "blocked");
        assert_eq!(events[1]["skipped"][0], "shop.gold.total");
        got.lock().unwrap().clear();

        // Freshness with an injected clock: fresh now, stale two days later (latency 1d).
        let published = e
            .catalog()
            .snapshot(&meshql::spec::DatasetName::new("shop", "silver", "orders"))
            .await
            .unwrap()
            .and_then(|s| s.last_modified)
            .unwrap();
        let later = Arc::new(std::sync::Mutex::new(published + chrono::Duration::hours(1)));
        let clock = Arc::clone(&later);
        let mut monitor = meshql::pipeline::FreshnessMonitor::new(Arc::clone(&e))
            .with_clock(move || *clock.lock().unwrap());
        assert!(monitor.check().await.unwrap().is_empty());
        *later.lock().unwrap() = published + chrono::Duration::hours(49);
        let stale = monitor.check().await.unwrap();
        assert_eq!(stale, [meshql::spec::DatasetName::new("shop", "silver", "orders")]);
        // Turning stale is one event, not one per check.
        assert!(monitor.check().await.unwrap().is_empty());
        let events = got.lock().unwrap().clone();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["event"], "product_stale");
        assert_eq!(events[0]["product"], "shop.silver.orders");
        assert_eq!(events[0]["latency_secs"], 86400);
        assert_eq!(events[0]["age_secs"], 49 * 3600);
        assert_eq!(
            embedded_count(&e, "SELECT count(*) FROM mesh.catalog.products WHERE freshness = 'stale' AND version = '1.0.0'").await,
            1
        );
    });
}

#[test]
fn serve_runs_nodes_on_their_schedule() {
    runtime().block_on(async {
        let dir = shop();
        edit(
            &dir.path().join("sql/shop/gold/total.sql"),
            "SELECT",
            "-- @schedule: * * * * * *\nSELECT",
        );
        let e = engine(dir.path());
        assert!(run_all(&e).await.succeeded());
        let schedules = meshql::pipeline::scheduled(e.mesh());
        assert_eq!(schedules.len(), 1);
        assert_eq!(schedules[0].node.to_string(), "shop.gold.total");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(meshql::pipeline::run_schedules(
            Arc::clone(&e),
            || true,
            async move {
                let _ = stop_rx.await;
            },
        ));
        // Every second: wait (at most 20 s) for two scheduled runs of the node.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let n = embedded_count(&e, "SELECT count(*) FROM mesh.ops.runs WHERE node = 'shop.gold.total'").await;
            if n >= 3 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the schedule did not run ({n} rows)");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        stop_tx.send(()).unwrap();
        task.await.unwrap();
        // Nothing changed between ticks: the scheduled runs found the node up to date.
        assert!(embedded_count(&e, "SELECT count(*) FROM mesh.ops.runs WHERE node = 'shop.gold.total' AND status = 'up_to_date'").await >= 2);
    });
}
