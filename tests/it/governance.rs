//! Governance end to end through a real server: the permission matrix of the demo principals,
//! masked PII that never leaks, forbidden statements through every path, limits, the audit log.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;

use arrow_flight::sql::{
    CommandGetTables, CommandStatementIngest, TableDefinitionOptions, TableExistsOption,
    TableNotExistOption,
};
use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use futures::TryStreamExt;
use tonic::Code;

use crate::common::{
    build_all, client_as, demo_mesh, edit, engine, mesh_with, runtime, start_server, status,
    try_query,
};

fn ingest(domain: &str, layer: &str, table: &str) -> CommandStatementIngest {
    CommandStatementIngest {
        table_definition_options: Some(TableDefinitionOptions {
            if_not_exist: TableNotExistOption::Create as i32,
            if_exists: TableExistsOption::Replace as i32,
        }),
        table: table.into(),
        schema: Some(layer.into()),
        catalog: Some(domain.into()),
        temporary: false,
        transaction_id: None,
        options: Default::default(),
    }
}

fn one_row() -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)])),
        vec![Arc::new(Int64Array::from(vec![1]))],
    )
    .unwrap()
}

/// What each demo principal may do in each domain and layer: `Q` query a dataset, `L` see
/// datasets in listings, `I` ingest, `R` run its nodes; `-` where refused.
const MATRIX: &[(&str, &str, &str, &str)] = &[
    ("admin", "finance", "raw", "QLIR"),
    ("admin", "finance", "silver", "QL-R"),
    ("admin", "finance", "gold", "QL-R"),
    ("admin", "marketing", "raw", "QLIR"),
    ("admin", "marketing", "silver", "QL-R"),
    ("admin", "marketing", "gold", "QL-R"),
    ("admin", "sales", "raw", "QLIR"),
    ("admin", "sales", "silver", "QL-R"),
    ("admin", "sales", "gold", "QL-R"),
    ("analyst", "finance", "raw", "----"),
    ("analyst", "finance", "silver", "----"),
    ("analyst", "finance", "gold", "QL--"),
    ("analyst", "marketing", "raw", "----"),
    ("analyst", "marketing", "silver", "----"),
    ("analyst", "marketing", "gold", "QL--"),
    ("analyst", "sales", "raw", "----"),
    ("analyst", "sales", "silver", "----"),
    ("analyst", "sales", "gold", "QL--"),
    ("finance", "finance", "raw", "QLIR"),
    ("finance", "finance", "silver", "QL-R"),
    ("finance", "finance", "gold", "QL-R"),
    ("finance", "marketing", "raw", "----"),
    ("finance", "marketing", "silver", "----"),
    ("finance", "marketing", "gold", "QL--"),
    ("finance", "sales", "raw", "----"),
    ("finance", "sales", "silver", "----"),
    ("finance", "sales", "gold", "QL--"),
    ("marketing", "finance", "raw", "----"),
    ("marketing", "finance", "silver", "----"),
    ("marketing", "finance", "gold", "QL--"),
    ("marketing", "marketing", "raw", "QLIR"),
    ("marketing", "marketing", "silver", "QL-R"),
    ("marketing", "marketing", "gold", "QL-R"),
    ("marketing", "sales", "raw", "----"),
    ("marketing", "sales", "silver", "----"),
    ("marketing", "sales", "gold", "QL--"),
    ("north", "finance", "raw", "----"),
    ("north", "finance", "silver", "----"),
    ("north", "finance", "gold", "QL--"),
    ("north", "marketing", "raw", "----"),
    ("north", "marketing", "silver", "----"),
    ("north", "marketing", "gold", "QL--"),
    ("north", "sales", "raw", "----"),
    ("north", "sales", "silver", "----"),
    ("north", "sales", "gold", "QL--"),
    ("sales", "finance", "raw", "----"),
    ("sales", "finance", "silver", "----"),
    ("sales", "finance", "gold", "QL--"),
    ("sales", "marketing", "raw", "----"),
    ("sales", "marketing", "silver", "----"),
    ("sales", "marketing", "gold", "QL--"),
    ("sales", "sales", "raw", "QLIR"),
    ("sales", "sales", "silver", "QL-R"),
    ("sales", "sales", "gold", "QL-R"),
];

