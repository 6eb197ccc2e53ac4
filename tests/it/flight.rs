//! End to end over Arrow Flight SQL: a real server on port 0, arrow-flight's client.

use arrow_flight::Ticket;
use arrow_flight::error::FlightError;
use arrow_flight::sql::{
    CommandGetDbSchemas, CommandGetTables, ProstMessageExt, TicketStatementQuery,
};
use datafusion::arrow::util::pretty::pretty_format_batches;
use futures::TryStreamExt;
use prost::Message;
use tonic::Code;

use crate::common::{client, error_of, fetch, query, runtime, serve_demo};

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[test]
fn serves_the_demo_mesh_end_to_end() {
    runtime().block_on(async {
        let served = serve_demo(true).await;
        let mut c = client(served.addr).await;

        // A gold product, exact values (computed independently from the raw CSV files).
        let got = query(
            &mut c,
            "SELECT order_date, region, orders, units, revenue FROM sales.gold.daily_revenue \
             WHERE order_date = DATE '2026-02-14' AND region = 'north'",
        )
        .await;
        assert_eq!(
            lines(&got),
            [
                "+------------+--------+--------+-------+---------+",
                "| order_date | region | orders | units | revenue |",
                "+------------+--------+--------+-------+---------+",
                "| 2026-02-14 | north  | 15     | 39    | 5842.56 |",
                "+------------+--------+--------+-------+---------+",
            ]
        );
        let got = query(&mut c, "SELECT count(*) AS n, sum(revenue) AS revenue, sum(orders) AS orders FROM sales.gold.daily_revenue").await;
        assert!(got.contains("| 360 | 2133244.37 | 5135   |"), "{got}");

        // A cross-domain join at query time: finance's targets with marketing's ROAS.
        let got = query(
            &mut c,
            "SELECT t.region, t.revenue, t.revenue_target, r.spend, r.roas \
             FROM finance.gold.revenue_vs_target t JOIN marketing.gold.roas_by_region r ON r.region = t.region \
             WHERE t.month = '2026-03' ORDER BY t.region",
        )
        .await;
        assert_eq!(
            lines(&got),
            [
                "+--------+-----------+----------------+----------+---------+",
                "| region | revenue   | revenue_target | spend    | roas    |",
                "+--------+-----------+----------------+----------+---------+",
                "| east   | 175894.62 | 182000.00      | 37348.89 | 13.9283 |",
                "| north  | 190842.19 | 165000.00      | 91283.29 | 5.8339  |",
                "| south  | 188573.02 | 171000.00      | 30522.43 | 17.3029 |",
                "| west   | 189605.62 | 178000.00      | 82872.14 | 6.6654  |",
                "+--------+-----------+----------------+----------+---------+",
            ]
        );
        // The gold product that itself joins another domain's product, built by the pipeline.
        let got = query(&mut c, "SELECT region, spend, revenue FROM marketing.gold.roas_by_region ORDER BY region").await;
        assert!(got.contains("| north  | 91283.29 | 532535.72 |"), "{got}");
    });
}

