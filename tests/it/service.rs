//! The query service on its own, as every front end uses it, over the demo mesh without building
//! its warehouse (what is tested here needs no rows): principals and their calls, governed
//! planning and listings, refusals, ingest targets and cancellation, and the audit records they
//! leave.

use std::sync::Arc;

use meshql::ErrorKind;
use meshql::governance::Principal;
use meshql::service::{
    Call, IfExists, IfMissing, IngestTarget, Operation, Protocol, QueryService, Statement,
    TableFilter,
};

use crate::common::{demo_mesh, engine, runtime};

fn principal(service: &QueryService, name: &str) -> Principal {
    service.principal_named(name).expect("a demo principal")
}

#[test]
fn calls_are_planned_and_listed_as_their_principal() {
    runtime().block_on(async {
        let dir = demo_mesh();
        let service = QueryService::unaudited(engine(dir.path())).unwrap();
        let analyst = Call::new(
            principal(&service, "analyst"),
            Protocol::FlightSql,
            Operation::Query,
        );
        let path = service.default_path().clone();

        // Planning: denials name the table and the reason; masks and reads are reported.
        let err = service
            .plan(
                &analyst,
                &path,
                "SELECT * FROM sales.raw.transactions",
                None,
            )
            .await
            .err()
            .expect("denied");
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
        assert!(
            err.message()
                .contains("`analyst` may not read `sales.raw.transactions`"),
            "{err}"
        );
        let err = service
            .plan(
                &analyst,
                &path,
                "SELECT * FROM sales.gold.daily_revenue",
                None,
            )
            .await
            .err()
            .expect("not built");
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        assert!(err.message().contains("no published version yet"), "{err}");

        // Listings show what the principal may read, and the system catalog.
        let catalogs = service.catalogs(&analyst).unwrap();
        assert_eq!(catalogs, ["finance", "marketing", "mesh", "sales"]);
        let schemas = service.schemas(&analyst).unwrap();
        assert!(schemas.contains(&("sales".into(), "gold".into())));
        assert!(!schemas.contains(&("sales".into(), "raw".into())));
        // Nothing is published yet: only the system tables are listed (empty, before their
        // first write).
        for with_schemas in [true, false] {
            let tables = service
                .tables(&analyst, &TableFilter::default(), with_schemas)
                .await
                .unwrap();
            assert!(tables.iter().all(|t| t.name.domain == "mesh"), "{tables:?}");
            assert!(
                tables.iter().all(|t| t.schema.is_some() == with_schemas),
                "{tables:?}"
            );
        }
        let keys = service
            .primary_keys(&analyst, Some("sales"), Some("gold"), "customer_value")
            .unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].column, "customer_id");

        // Logins: the token answered authenticates as the principal.
        let basic = format!("Basic {}", base64_encode(b"finance:finance"));
        let (who, token) = service
            .login(Protocol::FlightSql, Some(&basic), None)
            .await
            .unwrap();
        assert_eq!(who.name, "finance");
        let again = service
            .authenticate(Some(&format!("Bearer {token}")))
            .unwrap();
        assert_eq!(again, who);
        let err = service.authenticate(None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    });
}

