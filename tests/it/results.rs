//! The result and plan caches, through the query service every front end uses: repeated
//! queries are answered and repeated statements planned from them, never across a publish, a
//! difference in policy or a volatile function.

use std::sync::Arc;

use datafusion::arrow::util::pretty::pretty_format_batches;
use futures::TryStreamExt;
use meshql::service::{CacheStats, Call, Operation, PlanStats, Protocol, QueryService, Statement};

use meshql::engine::Engine;
use tempfile::TempDir;

use crate::common::{
    add_csv_source, answer, build_all, demo_mesh, demo_with, edit, engine, publish_without_north,
    runtime,
};

/// The built demo mesh with `settings` under `server:`, its engine and an unaudited service.
async fn built(settings: &str) -> (TempDir, Arc<Engine>, Arc<QueryService>) {
    let (dir, e) = demo_with(settings, true).await;
    let service = QueryService::unaudited(Arc::clone(&e)).unwrap();
    (dir, e, service)
}

fn stats(service: &QueryService) -> CacheStats {
    service.results().stats()
}

fn plans(service: &QueryService) -> PlanStats {
    service.plans().stats()
}

#[test]
fn repeated_queries_are_answered_from_the_cache_until_a_table_is_published() {
    runtime().block_on(async {
        let (_dir, e, service) = built("").await;
        assert!(service.results().enabled(), "on by default");
        let sql = "SELECT region, sum(revenue) AS revenue FROM finance.gold.revenue_vs_target GROUP BY region ORDER BY region";

        let first = answer(&service, "finance", sql).await;
        assert!(first.contains("north"), "{first}");
        assert_eq!((stats(&service).hits, stats(&service).entries), (0, 1));
        let again = answer(&service, "finance", sql).await;
        assert_eq!(again, first);
        assert_eq!(stats(&service).hits, 1);
        // Spelled differently, planned the same: the same answer.
        let spelled = sql.replace("SELECT", "select").replace("  ", " ");
        assert_eq!(answer(&service, "finance", &spelled).await, first);
        assert_eq!(stats(&service).hits, 2);

        // A publish makes a new version: the next query reads it.
        publish_without_north(&e).await;
        let after = answer(&service, "finance", sql).await;
        assert!(!after.contains("north"), "{after}");
        assert_eq!(stats(&service).hits, 2, "the old answer was not served");
        assert_eq!(answer(&service, "finance", sql).await, after);
        assert_eq!(stats(&service).hits, 3);
    });
}

#[test]
fn principals_share_an_answer_only_when_their_policies_shape_the_query_alike() {
    runtime().block_on(async {
        let (_dir, _e, service) = built("").await;
        // Customer ids are pii: hashed for everyone outside the sales team.
        let sql = "SELECT customer_id FROM sales.gold.customer_value ORDER BY customer_id LIMIT 3";
        let sales = answer(&service, "sales", sql).await;
        let marketing = answer(&service, "marketing", sql).await;
        assert_ne!(sales, marketing, "the mask applies to marketing");
        assert_eq!(stats(&service).hits, 0);
        assert_eq!(answer(&service, "marketing", sql).await, marketing);
        assert_eq!(answer(&service, "sales", sql).await, sales);
        assert_eq!(stats(&service).hits, 2);
        // Two principals governed identically share the entry.
        assert_eq!(answer(&service, "analyst", sql).await, marketing);
        assert_eq!(stats(&service).hits, 3);
    });
}

#[test]
fn volatile_functions_table_functions_and_the_system_catalog_are_never_kept() {
    runtime().block_on(async {
        let (_dir, _e, service) = built("").await;
        for sql in [
            "SELECT random() AS r, count(*) AS n FROM sales.silver.stores",
            "SELECT now() AS t FROM sales.silver.stores LIMIT 1",
            "SELECT count(*) AS n FROM sales.silver.stores WHERE current_date() > DATE '2000-01-01'",
            "SELECT count(*) AS n FROM generate_series(1, 10)",
            "SELECT count(*) AS n FROM mesh.catalog.datasets",
            "EXPLAIN SELECT * FROM sales.silver.stores",
        ] {
            answer(&service, "admin", sql).await;
            answer(&service, "admin", sql).await;
            let s = stats(&service);
            assert_eq!((s.hits, s.entries), (0, 0), "{sql}");
            let p = plans(&service);
            assert_eq!((p.hits, p.entries), (0, 0), "no plan kept for {sql}");
        }
    });
}

