//! Time travel on both table formats through the query service: `VERSION AS OF` and
//! `TIMESTAMP AS OF` read the exact old rows, governed like the current version (masks and row
//! filters apply, denied tables stay denied); `mesh.ops.versions` lists what can be read; every
//! refusal names what would work. The demo stores finance as Iceberg and sales as Delta.

use meshql::ErrorKind;
use meshql::service::{Call, Operation, Protocol, QueryService, Statement};
use meshql::spec::DatasetName;
use meshql::storage::WriteMode;

use crate::common::{
    add_csv_source, answer, demo_with, engine, meshql_in, publish, publish_without_north, runtime,
};

async fn refusal(service: &QueryService, who: &str, sql: &str) -> (ErrorKind, String) {
    let call = Call::new(
        service.principal_named(who).unwrap(),
        Protocol::FlightSql,
        Operation::Fetch,
    );
    match service
        .execute(&call, Statement::new(service.default_path(), sql))
        .await
    {
        Ok(_) => panic!("{sql}: answered"),
        Err(e) => (e.kind(), e.message().to_string()),
    }
}

/// The single value of a one-row, one-column answer.
fn value(table: &str) -> String {
    table
        .lines()
        .nth(3)
        .and_then(|l| l.split('|').nth(1))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no value in\n{table}"))
}

#[test]
fn old_versions_of_delta_and_iceberg_tables_read_their_exact_rows_governed() {
    runtime().block_on(async {
        let (_dir, e) = demo_with("", true).await;
        let service = QueryService::unaudited(e.clone()).unwrap();

        // Iceberg: finance.gold.revenue_vs_target, then a version without the north region.
        let revenue = "finance.gold.revenue_vs_target";
        let history = |name: &str| {
            let (domain, layer, dataset) = {
                let n = DatasetName::parse(name).unwrap();
                (n.domain, n.layer, n.dataset)
            };
            format!(
                "SELECT version, operation, current FROM mesh.ops.versions WHERE domain = '{domain}' \
                 AND layer = '{layer}' AND dataset = '{dataset}' ORDER BY version"
            )
        };
        let before = answer(&service, "admin", &history(revenue)).await;
        let first = value(&before);
        let all_rows = answer(&service, "admin", &format!("SELECT count(*) FROM {revenue}")).await;
        let with_north = answer(
            &service,
            "admin",
            &format!("SELECT * FROM {revenue} ORDER BY region, month"),
        )
        .await;
        // The second commit lands a measurable time later.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let between = chrono::Utc::now();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        publish_without_north(&e).await;
        let after = answer(&service, "admin", &history(revenue)).await;
        assert_eq!(after.lines().count(), before.lines().count() + 1, "{after}");
        assert!(after.contains("| overwrite | true"), "{after}");
        assert!(after.contains("| false"), "{after}");

        let now = answer(&service, "admin", &format!("SELECT count(*) FROM {revenue}")).await;
        assert_ne!(value(&now), value(&all_rows));
        for clause in [
            format!("VERSION AS OF {first}"),
            format!("TIMESTAMP AS OF '{}'", between.format("%Y-%m-%d %H:%M:%S%.6f")),
            format!(
                "FOR SYSTEM_TIME AS OF TIMESTAMP '{}' - INTERVAL '1' MILLISECOND",
                between.format("%Y-%m-%dT%H:%M:%S%.6f")
            ),
        ] {
            let old = answer(
                &service,
                "admin",
                &format!("SELECT * FROM {revenue} {clause} AS r ORDER BY region, month"),
            )
            .await;
            assert_eq!(old, with_north, "{clause}");
        }
        // The current and an old version side by side, in one query.
        let diff = answer(
            &service,
            "admin",
            &format!(
                "SELECT count(*) FROM {revenue} VERSION AS OF {first} AS old \
                 WHERE old.region NOT IN (SELECT region FROM {revenue})"
            ),
        )
        .await;
        assert_ne!(value(&diff), "0", "{diff}");

        // Delta: sales.gold.customer_value, whose customer ids are hashed for analysts.
        let customers = "sales.gold.customer_value";
        let delta_first = value(&answer(&service, "admin", &history(customers)).await);
        let ids = |who: &'static str, clause: &'static str| {
            let service = &service;
            async move {
                answer(
                    service,
                    who,
                    &format!("SELECT customer_id FROM {customers} {clause} ORDER BY 1"),
                )
                .await
            }
        };
        let masked_then = ids("analyst", "").await;
        let clear_then = ids("sales", "").await;
        assert_ne!(masked_then, clear_then);
        publish(
            &e,
            customers,
            &format!("SELECT * FROM {customers} WHERE orders > 1000000"),
            WriteMode::Replace,
        )
        .await
        .unwrap();
        let version = format!("VERSION AS OF {delta_first}");
        let version: &'static str = Box::leak(version.into_boxed_str());
        assert_eq!(ids("analyst", version).await, masked_then);
        assert_eq!(ids("sales", version).await, clear_then);
        assert_eq!(
            value(&answer(&service, "admin", &format!("SELECT count(*) FROM {customers}")).await),
            "0"
        );

        // Row filters apply to old versions too.
        let regions = |clause: &str| {
            format!("SELECT DISTINCT region FROM sales.gold.daily_revenue {clause} ORDER BY 1")
        };
        let filtered = answer(&service, "north", &regions("VERSION AS OF 0")).await;
        assert_eq!(filtered, answer(&service, "north", &regions("")).await);
        assert!(!filtered.contains("south"), "{filtered}");
    });
}