#[test]
fn ingest_targets_runs_and_cancellation_are_decided_by_the_service() {
    runtime().block_on(async {
        let dir = demo_mesh();
        let service = QueryService::unaudited(engine(dir.path())).unwrap();
        let path = service.default_path().clone();
        let analyst = Call::new(
            principal(&service, "analyst"),
            Protocol::FlightSql,
            Operation::Ingest,
        );
        let sales = Call::new(
            principal(&service, "sales"),
            Protocol::FlightSql,
            Operation::Ingest,
        );
        let target = |schema: &str, table: &str| IngestTarget {
            catalog: Some("sales".into()),
            schema: Some(schema.into()),
            table: table.into(),
            if_exists: IfExists::Append,
            if_missing: IfMissing::Create,
        };
        let upload = || -> (
            Arc<datafusion::arrow::datatypes::Schema>,
            datafusion::physical_plan::SendableRecordBatchStream,
        ) {
            let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
                datafusion::arrow::datatypes::Field::new(
                    "id",
                    datafusion::arrow::datatypes::DataType::Int64,
                    false,
                ),
            ]));
            let batch = datafusion::arrow::record_batch::RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(datafusion::arrow::array::Int64Array::from(vec![1, 2, 3]))],
            )
            .unwrap();
            let stream = datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                Arc::clone(&schema),
                futures::stream::iter([Ok(batch)]),
            );
            (schema, Box::pin(stream))
        };
        let (schema, stream) = upload();
        let err = service
            .ingest(&analyst, &path, &target("raw", "uploads"), schema, stream)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
        let (schema, stream) = upload();
        let err = service
            .ingest(&sales, &path, &target("gold", "uploads"), schema, stream)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
        // A job's table names the job by its place in the mesh, never the server's folders.
        let (schema, stream) = upload();
        let err = service
            .ingest(
                &sales,
                &path,
                &target("raw", "transactions"),
                schema,
                stream,
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
        assert!(
            err.message()
                .contains("the job catalog/sales/jobs/ingest_sales.json;"),
            "{err}"
        );
        assert!(
            !err.message().contains(&*dir.path().to_string_lossy()),
            "{err}"
        );
        let (schema, stream) = upload();
        let rows = service
            .ingest(&sales, &path, &target("raw", "uploads"), schema, stream)
            .await
            .unwrap();
        assert_eq!(rows, 3);

        // Runs: every node must be the principal's to run.
        let run = Call::new(
            principal(&service, "analyst"),
            Protocol::FlightSql,
            Operation::RunPipeline,
        );
        let err = service
            .run_pipeline(&run, &["sales".into()], false)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
        let err = service
            .run_pipeline(&run, &["nosuch.domain".into()], false)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");

        // A cancelled key refuses the query that would run under it.
        let admin = Call::new(
            principal(&service, "admin"),
            Protocol::FlightSql,
            Operation::Fetch,
        );
        let key = meshql::service::QueryId::of(b"some ticket");
        assert!(!service.cancel(&admin, &[key]), "nothing was running");
        let err = service
            .execute(
                &admin,
                Statement::new(&path, "SELECT 1").with_cancel(Some(key)),
            )
            .await
            .err()
            .expect("refused");
        assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
        let stream = service
            .execute(&admin, Statement::new(&path, "SELECT 1 AS one"))
            .await
            .unwrap();
        let batches: Vec<_> = futures::TryStreamExt::try_collect(stream).await.unwrap();
        assert_eq!(batches[0].num_rows(), 1);
    });
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn a_table_that_cannot_be_opened_is_left_out_of_listings_not_the_listing() {
    runtime().block_on(async {
        let (dir, _) = crate::common::demo_with("", true).await;
        let log = dir
            .path()
            .join("warehouse/sales/gold/daily_revenue/_delta_log");
        for entry in std::fs::read_dir(&log).unwrap() {
            std::fs::write(entry.unwrap().path(), "not a delta log").unwrap();
        }
        let service = QueryService::unaudited(engine(dir.path())).unwrap();
        let admin = Call::new(
            principal(&service, "admin"),
            Protocol::FlightSql,
            Operation::ListTables,
        );
        let filter = TableFilter {
            catalog: Some("sales".into()),
            ..TableFilter::default()
        };
        for with_schemas in [false, true] {
            let names: Vec<String> = service
                .tables(&admin, &filter, with_schemas)
                .await
                .expect("the listing itself succeeds")
                .into_iter()
                .map(|t| t.name.to_string())
                .collect();
            assert!(
                names.contains(&"sales.gold.customer_value".to_string()),
                "{names:?}"
            );
            assert!(
                !names.contains(&"sales.gold.daily_revenue".to_string()),
                "{names:?}"
            );
        }
        // Querying it says what is wrong, and that it is not the query.
        let path = service.default_path().clone();
        let err = service
            .plan(
                &admin,
                &path,
                "SELECT * FROM sales.gold.daily_revenue",
                None,
            )
            .await
            .err()
            .expect("unreadable");
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(
            err.message().contains("Delta log cannot be read")
                && err.message().contains("daily_revenue"),
            "{err}"
        );
    });
}

#[test]
fn an_audit_table_of_an_earlier_version_is_rewritten_in_todays_columns() {
    use meshql::service::{AuditLog, AuditRecord};
    use meshql::storage::WriteMode;

    use crate::common::{embedded, publish};

    runtime().block_on(async {
        let dir = demo_mesh();
        let e = engine(dir.path());
        // The audit as meshql wrote it while it spoke Flight only: an RPC and a gRPC code.
        publish(
            &e,
            "mesh.ops.audit",
            "SELECT to_timestamp_micros('2026-11-01T10:00:00') AS at, 'analyst' AS principal, \
             'DoGet' AS rpc, 'SELECT 1' AS sql, CAST(NULL AS VARCHAR) AS tables, \
             CAST(NULL AS VARCHAR) AS masked, CAST(1 AS BIGINT) AS rows, \
             CAST(8 AS BIGINT) AS bytes, CAST(3 AS BIGINT) AS duration_ms, \
             'PermissionDenied' AS status, 'not for you' AS message",
            WriteMode::Replace,
        )
        .await
        .unwrap();

        let log = AuditLog::start(Arc::clone(&e), true, std::time::Duration::from_millis(100));
        log.record(AuditRecord::new("admin", Protocol::Cli, Operation::Query));
        log.flush().await;

        let rows = embedded(
            &e,
            "SELECT principal, operation, protocol, outcome, message FROM mesh.ops.audit ORDER BY at",
        )
        .await
        .replace(' ', "");
        assert!(
            rows.contains("|analyst|DoGet|flight_sql|PermissionDenied|notforyou|"),
            "{rows}"
        );
        assert!(rows.contains("|admin|query|cli|ok||"), "{rows}");
        // Nothing is lost: the table as it was is still there to read.
        let before = embedded(&e, "SELECT rpc, status FROM mesh.ops.audit VERSION AS OF 0")
            .await
            .replace(' ', "");
        assert!(before.contains("|DoGet|PermissionDenied|"), "{before}");
    });
}