#[test]
fn permission_matrix_of_the_demo_principals() {
    runtime().block_on(async {
        let dir = demo_mesh();
        let e = engine(dir.path());
        build_all(&e).await;
        // One dataset per domain and layer to query.
        let mut sample: BTreeMap<(String, String), String> = BTreeMap::new();
        for n in e.catalog().dataset_names() {
            if n.domain != "mesh" {
                sample
                    .entry((n.domain.clone(), n.layer.clone()))
                    .or_insert(n.to_string());
            }
        }
        let (addr, _stop) = start_server(Arc::clone(&e)).await;
        let mut got = Vec::new();
        for (principal, domain, layer, _) in MATRIX {
            let mut c = client_as(addr, principal).await;
            let key = (domain.to_string(), layer.to_string());
            let table = &sample[&key];
            let q = match try_query(&mut c, &format!("SELECT count(*) FROM {table}")).await {
                Ok(_) => 'Q',
                Err(s) => {
                    assert_eq!(
                        s.code(),
                        Code::PermissionDenied,
                        "{principal} {table}: {s:?}"
                    );
                    assert!(
                        s.message()
                            .contains(&format!("`{principal}` may not read `{table}`")),
                        "{}",
                        s.message()
                    );
                    '-'
                }
            };
            let info = c
                .get_tables(CommandGetTables {
                    catalog: Some(domain.to_string()),
                    db_schema_filter_pattern: Some(layer.to_string()),
                    table_name_filter_pattern: None,
                    table_types: vec![],
                    include_schema: false,
                })
                .await
                .unwrap();
            let mut listed: Vec<String> = Vec::new();
            for endpoint in info.endpoint {
                let stream = c.do_get(endpoint.ticket.unwrap()).await.unwrap();
                for b in stream.try_collect::<Vec<_>>().await.unwrap() {
                    let names = b.column_by_name("table_name").unwrap();
                    let names = names.as_any().downcast_ref::<StringArray>().unwrap();
                    listed.extend(
                        names
                            .iter()
                            .map(|n| format!("{domain}.{layer}.{}", n.unwrap())),
                    );
                }
            }
            // Exact listings: everything the layer holds when it may be read, nothing otherwise.
            let l = if listed.is_empty() {
                '-'
            } else {
                let mut all: Vec<String> = e
                    .catalog()
                    .dataset_names()
                    .into_iter()
                    .filter(|n| n.domain == *domain && n.layer == *layer)
                    .map(|n| n.to_string())
                    .collect();
                all.sort();
                listed.sort();
                assert_eq!(listed, all, "{principal} lists {domain}.{layer}");
                'L'
            };
            let probe = format!("probe_{principal}");
            let i = match c
                .execute_ingest(
                    ingest(domain, layer, &probe),
                    futures::stream::iter([Ok(one_row())]),
                )
                .await
            {
                Ok(_) => 'I',
                Err(err) => {
                    assert_eq!(status(err).code(), Code::PermissionDenied);
                    '-'
                }
            };
            let mut remote = meshql::client::Client::connect(&format!("grpc://{addr}"))
                .await
                .unwrap();
            remote.login(principal, principal).await.unwrap();
            let r = match remote
                .run_pipeline(&[format!("{domain}.{layer}")], false)
                .await
            {
                Ok(result) => {
                    assert!(result.succeeded, "{result:?}");
                    'R'
                }
                Err(err) => {
                    assert_eq!(err.kind(), meshql::ErrorKind::PermissionDenied, "{err}");
                    '-'
                }
            };
            got.push((*principal, *domain, *layer, format!("{q}{l}{i}{r}")));
        }
        let want: Vec<(&str, &str, &str, String)> = MATRIX
            .iter()
            .map(|(p, d, l, ops)| (*p, *d, *l, ops.to_string()))
            .collect();
        assert_eq!(got, want);

        // The regional manager sees its region's rows only; the sales team every region.
        let mut north = client_as(addr, "north").await;
        let regions = try_query(
            &mut north,
            "SELECT DISTINCT region FROM sales.gold.daily_revenue",
        )
        .await
        .unwrap();
        assert_eq!(
            regions
                .lines()
                .filter(|l| l.starts_with("| ") && !l.contains("region"))
                .count(),
            1,
            "{regions}"
        );
        assert!(regions.contains("| north  |"), "{regions}");
        let mut sales = client_as(addr, "sales").await;
        let regions = try_query(
            &mut sales,
            "SELECT count(DISTINCT region) AS n FROM sales.gold.daily_revenue",
        )
        .await
        .unwrap();
        assert!(regions.contains("| 4 |"), "{regions}");

        // The system catalog shows each principal what it may read, and the audit log to admins.
        let mut analyst = client_as(addr, "analyst").await;
        let layers = try_query(
            &mut analyst,
            "SELECT DISTINCT layer FROM mesh.catalog.datasets",
        )
        .await
        .unwrap();
        assert!(
            !layers.contains("silver") && layers.contains("gold"),
            "{layers}"
        );
        let s = try_query(&mut analyst, "SELECT * FROM mesh.ops.audit")
            .await
            .unwrap_err();
        assert_eq!(s.code(), Code::PermissionDenied);
        let names = try_query(
            &mut analyst,
            "SELECT table_schema FROM information_schema.tables WHERE table_catalog = 'sales'",
        )
        .await
        .unwrap();
        assert!(
            !names.contains("silver") && !names.contains("raw"),
            "{names}"
        );
    });
}