#[test]
fn time_travel_refusals_name_what_exists() {
    runtime().block_on(async {
        let (dir, _) = demo_with("", true).await;
        add_csv_source(dir.path(), "sales", "raw", "stores_file", "data/stores.csv");
        std::fs::write(
            dir.path().join("sql/sales/gold/top_customers.sql"),
            "-- @materialized: view\nSELECT customer_id FROM gold.customer_value WHERE orders > 1\n",
        )
        .unwrap();
        let e = engine(dir.path());
        let service = QueryService::unaudited(e.clone()).unwrap();
        let cases = [
            (
                "admin",
                "SELECT * FROM sales.gold.customer_value VERSION AS OF 99",
                ErrorKind::NotFound,
                "has no version 99; its only version is 0 (",
            ),
            (
                "admin",
                "SELECT * FROM finance.gold.revenue_vs_target TIMESTAMP AS OF '2001-01-01'",
                ErrorKind::NotFound,
                "has no version at or before 2001-01-01 00:00:00 UTC; its only version is 1 (snapshot ",
            ),
            (
                "admin",
                "SELECT * FROM sales.raw.stores_file VERSION AS OF 0",
                ErrorKind::UserInput,
                "a csv source and keeps no versions",
            ),
            (
                "admin",
                "SELECT * FROM sales.gold.top_customers VERSION AS OF 0",
                ErrorKind::UserInput,
                "a view and keeps no versions",
            ),
            (
                "admin",
                "SELECT * FROM sales.gold.customer_value TIMESTAMP AS OF 'yesterday'",
                ErrorKind::UserInput,
                "TIMESTAMP AS OF 'yesterday'",
            ),
            (
                "admin",
                "SELECT * FROM sales.gold.customer_value TIMESTAMP AS OF $1",
                ErrorKind::UserInput,
                "parameters cannot name a version",
            ),
            (
                "admin",
                "SELECT * FROM sales.gold.customer_value TIMESTAMP AS OF (SELECT max(last_order) FROM sales.gold.customer_value)",
                ErrorKind::UserInput,
                "cannot read tables",
            ),
            (
                "admin",
                "SELECT * FROM sales.gold.customer_value TIMESTAMP AS OF NULL",
                ErrorKind::UserInput,
                "is not a time",
            ),
            (
                "admin",
                "SELECT * FROM sales.gold.customer_value VERSION AS OF 1.5",
                ErrorKind::UserInput,
                "a version is a whole number",
            ),
            // A table the principal may not read stays denied: nothing about its versions leaks.
            (
                "analyst",
                "SELECT * FROM sales.raw.transactions VERSION AS OF 42",
                ErrorKind::PermissionDenied,
                "may not read `sales.raw.transactions`",
            ),
        ];
        for (who, sql, kind, message) in cases {
            let (got, text) = refusal(&service, who, sql).await;
            assert_eq!(got, kind, "{sql}: {text}");
            assert!(text.contains(message), "{sql}: {text}");
        }
        // The command line lists one table's versions, and refuses what keeps none.
        let (code, out, err) = meshql_in(dir.path(), &["history", "finance.gold.revenue_vs_target"]);
        assert_eq!(code, Some(0), "{out}{err}");
        assert!(out.contains("| version | snapshot_id "), "{out}");
        assert!(out.contains("| 1       |"), "{out}");
        let (code, _, err) = meshql_in(dir.path(), &["history", "sales.gold.top_customers"]);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("a view and keeps no versions"), "{err}");
        let (code, _, err) = meshql_in(dir.path(), &["history", "sales.gold.nothing"]);
        assert_eq!(code, Some(3), "{err}");

        // An analyst's listing of versions shows no table it may not read.
        let listed = answer(
            &service,
            "analyst",
            "SELECT DISTINCT domain || '.' || layer || '.' || dataset FROM mesh.ops.versions ORDER BY 1",
        )
        .await;
        assert!(listed.contains("sales.gold.customer_value"), "{listed}");
        assert!(!listed.contains(".raw."), "{listed}");
    });
}
