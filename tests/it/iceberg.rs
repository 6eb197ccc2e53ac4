//! Warehouse tables stored as Apache Iceberg: types mapped to Iceberg's, appends, refusals with
//! the column named, and failed writes that leave the table at its snapshot. (PyIceberg reads
//! these tables in tests/clients/test_table_formats.py.)

use meshql::error::ErrorKind;
use meshql::pipeline::NodeStatus;
use meshql::spec::DatasetName;

use crate::common::{embedded, embedded_count, engine, mesh_with, publish, run_all, runtime};

const MESH: &str = "name: t\ndefault_format: iceberg\ndomains:\n  - name: shop\n";

fn shop(files: &[(&str, &str)]) -> tempfile::TempDir {
    let mut all = vec![
        ("catalog/mesh.yaml", MESH),
        (
            "catalog/shop/domain.yaml",
            "owner: shop\nsources:\n  - name: orders\n    layer: raw\n    format: csv\n    location: data/orders.csv\n",
        ),
        (
            "catalog/shop/data/orders.csv",
            "id,amount\n1,10.5\n2,20.25\n",
        ),
    ];
    all.extend_from_slice(files);
    mesh_with(&all)
}

fn failure(report: &meshql::pipeline::RunReport, node: &str) -> (ErrorKind, String) {
    let found = report.nodes.iter().find(|n| n.name == node).expect("node");
    match &found.status {
        NodeStatus::Failed { kind, message } => (*kind, message.clone()),
        other => panic!("{node}: {other:?}"),
    }
}

#[test]
fn every_type_a_transform_makes_is_stored_as_icebergs_own() {
    runtime().block_on(async {
        let sql = "SELECT arrow_cast(7, 'Int8') AS tiny, arrow_cast(9, 'UInt64') AS unsigned, \
                   arrow_cast('x', 'Utf8View') AS text, CAST('2026-01-02 03:04:05.678' AS TIMESTAMP) AS at, \
                   arrow_cast(now(), 'Timestamp(Nanosecond, Some(\"Europe/Paris\"))') AS zoned, \
                   CAST(1.25 AS DECIMAL(10, 2)) AS money, DATE '2026-03-04' AS day, \
                   make_array(1, 2) AS list, named_struct('a', 1, 'b', 'z') AS pair";
        let dir = shop(&[("sql/shop/silver/typed.sql", sql)]);
        let e = engine(dir.path());
        let report = run_all(&e).await;
        assert!(report.succeeded(), "{report:#?}");
        let name = DatasetName::new("shop", "silver", "typed");
        let snapshot = e.catalog().snapshot(&name).await.unwrap().unwrap();
        let schema = snapshot.provider.schema();
        let types: Vec<String> = schema.fields().iter().map(|f| f.data_type().to_string()).collect();
        // Stored as Iceberg's int, long, string, timestamp, timestamptz, decimal and date; text
        // is scanned as views, as from Delta and Parquet.
        assert_eq!(
            types[..7],
            ["Int32", "Int64", "Utf8View", "Timestamp(µs)", "Timestamp(µs, \"+00:00\")", "Decimal128(10, 2)", "Date32"]
        );
        let text = embedded(&e, "SELECT tiny, unsigned, text, at, money, day, list, pair FROM shop.silver.typed").await;
        assert!(text.contains("| 7    | 9        | x    | 2026-01-02T03:04:05.678 | 1.25  | 2026-03-04 | [1, 2] | {a: 1, b: z} |"), "{text}");
    });
}