const CANARY: &str = "canary-7f3a9c@example.com";

fn canary_mesh() -> tempfile::TempDir {
    let admin = meshql::governance::hash_password("admin").unwrap();
    let analyst = meshql::governance::hash_password("analyst").unwrap();
    mesh_with(&[
        (
            "catalog/mesh.yaml",
            &format!(
                "name: crm\ndomains:\n  - name: crm\nprincipals:\n  - name: admin\n    groups: [admins]\n    password_hash: \"{admin}\"\n  - name: analyst\n    password_hash: \"{analyst}\"\npolicies:\n  - name: hash-pii\n    mask: sha256\n    classification: pii\n"
            ),
        ),
        ("catalog/crm/domain.yaml", "owner: crm\n"),
        (
            "catalog/crm/data/people.csv",
            &format!("id,email,age\n1,{CANARY},41\n2,someone@example.com,35\n"),
        ),
        (
            "catalog/crm/jobs/people.json",
            r#"[{"execution": [{"type": "IngestCSV", "file_location": "data/people.csv",
                 "additional_attributes": [{"key": "header", "value": "true"}, {"key": "inferSchema", "value": "true"}]}],
                 "destination": [{"type": "table", "table_name": "crm.raw.people", "mode": "overwrite"}]}]"#,
        ),
        (
            "sql/crm/silver/people.sql",
            "SELECT id, email, age FROM raw.people\n",
        ),
        (
            "sql/crm/gold/people.sql",
            "SELECT id, email, age FROM silver.people\n",
        ),
        (
            "sql/crm/gold/people_view.sql",
            "-- @materialized: view\nSELECT email AS contact, age FROM gold.people\n",
        ),
        (
            "catalog/crm/products/people.yaml",
            "apiVersion: v3.1.0\nkind: DataContract\nid: crm-people\nversion: 1.0.0\nstatus: active\nschema:\n  - name: people\n    physicalName: crm.gold.people\n    properties:\n      - name: id\n        logicalType: integer\n      - name: email\n        logicalType: string\n        classification: pii\n      - name: age\n        logicalType: integer\n",
        ),
        (
            "catalog/crm/products/people_view.yaml",
            "apiVersion: v3.1.0\nkind: DataContract\nid: crm-people-view\nversion: 1.0.0\nstatus: active\nschema:\n  - name: people_view\n    physicalName: crm.gold.people_view\n    properties:\n      - name: contact\n        logicalType: string\n      - name: age\n        logicalType: integer\n",
        ),
    ])
}