#[test]
fn metadata_listings_cover_every_catalog() {
    runtime().block_on(async {
        let served = serve_demo(true).await;
        let mut c = client(served.addr).await;

        let info = c.get_catalogs().await.expect("catalogs");
        let got = pretty_format_batches(&fetch(&mut c, info).await)
            .unwrap()
            .to_string();
        assert_eq!(
            lines(&got),
            [
                "+--------------+",
                "| catalog_name |",
                "+--------------+",
                "| finance      |",
                "| marketing    |",
                "| mesh         |",
                "| sales        |",
                "+--------------+"
            ]
        );

        // No catalog given (as ADBC's GetObjects does): every domain's layers.
        let info = c
            .get_db_schemas(CommandGetDbSchemas {
                catalog: None,
                db_schema_filter_pattern: None,
            })
            .await
            .expect("schemas");
        let batches = fetch(&mut c, info).await;
        // Three layers in each of three domains, and the system catalog's three schemas.
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 12);

        // The system tables are listed with their columns.
        let info = c
            .get_tables(CommandGetTables {
                catalog: Some("mesh".into()),
                db_schema_filter_pattern: None,
                table_name_filter_pattern: None,
                table_types: vec![],
                include_schema: false,
            })
            .await
            .expect("system tables");
        let got = pretty_format_batches(&fetch(&mut c, info).await)
            .unwrap()
            .to_string();
        for t in [
            "| domains ",
            "| datasets ",
            "| columns ",
            "| runs ",
            "| edges ",
        ] {
            assert!(got.contains(t), "{t} missing from\n{got}");
        }

        let info = c
            .get_tables(CommandGetTables {
                catalog: None,
                db_schema_filter_pattern: Some("gold".into()),
                table_name_filter_pattern: Some("%revenue%".into()),
                table_types: vec![],
                include_schema: true,
            })
            .await
            .expect("tables");
        let batches = fetch(&mut c, info).await;
        let names: Vec<String> = batches
            .iter()
            .flat_map(|b| {
                let col = b.column_by_name("table_name").unwrap();
                let col = col
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::StringArray>()
                    .unwrap();
                col.iter()
                    .map(|v| v.unwrap_or_default().to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        // Ordered by catalog, schema, table.
        assert_eq!(names, ["revenue_vs_target", "daily_revenue"]);
        assert!(batches[0].column_by_name("table_schema").is_some());

        let info = c.get_table_types().await.expect("types");
        let got = pretty_format_batches(&fetch(&mut c, info).await)
            .unwrap()
            .to_string();
        assert!(got.contains("| TABLE "), "{got}");
    });
}

#[test]
fn client_errors_have_the_right_codes_and_the_server_survives() {
    runtime().block_on(async {
        let served = serve_demo(true).await;
        let mut c = client(served.addr).await;

        let s = error_of(&mut c, "SELECT *\nFROM sales.gold.daily_revenue WHERE").await;
        assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
        assert_eq!(
            s.message(),
            "SQL syntax error: Expected: an expression, found: EOF (line=2, column=36)"
        );

        let s = error_of(&mut c, "SELECT * FROM sales.gold.daily_revenu").await;
        assert_eq!(s.code(), Code::NotFound);
        assert_eq!(
            s.message(),
            "table `sales.gold.daily_revenu` not found; did you mean `sales.gold.daily_revenue`?"
        );
        let s = error_of(
            &mut c,
            "SELECT no_such_column FROM sales.gold.daily_revenue",
        )
        .await;
        assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");

        for sql in [
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
            "COPY (SELECT 1) TO '/tmp/meshql-should-not-exist.csv'",
            "INSERT INTO sales.silver.stores VALUES (1, 'x', 'y', DATE '2026-01-01')",
            "DROP TABLE sales.gold.daily_revenue",
            "SET datafusion.execution.batch_size = 1",
            "CREATE VIEW v AS SELECT 1",
        ] {
            let s = error_of(&mut c, sql).await;
            assert_eq!(s.code(), Code::PermissionDenied, "{sql}: {s:?}");
        }
        assert!(!std::path::Path::new("/tmp/meshql-should-not-exist.csv").exists());
        let s = error_of(&mut c, "SELECT * FROM '/etc/passwd'").await;
        assert_ne!(s.code(), Code::Ok);

        // Short hostile queries: each gets an answer or an error, never a dead server.
        let plus = format!("SELECT 1{}", "+1".repeat(2_000));
        let ors = format!("SELECT 1 WHERE {}", vec!["1=1"; 2_000].join(" OR "));
        let unions = vec!["SELECT 1"; 2_000].join(" UNION ALL ");
        let huge = format!("SELECT 1{}", "+1".repeat(100_000));
        for sql in [&plus, &ors, &unions, &huge] {
            let s = error_of(&mut c, sql).await;
            assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
            assert!(
                s.message().contains("nested deeper than"),
                "{}",
                s.message()
            );
        }
        let allowed = format!("SELECT 1{} AS x", "+1".repeat(400));
        assert!(query(&mut c, &allowed).await.contains("| 401 |"));
        assert!(
            query(&mut c, "SELECT 41 + 1 AS answer")
                .await
                .contains("| 42     |")
        );
    });
}

#[test]
fn forged_tickets_are_refused() {
    runtime().block_on(async {
        let served = serve_demo(false).await;
        let mut c = client(served.addr).await;
        let forged = TicketStatementQuery {
            statement_handle: br#"{"sql":"SELECT 1"}0123456789abcdef0123456789abcdef"#
                .to_vec()
                .into(),
        };
        let err = c
            .do_get(Ticket::new(forged.as_any().encode_to_vec()))
            .await
            .map(|_| ())
            .err()
            .and_then(|e| match e {
                FlightError::Tonic(s) => Some(*s),
                _ => None,
            });
        let status = match err {
            Some(s) => s,
            None => {
                // Some transports report the status on the first message instead.
                let stream = c
                    .do_get(Ticket::new(forged.as_any().encode_to_vec()))
                    .await
                    .expect("stream");
                match stream.try_collect::<Vec<_>>().await {
                    Err(FlightError::Tonic(s)) => *s,
                    other => panic!("forged ticket accepted: {other:?}"),
                }
            }
        };
        assert_eq!(status.code(), Code::PermissionDenied);
    });
}

#[test]
fn unpublished_tables_say_how_to_build_them() {
    runtime().block_on(async {
        let served = serve_demo(false).await;
        let mut c = client(served.addr).await;
        let s = error_of(&mut c, "SELECT * FROM sales.gold.daily_revenue").await;
        assert_eq!(s.code(), Code::NotFound);
        assert_eq!(
            s.message(),
            "table `sales.gold.daily_revenue` is declared but has no published version yet; \
             build it with `meshql run --select sales.gold.daily_revenue`"
        );
        // Raw tables are written by jobs: unpublished too until a run. The system catalog
        // reads empty.
        let s = error_of(&mut c, "SELECT * FROM sales.raw.transactions").await;
        assert_eq!(s.code(), Code::NotFound);
        let got = query(&mut c, "SELECT count(*) AS n FROM mesh.ops.runs").await;
        assert!(got.contains("| 0 |"), "{got}");
    });
}

#[test]
fn run_pipeline_action_publishes_and_information_schema_lists_tables() {
    runtime().block_on(async {
        let served = serve_demo(false).await;
        let addr = served.addr;
        let mut remote = meshql::client::Client::connect(&format!("grpc://{addr}"))
            .await
            .expect("connect");
        remote.login("admin", "admin").await.expect("login");
        let result = remote
            .run_pipeline(&["sales".to_string()], false)
            .await
            .expect("run");
        assert!(result.succeeded, "{result:?}");
        let nodes: Vec<(&str, &str, Option<u64>)> = result
            .nodes
            .iter()
            .map(|n| (n.dataset.as_str(), n.status.as_str(), n.rows))
            .collect();
        assert_eq!(nodes.len(), 6, "{nodes:?}");
        assert!(
            nodes.contains(&("sales.raw.transactions", "ok", Some(6000))),
            "{nodes:?}"
        );
        assert!(
            nodes.contains(&("sales.silver.clean_transactions", "ok", Some(5860))),
            "{nodes:?}"
        );
        assert!(
            nodes.contains(&("sales.gold.daily_revenue", "ok", Some(360))),
            "{nodes:?}"
        );
        // Again: nothing changed, nothing to do; forced: everything rebuilt.
        let again = remote
            .run_pipeline(&["sales".to_string()], false)
            .await
            .expect("rerun");
        assert!(again.succeeded);
        assert!(
            again.nodes.iter().all(|n| n.status == "up_to_date"),
            "{again:?}"
        );
        assert_ne!(again.run_id, result.run_id);
        let forced = remote
            .run_pipeline(&["sales".to_string()], true)
            .await
            .expect("forced");
        assert!(
            forced
                .nodes
                .iter()
                .all(|n| n.status == "ok" && n.version == Some(1)),
            "{forced:?}"
        );

        let err = remote
            .run_pipeline(&["nope".to_string()], false)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), meshql::ErrorKind::NotFound);

        let mut c = client(addr).await;
        let got = query(
            &mut c,
            "SELECT table_catalog, table_schema, table_name FROM information_schema.tables \
             WHERE table_schema = 'gold' ORDER BY 1, 3",
        )
        .await;
        // Only sales ran: like GetTables, information_schema shows published datasets.
        assert_eq!(
            lines(&got),
            [
                "+---------------+--------------+----------------+",
                "| table_catalog | table_schema | table_name     |",
                "+---------------+--------------+----------------+",
                "| sales         | gold         | customer_value |",
                "| sales         | gold         | daily_revenue  |",
                "+---------------+--------------+----------------+",
            ]
        );
    });
}