#[test]
fn a_type_iceberg_cannot_hold_fails_the_node_naming_the_column_and_writes_nothing() {
    runtime().block_on(async {
        let dir = shop(&[
            (
                "sql/shop/silver/gaps.sql",
                "SELECT id, INTERVAL '1 day' AS gap FROM raw.orders",
            ),
            (
                "sql/shop/silver/nothing.sql",
                "SELECT id, NULL AS nothing FROM raw.orders",
            ),
        ]);
        let e = engine(dir.path());
        let report = run_all(&e).await;
        for (node, column) in [
            ("shop.silver.gaps", "`gap`"),
            ("shop.silver.nothing", "`nothing`"),
        ] {
            let (kind, message) = failure(&report, node);
            assert_eq!(kind, ErrorKind::UserInput, "{message}");
            assert!(
                message.contains(column) && message.contains("Iceberg table cannot hold"),
                "{message}"
            );
            let name = DatasetName::parse(node).unwrap();
            assert!(
                e.catalog().snapshot(&name).await.unwrap().is_none(),
                "{node} was published"
            );
        }
    });
}

#[test]
fn an_incremental_append_adds_a_snapshot_beside_the_rows_already_there() {
    runtime().block_on(async {
        let sql =
            "-- @materialized: incremental\n-- @watermark: id\nSELECT id, amount FROM raw.orders";
        let dir = shop(&[("sql/shop/silver/orders.sql", sql)]);
        let e = engine(dir.path());
        assert!(run_all(&e).await.succeeded());
        std::fs::write(
            dir.path().join("catalog/shop/data/orders.csv"),
            "id,amount\n1,10.5\n2,20.25\n3,1\n4,2\n",
        )
        .unwrap();
        let e = engine(dir.path());
        let report = run_all(&e).await;
        assert!(report.succeeded(), "{report:#?}");
        let node = report
            .nodes
            .iter()
            .find(|n| n.name == "shop.silver.orders")
            .unwrap();
        assert_eq!((node.rows, node.version), (Some(2), Some(2)), "{node:?}");
        assert_eq!(
            embedded_count(&e, "SELECT count(*) FROM shop.silver.orders").await,
            4
        );
        assert_eq!(
            embedded_count(&e, "SELECT count(DISTINCT id) FROM shop.silver.orders").await,
            4
        );
        // An append whose columns differ from the table's is refused; the table keeps its rows.
        crate::common::edit(
            &dir.path().join("sql/shop/silver/orders.sql"),
            "id, amount",
            "id, amount, 'x' AS extra",
        );
        std::fs::write(
            dir.path().join("catalog/shop/data/orders.csv"),
            "id,amount\n5,1\n",
        )
        .unwrap();
        let e = engine(dir.path());
        let report = run_all(&e).await;
        let (kind, message) = failure(&report, "shop.silver.orders");
        assert_eq!(kind, ErrorKind::UserInput, "{message}");
        assert!(message.contains("columns differ"), "{message}");
        assert_eq!(
            embedded_count(&e, "SELECT count(*) FROM shop.silver.orders").await,
            4
        );
    });
}

#[test]
fn a_dataset_whose_format_changed_is_refused_and_its_table_kept() {
    runtime().block_on(async {
        let sql = "sql/shop/silver/orders.sql";
        let dir = shop(&[(sql, "-- @format: delta\nSELECT id, amount FROM raw.orders")]);
        let path = dir.path().join(sql);
        let refused = |report: &meshql::pipeline::RunReport| {
            let (kind, message) = failure(report, "shop.silver.orders");
            assert_eq!(kind, ErrorKind::Conflict, "{message}");
            assert!(
                message.contains("table is not converted in place"),
                "{message}"
            );
        };
        assert!(run_all(&engine(dir.path())).await.succeeded());
        // Delta to Iceberg over the Delta table: refused, the Delta table still read as before.
        crate::common::edit(&path, "@format: delta", "@format: iceberg");
        refused(&run_all(&engine(dir.path())).await);
        crate::common::edit(&path, "@format: iceberg", "@format: delta");
        let e = engine(dir.path());
        assert_eq!(
            embedded_count(&e, "SELECT count(*) FROM shop.silver.orders").await,
            2
        );
        // With the folder removed the dataset is rebuilt as Iceberg; back to Delta is refused.
        std::fs::remove_dir_all(dir.path().join("warehouse/shop/silver/orders")).unwrap();
        crate::common::edit(&path, "@format: delta", "@format: iceberg");
        assert!(run_all(&engine(dir.path())).await.succeeded());
        crate::common::edit(&path, "@format: iceberg", "@format: delta");
        refused(&run_all(&engine(dir.path())).await);
    });
}

