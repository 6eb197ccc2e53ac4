//! Pipelines: dependency order, failures that keep the previous version, crashes mid-run.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use futures::TryStreamExt;
use meshql::engine::Engine;
use meshql::pipeline::{NodeStatus, Run, RunPlan};
use meshql::spec::DatasetName;

use crate::common::{build_all, demo_mesh, edit, engine, mesh_with, runtime};

const MESH: &str = "name: t\ndomains:\n  - name: shop\n";
const DOMAIN: &str = "owner: shop\nsources:\n  - name: items\n    layer: raw\n    format: csv\n    location: data/items.csv\n";

fn items_csv() -> String {
    let mut s = String::from("id,price\n");
    for i in 1..=1000 {
        s.push_str(&format!("{i},{}.50\n", i % 7));
    }
    s
}

async fn rows(engine: &Arc<Engine>, sql: &str) -> String {
    let state = engine.session();
    let (_, stream) = engine.execute(sql, &state).await.expect("query");
    let batches: Vec<_> = stream.try_collect().await.expect("batches");
    datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string()
}

/// The version of `name` the engine's catalog currently serves.
async fn version(engine: &Arc<Engine>, name: &DatasetName) -> Option<u64> {
    let snapshot = engine.catalog().snapshot(name).await.expect("snapshot");
    snapshot.expect("published").version
}

#[test]
fn a_failing_node_keeps_the_previous_version_and_skips_its_dependants() {
    runtime().block_on(async {
        let csv = items_csv();
        let dir = mesh_with(&[
            ("catalog/mesh.yaml", MESH),
            ("catalog/shop/domain.yaml", DOMAIN),
            ("catalog/shop/data/items.csv", &csv),
            ("sql/shop/silver/items.sql", "SELECT id, price FROM raw.items"),
            ("sql/shop/gold/total.sql", "SELECT count(*) AS n, sum(price) AS total FROM silver.items"),
        ]);
        let e = engine(dir.path());
        build_all(&e).await;
        let before = rows(&e, "SELECT count(*) AS n, sum(id) AS s FROM shop.silver.items").await;
        assert!(before.contains("| 1000 | 500500 |"), "{before}");

        // Fails at execution time, on row 501, after part of the data was computed.
        std::fs::write(
            dir.path().join("sql/shop/silver/items.sql"),
            "SELECT CAST(CASE WHEN id > 500 THEN 'boom' ELSE CAST(id AS VARCHAR) END AS INT) AS id, price FROM raw.items",
        )
        .unwrap();
        let e = engine(dir.path());
        let plan = RunPlan::new(e.mesh(), &[]).unwrap();
        let report = Run::new(Arc::clone(&e), plan).await;
        let silver = report.node("shop.silver.items").unwrap();
        match &silver.status {
            NodeStatus::Failed { message: why, .. } => assert!(why.contains("boom"), "{why}"),
            other => panic!("expected a failure, got {other:?}"),
        }
        let gold = report.node("shop.gold.total").unwrap();
        assert_eq!(
            gold.status,
            NodeStatus::Skipped("upstream `shop.silver.items` did not succeed".into())
        );
        assert!(!report.succeeded());

        // Readers still see version 0, whole.
        let after = rows(&e, "SELECT count(*) AS n, sum(id) AS s FROM shop.silver.items").await;
        assert_eq!(after, before);
        let snapshot = e.catalog().snapshot(&DatasetName::new("shop", "silver", "items")).await.unwrap().unwrap();
        assert_eq!(snapshot.version, Some(0));
    });
}