#[test]
fn large_answers_are_streamed_but_not_kept_and_the_cache_can_be_turned_off() {
    runtime().block_on(async {
        let (_dir, _e, service) = built("  result_cache_mb: 1\n").await;
        // 5,860 rows: more than a sixteenth of 1 MiB.
        let all = "SELECT * FROM sales.silver.clean_transactions";
        let first = answer(&service, "admin", all).await;
        assert_eq!(answer(&service, "admin", all).await, first);
        assert_eq!((stats(&service).hits, stats(&service).entries), (0, 0));
        let small = "SELECT count(*) AS n FROM sales.silver.clean_transactions";
        answer(&service, "admin", small).await;
        answer(&service, "admin", small).await;
        assert_eq!(stats(&service).hits, 1);

        let (_dir, _e, service) = built("  result_cache_mb: 0\n").await;
        assert!(!service.results().enabled());
        answer(&service, "admin", small).await;
        answer(&service, "admin", small).await;
        assert_eq!(stats(&service), CacheStats::default());
    });
}

#[test]
fn a_statement_announced_is_run_from_the_plan_made_for_it_once() {
    runtime().block_on(async {
        // Without the result cache, so that every answer below is computed.
        let (_dir, e, service) = built("  result_cache_mb: 0\n").await;
        let path = service.default_path().clone();
        let finance = Call::new(
            service.principal_named("finance").unwrap(),
            Protocol::FlightSql,
            Operation::Fetch,
        );
        let sql = "SELECT count(*) AS n FROM finance.gold.revenue_vs_target";
        let run = |id: Option<u128>, call: Call| {
            let service = &service;
            let path = path.clone();
            async move {
                let stream = service
                    .execute(&call, Statement::new(&path, sql).with_parked(id))
                    .await
                    .unwrap();
                let batches: Vec<_> = stream.try_collect().await.unwrap();
                pretty_format_batches(&batches).unwrap().to_string()
            }
        };
        let before = run(None, finance.clone()).await;

        // Planned and parked, then the table changes: the parked plan reads what it was planned
        // over, once; asked again, the statement is planned afresh.
        let planned = service.plan(&finance, &path, sql, None).await.unwrap();
        let id = service.park(&finance, &path, sql, &planned);
        let other = service.park(&finance, &path, sql, &planned);
        publish_without_north(&e).await;
        let now = run(None, finance.clone()).await;
        assert_ne!(now, before);
        assert_eq!(
            run(Some(id), finance.clone()).await,
            before,
            "the parked plan"
        );
        assert_eq!(run(Some(id), finance.clone()).await, now, "taken once");
        // Another principal's call never takes it.
        let admin = Call::new(
            service.principal_named("admin").unwrap(),
            Protocol::FlightSql,
            Operation::Fetch,
        );
        assert_eq!(run(Some(other), admin).await, now);
        assert_eq!(
            run(Some(other), finance).await,
            now,
            "gone with the refused attempt"
        );
    });
}

#[test]
fn a_repeated_statement_is_planned_once_per_table_version_and_principal() {
    runtime().block_on(async {
        // Without the result cache, so that every answer is computed from the plan it got.
        let (_dir, e, service) = built("  result_cache_mb: 0\n").await;
        let sql = "SELECT region, sum(revenue) AS revenue FROM finance.gold.revenue_vs_target GROUP BY region ORDER BY region";
        let first = answer(&service, "finance", sql).await;
        assert!(first.contains("north"), "{first}");
        assert_eq!((plans(&service).hits, plans(&service).entries), (0, 1));
        assert_eq!(answer(&service, "finance", sql).await, first);
        assert_eq!(plans(&service).hits, 1);

        // Another principal gets a plan of its own, governed for it.
        answer(&service, "admin", sql).await;
        assert_eq!((plans(&service).hits, plans(&service).entries), (1, 2));
        // Masks differ by principal: a kept plan is never another principal's.
        let ids = "SELECT customer_id FROM sales.gold.customer_value ORDER BY customer_id LIMIT 3";
        let sales = answer(&service, "sales", ids).await;
        let marketing = answer(&service, "marketing", ids).await;
        assert_ne!(sales, marketing);
        assert_eq!(answer(&service, "sales", ids).await, sales);
        assert_eq!(answer(&service, "marketing", ids).await, marketing);

        // A publish: the kept plan read the old snapshot, so the statement is planned afresh.
        publish_without_north(&e).await;
        let after = answer(&service, "finance", sql).await;
        assert!(!after.contains("north"), "{after}");
        assert_eq!(plans(&service).stale, 1);
        let hits = plans(&service).hits;
        assert_eq!(answer(&service, "finance", sql).await, after);
        assert_eq!(plans(&service).hits, hits + 1, "the new plan is kept");
    });
}

