//! Acceleration through the query service: datasets named by `server.accelerate` are answered
//! from memory, governed as from storage, and refreshed by a publish.

use std::sync::Arc;

use datafusion::arrow::util::pretty::pretty_format_batches;
use futures::TryStreamExt;
use meshql::ErrorKind;
use meshql::engine::Engine;
use meshql::service::{Call, Operation, Protocol, QueryService, Statement};
use meshql::spec::DatasetName;

use crate::common::{
    add_csv_source, answer, demo_mesh, demo_with, edit, engine, publish_without_north, runtime,
};

fn held_rows(e: &Engine, name: &DatasetName) -> Option<usize> {
    e.catalog().accelerator().status(name).map(|s| s.rows)
}

#[test]
fn accelerated_datasets_answer_from_memory_as_from_storage_and_follow_publishes() {
    runtime().block_on(async {
        let settings = "  accelerate: [sales.gold, finance.gold.revenue_vs_target]\n  result_cache_mb: 0\n";
        let (_dir, e) = demo_with(settings, true).await;
        let service = QueryService::unaudited(Arc::clone(&e)).unwrap();
        let revenue = DatasetName::new("finance", "gold", "revenue_vs_target");
        let customers = DatasetName::new("sales", "gold", "customer_value");
        let totals = "SELECT region, sum(revenue) AS revenue FROM finance.gold.revenue_vs_target GROUP BY region ORDER BY region";
        // Masked for marketing: governance applies to a copy in memory as to storage.
        let ids = "SELECT customer_id, revenue FROM sales.gold.customer_value ORDER BY revenue DESC, customer_id LIMIT 5";
        let from_storage = (
            answer(&service, "finance", totals).await,
            answer(&service, "marketing", ids).await,
            answer(&service, "sales", ids).await,
        );
        assert_eq!(held_rows(&e, &revenue), None, "held only once serving starts");

        e.catalog().accelerate().await;
        assert!(held_rows(&e, &revenue).is_some_and(|n| n > 0));
        assert!(held_rows(&e, &customers).is_some_and(|n| n > 0), "sales.gold.* is held");
        assert_eq!(held_rows(&e, &DatasetName::new("sales", "silver", "stores")), None);
        let from_memory = (
            answer(&service, "finance", totals).await,
            answer(&service, "marketing", ids).await,
            answer(&service, "sales", ids).await,
        );
        assert_eq!(from_memory, from_storage);
        assert_ne!(from_memory.1, from_memory.2, "the mask still applies");
        let plan = answer(&service, "admin", &format!("EXPLAIN {totals}")).await;
        assert!(plan.contains("partition_sizes"), "a scan of memory: {plan}");
        let listed = e.overview().await.unwrap();
        let listed = pretty_format_batches(&[listed]).unwrap().to_string();
        assert!(listed.contains("in memory,"), "{listed}");

        // A publish: the next query reads the new version, from memory again.
        let before = held_rows(&e, &revenue).unwrap();
        publish_without_north(&e).await;
        let after = answer(&service, "finance", totals).await;
        assert!(!after.contains("north"), "{after}");
        assert!(held_rows(&e, &revenue).is_some_and(|n| n < before));
    });
}

#[test]
fn a_copy_that_cannot_be_loaded_is_read_from_storage_and_holds_no_memory() {
    runtime().block_on(async {
        // A CSV source whose 1,501st row is malformed: its schema is inferred from the first
        // thousand rows, so it opens; reading all of it fails.
        let dir = demo_mesh();
        edit(
            &dir.path().join("catalog/mesh.yaml"),
            "catalog_staleness_secs: 5",
            "catalog_staleness_secs: 1\n  accelerate: [sales.raw.visits]\n  result_cache_mb: 0",
        );
        add_csv_source(dir.path(), "sales", "raw", "visits", "data/visits.csv");
        let good: String = (0..1500).map(|i| format!("{i},{}\n", i % 7)).collect();
        let csv = dir.path().join("catalog/sales/data/visits.csv");
        std::fs::write(&csv, format!("visit_id,store_id\n{good}1500,3,extra\n")).unwrap();

        let e = engine(dir.path());
        let service = QueryService::unaudited(Arc::clone(&e)).unwrap();
        let visits = DatasetName::new("sales", "raw", "visits");
        e.catalog().accelerate().await;
        assert_eq!(held_rows(&e, &visits), None);
        assert_eq!(
            e.catalog().accelerator().used(),
            0,
            "a failed load gives its bytes back"
        );

        // Read from storage: the reader's error, the user's to fix, not an internal one.
        let call = Call::new(
            service.principal_named("admin").unwrap(),
            Protocol::FlightSql,
            Operation::Fetch,
        );
        let sql = "SELECT count(*) AS n FROM sales.raw.visits";
        let read = async {
            let stream = service
                .execute(&call, Statement::new(service.default_path(), sql))
                .await?;
            stream.try_collect::<Vec<_>>().await
        };
        let error = read.await.expect_err("the malformed row fails the read");
        assert_eq!(error.kind(), ErrorKind::UserInput, "{error}");
        assert!(
            error
                .to_string()
                .contains("incorrect number of fields for line 1502"),
            "{error}"
        );

        // Mended in place: held once the change is seen.
        std::fs::write(&csv, format!("visit_id,store_id\n{good}")).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let counted = answer(&service, "admin", sql).await;
        assert!(counted.contains("| 1500 |"), "{counted}");
        assert_eq!(held_rows(&e, &visits), Some(1500));
        assert!(e.catalog().accelerator().used() > 0);
    });
}