#[test]
fn selection_runs_only_what_is_named_and_downstream() {
    runtime().block_on(async {
        let dir = demo_mesh();
        let e = engine(dir.path());
        build_all(&e).await;
        let plan = RunPlan::new(e.mesh(), &["sales.gold.daily_revenue+".parse().unwrap()]).unwrap();
        let names: Vec<String> = plan.nodes.iter().map(|n| n.to_string()).collect();
        assert_eq!(
            names,
            ["sales.gold.daily_revenue", "finance.gold.revenue_vs_target", "marketing.gold.roas_by_region"]
        );
        // Nothing changed since the build: nothing to do.
        let report = Run::new(Arc::clone(&e), plan.clone()).with_parallelism(2).await;
        assert!(report.succeeded(), "{report:#?}");
        // The versions of the build's publishes: Delta counts from 0, Iceberg (finance) from 1.
        let mut built = std::collections::BTreeMap::new();
        for node in &report.nodes {
            let name = meshql::spec::DatasetName::parse(&node.name).unwrap();
            let published = e.catalog().snapshot(&name).await.unwrap().unwrap().version.unwrap();
            assert_eq!((node.status.label(), node.version), ("up_to_date", Some(published)), "{node:?}");
            built.insert(node.name.clone(), published);
        }
        let report = Run::new(Arc::clone(&e), plan).with_parallelism(2).with_force(true).await;
        assert!(report.succeeded(), "{report:#?}");
        for node in &report.nodes {
            assert_eq!((node.status.label(), node.version), ("ok", Some(built[&node.name] + 1)), "{node:?}");
        }
        let err = RunPlan::new(e.mesh(), &["sales.gold.daily_revenu".parse().unwrap()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "selector `sales.gold.daily_revenu` matches no transform or job; did you mean `sales.gold.daily_revenue`?"
        );
    });
}

/// `kill -9` in the middle of `meshql run`: every table is afterwards absent or at a committed
/// version that reads back whole, and the next run succeeds.
#[test]
fn a_killed_run_leaves_only_committed_versions() {
    let dir = demo_mesh();
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshql"))
        .args([
            "--mesh",
            dir.path().to_str().unwrap(),
            "run",
            "--parallelism",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn meshql");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    // Kill right after the first node reports, while the next is being computed.
    loop {
        let line = lines.next().expect("meshql printed nothing").expect("line");
        if line.starts_with("ok") {
            break;
        }
    }
    child.kill().expect("kill -9");
    child.wait().unwrap();

    runtime().block_on(async {
        let e = engine(dir.path());
        let mut published = 0;
        for dataset in e.mesh().nodes() {
            if let Some(snapshot) = e.catalog().snapshot(&dataset.name).await.unwrap() {
                published += 1;
                assert!(snapshot.version.is_some());
                let sql = format!("SELECT count(*) FROM {}", dataset.name);
                rows(&e, &sql).await;
            }
        }
        assert!(published >= 1);
        build_all(&e).await;
    });
}

#[test]
fn publishes_are_visible_at_once_here_and_within_the_staleness_bound_elsewhere() {
    runtime().block_on(async {
        let dir = demo_mesh();
        edit(
            &dir.path().join("catalog/mesh.yaml"),
            "catalog_staleness_secs: 5",
            "catalog_staleness_secs: 1",
        );
        let reader = engine(dir.path());
        let writer = engine(dir.path());
        build_all(&writer).await;
        let name = DatasetName::new("sales", "gold", "daily_revenue");
        assert_eq!(version(&reader, &name).await, Some(0));

        // A run in this process: the next query sees the new version, no restart.
        let plan = RunPlan::new(
            writer.mesh(),
            &["sales.gold.daily_revenue".parse().unwrap()],
        )
        .unwrap();
        assert!(
            Run::new(Arc::clone(&writer), plan)
                .with_force(true)
                .await
                .succeeded()
        );
        assert_eq!(version(&writer, &name).await, Some(1));

        // Another process's commit: visible once the 1 s staleness bound has passed.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let v = version(&reader, &name).await;
            if v == Some(1) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "version 1 never became visible"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
}

#[test]
fn csv_and_parquet_folders_register_as_read_only_sources() {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::parquet::arrow::ArrowWriter;

    let dir = mesh_with(&[
        ("catalog/mesh.yaml", MESH),
        (
            "catalog/shop/domain.yaml",
            "owner: shop\nsources:\n  - name: orders\n    layer: raw\n    format: csv\n    location: orders/\n  \
             - name: customers\n    layer: raw\n    format: parquet\n    location: customers/\n  \
             - name: semicolons\n    layer: raw\n    format: csv\n    location: semi.csv\n    delimiter: \";\"\n",
        ),
        ("catalog/shop/orders/2026-01.csv", "id,amount\n1,10\n2,20\n"),
        ("catalog/shop/orders/2026-02.csv", "id,amount\n3,30\n"),
        ("catalog/shop/orders/README.txt", "not data"),
        ("catalog/shop/semi.csv", "a;b\n1;x\n"),
        (
            "sql/shop/silver/orders.sql",
            "SELECT o.id, o.amount, c.name FROM raw.orders o JOIN raw.customers c ON c.id = o.id",
        ),
    ]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec!["ana", "ben", "cy"])),
        ],
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("catalog/shop/customers")).unwrap();
    let file =
        std::fs::File::create(dir.path().join("catalog/shop/customers/part-0.parquet")).unwrap();
    let mut writer = ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();

    runtime().block_on(async {
        let e = engine(dir.path());
        build_all(&e).await;
        let got = rows(
            &e,
            "SELECT id, amount, name FROM shop.silver.orders ORDER BY id",
        )
        .await;
        assert_eq!(
            got.lines().collect::<Vec<_>>(),
            [
                "+----+--------+------+",
                "| id | amount | name |",
                "+----+--------+------+",
                "| 1  | 10     | ana  |",
                "| 2  | 20     | ben  |",
                "| 3  | 30     | cy   |",
                "+----+--------+------+",
            ]
        );
        assert!(
            rows(&e, "SELECT b FROM shop.raw.semicolons")
                .await
                .contains("| x |")
        );
        // Sources are never written.
        let store = e
            .catalog()
            .store(&DatasetName::new("shop", "raw", "orders"))
            .unwrap();
        assert!(!store.writable());
    });
}

/// Invalid mesh files: `check`, `run` and `serve` report every problem and exit 2 without
/// touching the warehouse.
#[test]
fn an_invalid_mesh_is_refused_before_any_write() {
    let dir = demo_mesh();
    std::fs::write(
        dir.path().join("sql/sales/gold/broken.sql"),
        "SELECT * FROM silver.nowhere",
    )
    .unwrap();
    edit(
        &dir.path().join("catalog/finance/domain.yaml"),
        "owner: finance",
        "owner: finance
ownr: typo",
    );
    for args in [
        vec!["check"],
        vec!["run"],
        vec!["serve", "--addr", "127.0.0.1:0"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_meshql"))
            .arg("--mesh")
            .arg(dir.path())
            .args(&args)
            .output()
            .expect("meshql");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(
                "sql/sales/gold/broken.sql:1:15: `sales.silver.nowhere` exists nowhere in the mesh"
            ),
            "{stderr}"
        );
        assert!(
            stderr.contains("catalog/finance/domain.yaml:3:1: unknown key `ownr`"),
            "{stderr}"
        );
        assert!(stderr.contains("2 problems found"), "{stderr}");
        assert!(
            !dir.path().join("warehouse").exists(),
            "{args:?} touched the warehouse"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_meshql"))
        .args(["--mesh", crate::common::repo().to_str().unwrap(), "check"])
        .output()
        .expect("meshql");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "mesh `demo`: 3 domains, 15 datasets (10 transforms, 5 written by jobs, 5 products); no problems found\n"
    );
}

#[test]
fn a_replacement_may_drop_rename_or_loosen_not_null_columns() {
    use meshql::storage::WriteMode;

    use crate::common::{embedded, publish};

    runtime().block_on(async {
        let dir = demo_mesh();
        let e = engine(dir.path());
        let name = "sales.raw.transactions";
        // Literals are NOT NULL columns; the next versions drop `b`, add `c`, let `a` be null.
        publish(&e, name, "SELECT 1 AS a, 'x' AS b", WriteMode::Replace)
            .await
            .unwrap();
        publish(&e, name, "SELECT 2 AS a, 'y' AS c", WriteMode::Replace)
            .await
            .expect("a column renamed");
        publish(
            &e,
            name,
            "SELECT CAST(NULL AS BIGINT) AS a, 'z' AS c",
            WriteMode::Replace,
        )
        .await
        .expect("a column now nullable");
        let now = embedded(&e, "SELECT * FROM sales.raw.transactions")
            .await
            .replace(' ', "");
        assert!(now.contains("|a|c|") && now.contains("||z|"), "{now}");
        let first = embedded(&e, "SELECT * FROM sales.raw.transactions VERSION AS OF 0")
            .await
            .replace(' ', "");
        assert!(
            first.contains("|a|b|") && first.contains("|1|x|"),
            "{first}"
        );
    });
}
