//! Acceleration through the query service: datasets named by `server.accelerate` are answered
//! from memory, governed as from storage, and refreshed by a publish.

use std::sync::Arc;

use datafusion::arrow::util::pretty::pretty_format_batches;
use meshql::engine::Engine;
use meshql::service::QueryService;
use meshql::spec::DatasetName;

use crate::common::{answer, demo_with, publish_without_north, runtime};

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