#[test]
fn statements_with_parameters_are_planned_each_time_and_the_plan_cache_can_be_turned_off() {
    runtime().block_on(async {
        let (_dir, _e, service) = built("").await;
        let path = service.default_path().clone();
        let admin = Call::new(
            service.principal_named("admin").unwrap(),
            Protocol::FlightSql,
            Operation::Fetch,
        );
        let sql = "SELECT count(*) AS n FROM finance.gold.revenue_vs_target WHERE revenue > $1";
        let params = datafusion::arrow::record_batch::RecordBatch::try_from_iter([(
            "$1",
            std::sync::Arc::new(datafusion::arrow::array::Float64Array::from(vec![0.0]))
                as datafusion::arrow::array::ArrayRef,
        )])
        .unwrap();
        for _ in 0..2 {
            let stream = service
                .execute(
                    &admin,
                    Statement::new(&path, sql).with_params(Some(&params)),
                )
                .await
                .unwrap();
            let _: Vec<_> = stream.try_collect().await.unwrap();
        }
        assert_eq!(plans(&service).hits, 0);

        let (_dir, _e, service) = built("  plan_cache_entries: 0\n").await;
        let sql = "SELECT count(*) AS n FROM finance.gold.revenue_vs_target";
        answer(&service, "admin", sql).await;
        answer(&service, "admin", sql).await;
        assert_eq!(plans(&service), PlanStats::default());
        assert_eq!(stats(&service).hits, 1, "the result cache still answers");
    });
}

#[test]
fn kept_plans_and_answers_outlive_the_staleness_bound_while_the_version_is_the_same() {
    runtime().block_on(async {
        // Past the staleness bound every table is opened again; its version stays the same.
        let dir = demo_mesh();
        build_all(&engine(dir.path())).await;
        let mesh = dir.path().join("catalog/mesh.yaml");
        edit(&mesh, "catalog_staleness_secs: 5", "catalog_staleness_secs: 1");
        let service = QueryService::unaudited(engine(dir.path())).unwrap();
        let sql = "SELECT region, sum(revenue) AS revenue FROM finance.gold.revenue_vs_target GROUP BY region ORDER BY region";
        let first = answer(&service, "finance", sql).await;
        for _ in 0..2 {
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
            assert_eq!(answer(&service, "finance", sql).await, first);
        }
        assert_eq!((plans(&service).hits, plans(&service).stale), (2, 0));
        assert_eq!(stats(&service).hits, 2);
    });
}

#[test]
fn a_sources_answers_and_plans_are_kept_until_its_files_change() {
    runtime().block_on(async {
        let dir = demo_mesh();
        let mesh = dir.path().join("catalog/mesh.yaml");
        edit(
            &mesh,
            "catalog_staleness_secs: 5",
            "catalog_staleness_secs: 1",
        );
        add_csv_source(dir.path(), "sales", "raw", "store_list", "data/stores.csv");
        let service = QueryService::unaudited(engine(dir.path())).unwrap();
        let sql = "SELECT count(*) AS n FROM sales.raw.store_list";
        let first = answer(&service, "admin", sql).await;
        assert!(first.contains("| 24 |"), "{first}");
        assert_eq!(answer(&service, "admin", sql).await, first);
        assert_eq!((stats(&service).hits, plans(&service).hits), (1, 1));

        // Reopened past the staleness bound, files unchanged: still the same contents.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        assert_eq!(answer(&service, "admin", sql).await, first);
        assert_eq!((stats(&service).hits, plans(&service).hits), (2, 2));

        // A row appended in place: seen once the bound has passed, planned afresh, not served
        // from the old answer.
        let csv = dir.path().join("catalog/sales/data/stores.csv");
        let mut text = std::fs::read_to_string(&csv).unwrap();
        text.push_str("99,Store 99 Faro,south,2026-01-01\n");
        std::fs::write(&csv, text).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let after = answer(&service, "admin", sql).await;
        assert!(after.contains("| 25 |"), "{after}");
        assert_eq!((stats(&service).hits, plans(&service).stale), (2, 1));
        assert_eq!(answer(&service, "admin", sql).await, after);
        assert_eq!(stats(&service).hits, 3);
    });
}