#[test]
fn concurrent_merges_into_one_iceberg_table_keep_every_writers_rows() {
    use meshql::storage::WriteMode;
    runtime().block_on(async {
        let dir = shop(&[(
            "sql/shop/silver/totals.sql",
            "SELECT id, amount FROM raw.orders",
        )]);
        let e = engine(dir.path());
        assert!(run_all(&e).await.succeeded());
        let name = DatasetName::new("shop", "silver", "totals");
        let merge = |sql: String| {
            let e = e.clone();
            async move {
                let mode = WriteMode::Merge {
                    keys: vec!["id".into()],
                };
                publish(&e, "shop.silver.totals", &sql, mode).await
            }
        };
        // Four writers at once, each inserting its own key and updating row 1: each merge that
        // loses the race merges again on top of the winner's snapshot.
        let writers = (0..4).map(|i| {
            merge(format!(
                "SELECT CAST(id AS BIGINT) AS id, CAST(amount AS DOUBLE) AS amount FROM \
                 (VALUES ({}, 1.5), (1, {}.0)) AS v(id, amount)",
                10 + i,
                100 + i
            ))
        });
        for published in futures::future::join_all(writers).await {
            assert_eq!(published.unwrap().rows, 2);
        }
        let text = embedded(&e, "SELECT id, amount FROM shop.silver.totals ORDER BY id").await;
        for id in [
            "| 2  | 20.25  |",
            "| 10 | 1.5    |",
            "| 11 | 1.5    |",
            "| 12 | 1.5    |",
            "| 13 | 1.5    |",
        ] {
            assert!(text.contains(id), "{text}");
        }
        assert_eq!(
            embedded_count(&e, "SELECT count(*) FROM shop.silver.totals").await,
            6
        );
        let one = embedded(&e, "SELECT amount FROM shop.silver.totals WHERE id = 1").await;
        assert!(
            ["100", "101", "102", "103"]
                .iter()
                .any(|a| one.contains(&format!("| {a}.0"))),
            "{one}"
        );
        // Every merge is one snapshot: the first build and four overwrites.
        let versions = e.catalog().versions(&name).await.unwrap();
        assert_eq!(versions.len(), 5, "{versions:?}");
        assert!(
            versions[1..]
                .iter()
                .all(|v| v.operation.as_deref() == Some("overwrite"))
        );
    });
}

#[test]
fn a_layers_format_beats_its_domains_and_ingested_tables_follow_it() {
    use meshql::storage::WriteMode;
    runtime().block_on(async {
        let dir = shop(&[
            (
                "catalog/shop/domain.yaml",
                "owner: shop\nlayer_formats:\n  silver: delta\nsources:\n  - name: orders\n    layer: raw\n    format: csv\n    location: data/orders.csv\n",
            ),
            ("sql/shop/silver/clean.sql", "SELECT id, amount FROM raw.orders"),
            ("sql/shop/gold/totals.sql", "SELECT sum(amount) AS total FROM silver.clean"),
        ]);
        let e = engine(dir.path());
        assert!(run_all(&e).await.succeeded());
        let warehouse = dir.path().join("warehouse/shop");
        // The mesh is Iceberg; its silver layer Delta.
        assert!(warehouse.join("silver/clean/_delta_log").is_dir());
        assert!(warehouse.join("gold/totals/metadata").is_dir());
        // A table created by ingest takes its layer's format too (raw: the mesh's, Iceberg).
        publish(&e, "shop.raw.events", "SELECT 1 AS id", WriteMode::Replace)
            .await
            .unwrap();
        assert!(warehouse.join("raw/events/metadata").is_dir());
        assert_eq!(embedded_count(&e, "SELECT count(*) FROM shop.raw.events").await, 1);
    });
}