#[test]
fn a_masked_canary_appears_in_no_result_error_explain_or_log_line() {
    let dir = canary_mesh();
    let out = Command::new(env!("CARGO_BIN_EXE_meshql"))
        .args(["--mesh", dir.path().to_str().unwrap(), "run"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mut server = Command::new(env!("CARGO_BIN_EXE_meshql"))
        .args([
            "--mesh",
            dir.path().to_str().unwrap(),
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--no-build",
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = server.stdout.take().unwrap();
    let stderr = server.stderr.take().unwrap();
    let logs = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let url = loop {
        let line = lines.next().expect("server output").unwrap();
        if let Some(i) = line.find("grpc://") {
            break line[i + "grpc://".len()..].trim().to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let addr: std::net::SocketAddr = url.parse().unwrap();

    let queries = [
        "SELECT * FROM crm.gold.people",
        "SELECT email FROM crm.gold.people WHERE email = 'canary-7f3a9c@example.com'",
        "SELECT email FROM crm.gold.people WHERE email LIKE '%canary%'",
        "SELECT email, count(*) FROM crm.gold.people GROUP BY email",
        "SELECT DISTINCT email FROM crm.gold.people",
        "SELECT a.email, b.age FROM crm.gold.people a JOIN crm.gold.people b ON a.email = b.email",
        "SELECT email FROM crm.gold.people ORDER BY email",
        "SELECT min(email), max(email) FROM crm.gold.people",
        "SELECT CAST(email AS INT) FROM crm.gold.people",
        "SELECT CAST(email AS DATE) FROM crm.gold.people WHERE id = 1",
        "SELECT upper(email), length(email) FROM crm.gold.people",
        "SELECT * FROM crm.gold.people_view",
        "WITH x AS (SELECT email FROM crm.gold.people) SELECT * FROM x",
        "SELECT email FROM crm.gold.people UNION SELECT email FROM crm.gold.people",
        "SELECT * FROM crm.gold.people WHERE email IN (SELECT email FROM crm.gold.people)",
        "SELECT (SELECT max(email) FROM crm.gold.people) AS m",
        "EXPLAIN SELECT * FROM crm.gold.people WHERE email = 'x'",
        "EXPLAIN VERBOSE SELECT email FROM crm.gold.people",
        "EXPLAIN ANALYZE SELECT email FROM crm.gold.people",
        "SELECT * FROM crm.silver.people",
        "SELECT contact FROM crm.gold.people_view WHERE contact LIKE 'canary%'",
    ];
    runtime().block_on(async {
        let mut analyst = client_as(addr, "analyst").await;
        let mut answered = 0;
        for sql in queries {
            let text = match try_query(&mut analyst, sql).await {
                Ok(t) => {
                    answered += 1;
                    t
                }
                Err(s) => format!("{:?}: {}", s.code(), s.message()),
            };
            assert!(!text.contains("canary"), "{sql} leaked:\n{text}");
        }
        assert!(answered >= 17, "{answered} queries answered");
        // The value is there: the hash of it is what the analyst sees; the admin sees it raw.
        let masked = try_query(
            &mut analyst,
            "SELECT email FROM crm.gold.people WHERE id = 1",
        )
        .await
        .unwrap();
        let hash: String = {
            use sha2::Digest;
            sha2::Sha256::digest(CANARY.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        assert!(masked.contains(&hash), "{masked}");
        let mut admin = client_as(addr, "admin").await;
        assert!(
            try_query(&mut admin, "SELECT email FROM crm.gold.people")
                .await
                .unwrap()
                .contains(CANARY)
        );
    });
    unsafe_kill(&mut server);
    let logs = logs.join().unwrap();
    assert!(logs.contains("meshql::audit"), "the audit lines are logged");
    // Only the SQL the admin and the analyst typed contains it; the log holds SQL hashes only.
    assert!(!logs.contains("canary"), "a log line leaked the canary");
}

fn unsafe_kill(child: &mut std::process::Child) {
    // SIGTERM: the server finishes its requests and flushes the audit log.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();
}

#[test]
fn forbidden_statements_are_refused_on_every_path_and_write_nothing() {
    runtime().block_on(async {
        let dir = demo_mesh();
        let e = engine(dir.path());
        build_all(&e).await;
        let (addr, _stop) = start_server(Arc::clone(&e)).await;
        let spot = dir.path().join("forbidden");
        std::fs::create_dir_all(&spot).unwrap();
        let target = |name: &str| spot.join(name).display().to_string();
        let statements: Vec<String> = vec![
            "INSERT INTO sales.silver.stores VALUES (1, 'x', 'y', DATE '2026-01-01')".into(),
            "INSERT INTO sales.gold.daily_revenue SELECT * FROM sales.gold.daily_revenue".into(),
            "UPDATE sales.silver.stores SET region = 'x'".into(),
            "DELETE FROM sales.silver.stores".into(),
            "MERGE INTO sales.silver.stores t USING sales.silver.stores s ON t.store_id = s.store_id WHEN MATCHED THEN DELETE".into(),
            "TRUNCATE TABLE sales.silver.stores".into(),
            "CREATE TABLE t (a INT)".into(),
            "CREATE TABLE t AS SELECT 1".into(),
            "CREATE OR REPLACE TABLE sales.gold.daily_revenue AS SELECT 1".into(),
            "CREATE VIEW v AS SELECT 1".into(),
            "CREATE SCHEMA s".into(),
            "CREATE DATABASE d".into(),
            "CREATE FUNCTION f(a INT) RETURNS INT RETURN a".into(),
            format!("CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '{}'", target("x.csv")),
            "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'".into(),
            format!("CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '{}'", target("p/")),
            "CREATE EXTERNAL TABLE x STORED AS JSON LOCATION 'https://example.com/x.json'".into(),
            "DROP TABLE sales.gold.daily_revenue".into(),
            "DROP VIEW v".into(),
            "DROP SCHEMA sales.gold".into(),
            "DROP FUNCTION f".into(),
            "ALTER TABLE sales.silver.stores ADD COLUMN x INT".into(),
            format!("COPY (SELECT 1) TO '{}'", target("copy.csv")),
            format!("COPY sales.gold.daily_revenue TO '{}' STORED AS PARQUET", target("copy.parquet")),
            format!("COPY (SELECT * FROM sales.gold.daily_revenue) TO '{}' STORED AS JSON", target("copy.json")),
            format!("COPY sales.silver.stores FROM '{}'", target("in.csv")),
            "SET datafusion.execution.batch_size = 1".into(),
            "SET datafusion.runtime.memory_limit = '1T'".into(),
            "SET datafusion.runtime.temp_directory = '/tmp'".into(),
            "SET datafusion.sql_parser.recursion_limit = 100000".into(),
            "SET TIME ZONE 'UTC'".into(),
            "RESET datafusion.execution.batch_size".into(),
            "PREPARE p AS SELECT 1".into(),
            "EXECUTE p".into(),
            "DEALLOCATE p".into(),
            "BEGIN".into(),
            "START TRANSACTION".into(),
            "COMMIT".into(),
            "ROLLBACK".into(),
            "SAVEPOINT s".into(),
            "GRANT SELECT ON sales.gold.daily_revenue TO analyst".into(),
            "REVOKE SELECT ON sales.gold.daily_revenue FROM analyst".into(),
            "SELECT * INTO copied FROM sales.gold.daily_revenue".into(),
            "EXPLAIN INSERT INTO sales.silver.stores VALUES (1, 'x', 'y', DATE '2026-01-01')".into(),
            format!("EXPLAIN ANALYZE COPY (SELECT 1) TO '{}'", target("explained.csv")),
            "USE sales.gold".into(),
            "SELECT * FROM '/etc/passwd'".into(),
            "SELECT * FROM 'file:///etc/passwd'".into(),
            format!("SELECT * FROM '{}'", dir.path().join("catalog/sales/data/stores.csv").display()),
            "SELECT * FROM 'https://example.com/data.csv'".into(),
        ];
        assert!(statements.len() >= 40);
        let before = files_under(dir.path());
        let mut admin = client_as(addr, "admin").await;
        for sql in &statements {
            // The plain statement path.
            let s = try_query(&mut admin, sql).await.unwrap_err();
            assert!(
                matches!(s.code(), Code::PermissionDenied | Code::InvalidArgument | Code::NotFound),
                "{sql}: {s:?}"
            );
            // Prepared statements.
            let s = match admin.prepare(sql.clone(), None).await {
                Ok(_) => panic!("prepare accepted {sql}"),
                Err(e) => status(e),
            };
            assert!(
                matches!(s.code(), Code::PermissionDenied | Code::InvalidArgument | Code::NotFound),
                "prepare {sql}: {s:?}"
            );
            // Updates.
            let s = admin.execute_update(sql.clone(), None).await.map_err(status).unwrap_err();
            assert_eq!(s.code(), Code::PermissionDenied, "update {sql}: {s:?}");
        }
        // Substrait plans, transactions and writes into non-raw layers.
        {
            use arrow_flight::sql::{CommandStatementSubstraitPlan, ProstMessageExt, SubstraitPlan};
            use prost::Message;
            let command = CommandStatementSubstraitPlan {
                plan: Some(SubstraitPlan { plan: vec![1, 2, 3].into(), version: "0.1".into() }),
                transaction_id: None,
            };
            let descriptor =
                arrow_flight::FlightDescriptor::new_cmd(command.as_any().encode_to_vec());
            let mut request = tonic::Request::new(descriptor);
            let token = admin.token().cloned().unwrap();
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
            let s = admin.inner_mut().get_flight_info(request).await.unwrap_err();
            assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
        }
        let s = admin.begin_transaction().await.map_err(status).unwrap_err();
        assert_eq!(s.code(), Code::InvalidArgument);
        for layer in ["silver", "gold"] {
            let s = admin
                .execute_ingest(ingest("sales", layer, "sneaky"), futures::stream::iter([Ok(one_row())]))
                .await
                .map_err(status)
                .unwrap_err();
            assert_eq!(s.code(), Code::PermissionDenied, "{layer}");
        }
        // Not one file was created anywhere.
        assert_eq!(files_under(dir.path()), before);
        assert_eq!(std::fs::read_dir(&spot).unwrap().count(), 0);
    });
}

fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            // The audit log is written by design.
            if p.to_string_lossy().contains("_mesh/ops/audit") {
                continue;
            }
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_query_past_its_memory_cap_fails_alone_and_requests_are_audited() {
    runtime().block_on(async {
        let (_dir, e) = crate::common::demo_with(
            "  query_memory_limit_mb: 16\n  query_timeout_secs: 2\n  audit_flush_secs: 1\n",
            true,
        )
        .await;
        let (addr, _stop) = start_server(Arc::clone(&e)).await;
        let mut heavy = client_as(addr, "analyst").await;
        let mut other = client_as(addr, "marketing").await;
        // An aggregate into one array cannot spill: past 16 MiB the query fails, alone.
        let big = "SELECT array_length(array_agg(value)) FROM generate_series(1, 5000000)";
        let (failed, fine) = tokio::join!(try_query(&mut heavy, big), try_query(&mut other, "SELECT count(*) AS n FROM marketing.gold.roas_by_region"));
        let s = failed.unwrap_err();
        assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
        assert!(s.message().contains("server.query_memory_limit_mb"), "{}", s.message());
        assert!(fine.unwrap().contains("| 4 |"));
        // The deadline, the same way.
        let slow = "SELECT count(*) FROM generate_series(1, 2000000000) WHERE value % 7 = 3";
        let (late, fine) = tokio::join!(try_query(&mut heavy, slow), try_query(&mut other, "SELECT 1 AS one"));
        assert_eq!(late.unwrap_err().code(), Code::DeadlineExceeded);
        assert!(fine.is_ok());
        // A nesting ladder never takes the server down.
        for depth in [10usize, 100, 1_000, 10_000, 100_000] {
            let sql = format!("SELECT 1{}", "+1".repeat(depth));
            match try_query(&mut other, &sql).await {
                Ok(t) => assert!(t.contains(&(depth + 1).to_string()), "{depth}"),
                Err(s) => assert_eq!(s.code(), Code::ResourceExhausted, "{depth}: {s:?}"),
            }
        }
        assert!(try_query(&mut other, "SELECT 2 AS two").await.is_ok());

        // Listings are audited too.
        let info = other
            .get_tables(CommandGetTables {
                catalog: Some("marketing".into()),
                db_schema_filter_pattern: None,
                table_name_filter_pattern: None,
                table_types: vec![],
                include_schema: false,
            })
            .await
            .unwrap();
        let _ = other.do_get(info.endpoint[0].ticket.clone().unwrap()).await.unwrap().try_collect::<Vec<_>>().await;

        // Every request of this test is in the audit log, readable by admins. The log's files are
        // sorted by several partitions at once, which must fit in the 16 MiB cap too.
        let mut admin = client_as(addr, "admin").await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let text = try_query(&mut admin, "SELECT principal, operation, protocol, outcome FROM mesh.ops.audit WHERE operation = 'fetch' AND principal = 'analyst' ORDER BY at").await.unwrap();
            let listings = try_query(&mut admin, "SELECT operation, protocol FROM mesh.ops.audit WHERE operation = 'list_tables' AND principal = 'marketing'").await.unwrap();
            if text.contains("resource_exhausted") && text.contains("deadline_exceeded") && text.contains("flight_sql") && listings.contains("list_tables") {
                break;
            }
            if std::time::Instant::now() > deadline {
                let all = try_query(&mut admin, "SELECT principal, operation, outcome, message FROM mesh.ops.audit ORDER BY at").await.unwrap();
                panic!("audit rows missing:\n{text}\n{all}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        let text = try_query(&mut admin, "SELECT tables, rows FROM mesh.ops.audit WHERE principal = 'marketing' AND operation = 'fetch' AND tables IS NOT NULL").await.unwrap();
        assert!(text.contains("marketing.gold.roas_by_region"), "{text}");
    });
}

fn jwt(claims: serde_json::Value) -> String {
    let key = std::fs::read(crate::common::repo().join("tests/fixtures/jwt/idp.key")).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("test-idp-1".into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(&key).unwrap(),
    )
    .unwrap()
}

#[test]
fn jwts_of_an_identity_provider_are_principals() {
    runtime().block_on(async {
        let dir = demo_mesh();
        build_all(&engine(dir.path())).await;
        let jwks = crate::common::repo().join("tests/fixtures/jwt/jwks.json");
        edit(
            &dir.path().join("catalog/mesh.yaml"),
            "server:\n",
            &format!(
                "server:\n  jwt:\n    issuer: https://idp.example.com/\n    audience: meshql\n    jwks: {}\n    name_claim: preferred_username\n",
                jwks.display()
            ),
        );
        let (addr, _stop) = start_server(engine(dir.path())).await;
        let exp = chrono::Utc::now().timestamp() + 600;
        let good = serde_json::json!({
            "iss": "https://idp.example.com/", "aud": "meshql", "exp": exp,
            "sub": "0f9c", "preferred_username": "carla", "groups": ["sales", "regional"], "region": "west"
        });
        let mut c = crate::common::anonymous_client(addr).await;
        c.set_token(jwt(good.clone()));
        // In the sales group: sales' silver layer is readable; as a regional manager, west only.
        assert!(try_query(&mut c, "SELECT count(*) FROM sales.silver.stores").await.is_ok());
        let regions = try_query(&mut c, "SELECT DISTINCT region FROM sales.gold.daily_revenue").await.unwrap();
        assert!(regions.contains("| west   |") && !regions.contains("north"), "{regions}");
        let s = try_query(&mut c, "SELECT count(*) FROM finance.silver.revenue_targets").await.unwrap_err();
        assert_eq!(s.code(), Code::PermissionDenied);
        assert!(s.message().contains("`carla` may not read"), "{}", s.message());

        let bad = |claims: serde_json::Value| {
            let token = jwt(claims);
            async move {
                let mut c = crate::common::anonymous_client(addr).await;
                c.set_token(token);
                try_query(&mut c, "SELECT 1").await.unwrap_err()
            }
        };
        let mut expired = good.clone();
        expired["exp"] = serde_json::json!(chrono::Utc::now().timestamp() - 3600);
        let mut issuer = good.clone();
        issuer["iss"] = serde_json::json!("https://evil.example.com/");
        let mut audience = good.clone();
        audience["aud"] = serde_json::json!("someone-else");
        for (what, claims, reason) in [
            ("expired", expired, "ExpiredSignature"),
            ("issuer", issuer, "InvalidIssuer"),
            ("audience", audience, "InvalidAudience"),
        ] {
            let s = bad(claims).await;
            assert_eq!(s.code(), Code::Unauthenticated, "{what}");
            assert!(s.message().contains(reason), "{what}: {}", s.message());
        }
        // A token signed with a shared secret instead of the provider's key.
        let forged = jsonwebtoken::encode(
            &jsonwebtoken::Header { kid: Some("test-idp-1".into()), ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256) },
            &good,
            &jsonwebtoken::EncodingKey::from_secret(b"guess"),
        )
        .unwrap();
        let mut c = crate::common::anonymous_client(addr).await;
        c.set_token(forged);
        let s = try_query(&mut c, "SELECT 1").await.unwrap_err();
        assert_eq!(s.code(), Code::Unauthenticated);
        assert!(s.message().contains("does not match the key"), "{}", s.message());
    });
}
