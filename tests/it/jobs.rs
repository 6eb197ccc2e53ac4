//! mu-pipelines job files: run unchanged, inside and outside a mesh; incremental models; run
//! history; bad rows and bad files.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use datafusion::arrow::util::pretty::pretty_format_batches;
use meshql::engine::Engine;
use meshql::pipeline::{JobRun, Run, RunPlan, RunReport};
use meshql::spec::job::{JobFile, parse};
use meshql::spec::{DatasetName, Mesh};
use tempfile::TempDir;

use crate::common::{demo_mesh, embedded, engine, mesh_with, meshql_in as meshql, runtime};

const PEOPLE: &str = "name,age,city\nAda,36,London\nGrace,45,Arlington\nLinus,28,Helsinki\n";

/// The job of mu-pipelines' getting-started guide, as published, reading `csv`.
fn getting_started_job(csv: &Path) -> String {
    format!(
        r#"[
    {{
        "execution": [
            {{
                "type": "CSVReadCommand",
                "file_location": "{}",
                "delimiter": ",",
                "quotes": "\"",
                "additional_attributes": [
                    {{"key": "header", "value": "True"}}
                ]
            }}
        ],
        "destination": [
            {{
                "type": "table",
                "table_name": "crm.raw.people",
                "mode": "overwrite"
            }}
        ]
    }}
]
"#,
        csv.display()
    )
}

/// `meshql serve` on port 0 in `dir`; returns the server (stopped when dropped) and its URL
/// once it listens.
fn serve(dir: &Path) -> (Killed, String) {
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_meshql"))
            .current_dir(dir)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn meshql serve"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.expect("line");
        if let Some(i) = line.find("grpc://") {
            // Keep reading what the server prints, so it never writes into a closed pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return (child, line[i..].trim().to_string());
        }
    }
    panic!("meshql serve stopped before listening");
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_getting_started_job_runs_unchanged_and_is_served() {
    let dir = TempDir::new().unwrap();
    let csv = dir.path().join("people.csv");
    std::fs::write(&csv, PEOPLE).unwrap();
    std::fs::write(dir.path().join("people.json"), getting_started_job(&csv)).unwrap();
    std::fs::write(
        dir.path().join("global-properties.json"),
        r#"{ "library": "spark" }"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("connection-properties.json"),
        r#"{"connections": []}"#,
    )
    .unwrap();

    let args = [
        "job",
        "run",
        "--global-properties",
        "global-properties.json",
        "--connection-properties",
        "connection-properties.json",
        "people.json",
    ];
    let (code, out, err) = meshql(dir.path(), &args);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("crm.raw.people"), "{out}");
    assert!(
        dir.path()
            .join("warehouse/crm/raw/people/_delta_log")
            .is_dir()
    );
    // Unchanged file, unchanged job: nothing to do.
    let (code, out, _) = meshql(dir.path(), &args);
    assert_eq!(code, Some(0));
    assert!(out.contains("0 ok, 1 up to date"), "{out}");

    // `meshql serve` in the same folder serves what the job loaded.
    let (_server, url) = serve(dir.path());
    runtime().block_on(async {
        let mut client = meshql::client::Client::connect(&url)
            .await
            .expect("connect");
        let (schema, batches) = client
            .query("SELECT name, age, city FROM crm.raw.people ORDER BY name")
            .await
            .expect("query");
        // header True without inferSchema: every column is a string, as in Spark.
        assert!(
            schema.fields().iter().all(|f| f.data_type().is_string()),
            "{schema:?}"
        );
        let table = pretty_format_batches(&batches).unwrap().to_string();
        assert_eq!(
            table,
            "+-------+-----+-----------+\n\
             | name  | age | city      |\n\
             +-------+-----+-----------+\n\
             | Ada   | 36  | London    |\n\
             | Grace | 45  | Arlington |\n\
             | Linus | 28  | Helsinki  |\n\
             +-------+-----+-----------+"
        );
        let (_, batches) = client
            .query("SELECT node, kind, status, rows FROM mesh.ops.runs ORDER BY run_id")
            .await
            .expect("history");
        let table = pretty_format_batches(&batches).unwrap().to_string();
        assert_eq!(
            table,
            "+----------------+------+------------+------+\n\
             | node           | kind | status     | rows |\n\
             +----------------+------+------------+------+\n\
             | crm.raw.people | job  | ok         | 3    |\n\
             | crm.raw.people | job  | up_to_date |      |\n\
             +----------------+------+------------+------+"
        );
    });
}

#[test]
fn inside_a_mesh_a_job_writes_only_declared_domains() {
    let dir = demo_mesh();
    let csv = dir.path().join("people.csv");
    std::fs::write(&csv, PEOPLE).unwrap();
    std::fs::write(dir.path().join("people.json"), getting_started_job(&csv)).unwrap();
    let (code, out, err) = meshql(dir.path(), &["job", "run", "people.json"]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        out.contains(
            "the job writes `crm.raw.people`, but the mesh `demo` declares no layer `crm.raw` \
             (domains: sales, marketing, finance); declare it in the mesh, or run the job outside a mesh folder"
        ),
        "{out}"
    );
    assert!(!dir.path().join("catalog/warehouse/crm").exists());
    assert!(!dir.path().join("warehouse/crm").exists());
}

fn job_file(path: &Path, text: &str) -> JobFile {
    std::fs::write(path, text).unwrap();
    let mut diags = Vec::new();
    let file = parse(path, text, &mut diags).expect("job parses");
    assert!(diags.is_empty(), "{diags:?}");
    file
}

/// Every cell of a query's result as text (empty for NULL).
async fn cells(e: &Engine, query: &str) -> Vec<Vec<String>> {
    use datafusion::arrow::util::display::array_value_to_string;
    let batches = crate::common::embedded_batches(e, query).await;
    let mut out = Vec::new();
    for b in &batches {
        for row in 0..b.num_rows() {
            out.push(
                b.columns()
                    .iter()
                    .map(|c| {
                        if c.is_null(row) {
                            String::new()
                        } else {
                            array_value_to_string(c, row).unwrap()
                        }
                    })
                    .collect(),
            );
        }
    }
    out
}

async fn run_job(dir: &Path, file: JobFile, tables: &[&str]) -> (Arc<Engine>, RunReport) {
    let names: Vec<DatasetName> = tables
        .iter()
        .map(|t| DatasetName::parse(t).unwrap())
        .collect();
    let e = Engine::new(Arc::new(Mesh::standalone(dir, &names))).unwrap();
    let report = JobRun::new(Arc::clone(&e), file, dir).await;
    (e, report)
}

#[test]
fn transform_sql_from_a_file_and_every_destination() {
    runtime().block_on(async {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("orders.csv"),
            "id;amount;placed\n1;10.5;2026-01-01 10:00:00\n2;;2026-01-02 11:30:00\n3;7;2026-01-03 09:15:00\n",
        )
        .unwrap();
        std::fs::create_dir_all(d.join("jobs/sql")).unwrap();
        std::fs::write(
            d.join("jobs/sql/big.sql"),
            "SELECT id, coalesce(amount, 0) AS amount, placed FROM orders WHERE id >= 2",
        )
        .unwrap();
        let file = job_file(
            &d.join("jobs/orders.json"),
            r#"{"execution": [
                 {"type": "IngestCSV", "file_location": "orders.csv",
                  "additional_attributes": [{"key": "header", "value": true}, {"key": "sep", "value": ";"},
                                            {"key": "inferSchema", "value": "true"}]},
                 {"exec_type": "transformsql", "alias": "orders", "sql_file_location": "sql/big.sql"}],
               "destination": [
                 {"type": "DestinationDefaultCatalog", "table_name": "shop.silver.big", "mode": "overwrite"},
                 {"type": "DestinationCSV", "file_location": "out/big", "mode": "overwrite",
                  "additional_attributes": [{"key": "header", "value": "true"}]},
                 {"type": "DestinationParquet", "file_location": "out/big_parquet", "compression": "zstd", "mode": "overwrite"},
                 {"type": "print"}]}"#,
        );
        let (e, report) = run_job(d, file, &["shop.silver.big"]).await;
        assert!(report.succeeded(), "{report:#?}");
        assert_eq!(
            embedded(&e, "SELECT * FROM shop.silver.big ORDER BY id").await,
            "+----+--------+----------------------+\n\
             | id | amount | placed               |\n\
             +----+--------+----------------------+\n\
             | 2  | 0.0    | 2026-01-02T11:30:00Z |\n\
             | 3  | 7.0    | 2026-01-03T09:15:00Z |\n\
             +----+--------+----------------------+"
        );
        // Spark's layout: a folder of part files and a _SUCCESS marker.
        let parts: Vec<String> = std::fs::read_dir(d.join("out/big"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(parts.contains(&"_SUCCESS".to_string()), "{parts:?}");
        let part = parts.iter().find(|p| p.ends_with(".csv")).expect("a part file");
        let text = std::fs::read_to_string(d.join("out/big").join(part)).unwrap();
        assert_eq!(
            text,
            "id,amount,placed\n2,0.0,2026-01-02T11:30:00Z\n3,7.0,2026-01-03T09:15:00Z\n"
        );
        // Another reader (a plain DataFusion context) finds the same rows in the Parquet folder.
        let ctx = datafusion::prelude::SessionContext::new();
        let parquet = ctx
            .read_parquet(
                format!("{}/", d.join("out/big_parquet").display()),
                Default::default(),
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(parquet.iter().map(|b| b.num_rows()).sum::<usize>(), 2);

        // Spark's default for files is errorifexists: a second run without `mode` is refused
        // and the existing output stays.
        let file = job_file(
            &d.join("jobs/again.json"),
            r#"[{"execution": [{"type": "IngestCSV", "file_location": "orders.csv"}],
                 "destination": [{"type": "csv", "file_location": "out/big"}]}]"#,
        );
        let (_, report) = run_job(d, file, &[]).await;
        let failure = report.nodes[0].status.detail().unwrap_or_default().to_string();
        assert!(failure.contains("already exists and the mode is errorifexists"), "{failure}");
        assert!(d.join("out/big").join(part).is_file());
    });
}

/// A mesh whose raw layer is fed by a job and whose silver layer holds two incremental models.
fn incremental_mesh() -> TempDir {
    mesh_with(&[
        ("catalog/mesh.yaml", "name: inc\ndomains:\n  - name: shop\n"),
        ("catalog/shop/domain.yaml", "owner: shop\n"),
        (
            "catalog/shop/data/orders.csv",
            "id,amount\n1,10\n2,20\n3,30\n",
        ),
        (
            "catalog/shop/jobs/load.json",
            r#"[{"execution": [{"type": "IngestCSV", "file_location": "data/orders.csv",
                 "additional_attributes": [{"key": "header", "value": "True"}, {"key": "inferSchema", "value": "True"}]}],
                 "destination": [{"type": "DestinationDefaultCatalog", "table_name": "shop.raw.orders", "mode": "overwrite"}]}]"#,
        ),
        (
            "sql/shop/silver/orders_log.sql",
            "-- Every order ever seen, appended.\n-- @materialized: incremental\n-- @watermark: id\nSELECT id, amount FROM raw.orders\n",
        ),
        (
            "sql/shop/silver/orders_latest.sql",
            "-- The latest amount of every order.\n-- @materialized: incremental\n-- @unique_key: id\nSELECT id, amount FROM raw.orders\n",
        ),
        (
            "sql/shop/silver/big_orders.sql",
            "-- @materialized: view\nSELECT id FROM silver.orders_latest WHERE amount >= 30\n",
        ),
    ])
}

#[test]
fn incremental_models_over_three_runs_and_their_history() {
    runtime().block_on(async {
        let dir = incremental_mesh();
        let run = |e: &Arc<Engine>| {
            let plan = RunPlan::new(e.mesh(), &[]).unwrap();
            Run::new(Arc::clone(e), plan).with_parallelism(1)
        };
        let e = engine(dir.path());
        let first = run(&e).await;
        assert!(first.succeeded(), "{first:#?}");

        // New rows 4 and 5; order 2 changes its amount; order 1 is gone from the source.
        std::fs::write(
            dir.path().join("catalog/shop/data/orders.csv"),
            "id,amount\n2,25\n3,30\n4,40\n5,50\n",
        )
        .unwrap();
        let second = run(&e).await;
        assert!(second.succeeded(), "{second:#?}");
        let third = run(&e).await;
        assert!(third.succeeded(), "{third:#?}");
        assert_eq!(third.count("up_to_date"), 3, "{third:#?}");

        assert_eq!(
            embedded(&e, "SELECT * FROM shop.silver.orders_log ORDER BY id").await,
            "+----+--------+\n| id | amount |\n+----+--------+\n\
             | 1  | 10     |\n| 2  | 20     |\n| 3  | 30     |\n| 4  | 40     |\n| 5  | 50     |\n\
             +----+--------+"
        );
        assert_eq!(
            embedded(&e, "SELECT * FROM shop.silver.orders_latest ORDER BY id").await,
            "+----+--------+\n| id | amount |\n+----+--------+\n\
             | 1  | 10     |\n| 2  | 25     |\n| 3  | 30     |\n| 4  | 40     |\n| 5  | 50     |\n\
             +----+--------+"
        );
        // The view reads the current version of what it selects from.
        assert_eq!(
            embedded(&e, "SELECT * FROM shop.silver.big_orders ORDER BY id").await,
            "+----+\n| id |\n+----+\n| 3  |\n| 4  |\n| 5  |\n+----+"
        );
        // information_schema tells the view from the tables without planning it.
        assert_eq!(
            embedded(
                &e,
                "SELECT table_name, table_type FROM information_schema.tables \
                 WHERE table_catalog = 'shop' AND table_schema = 'silver' ORDER BY 1"
            )
            .await,
            "+---------------+------------+\n| table_name    | table_type |\n+---------------+------------+\n\
             | big_orders    | VIEW       |\n| orders_latest | BASE TABLE |\n| orders_log    | BASE TABLE |\n\
             +---------------+------------+"
        );

        let history = cells(
            &e,
            "SELECT CASE run_id WHEN (SELECT min(run_id) FROM mesh.ops.runs) THEN 1 \
                    WHEN (SELECT max(run_id) FROM mesh.ops.runs) THEN 3 ELSE 2 END AS run, \
                    node, kind, status, rows, published_version \
             FROM mesh.ops.runs ORDER BY run, node",
        )
        .await;
        let expected: Vec<Vec<&str>> = vec![
            vec!["1", "shop.raw.orders", "job", "ok", "3", "0"],
            vec!["1", "shop.silver.big_orders", "transform", "ok", "", ""],
            vec![
                "1",
                "shop.silver.orders_latest",
                "transform",
                "ok",
                "3",
                "0",
            ],
            vec!["1", "shop.silver.orders_log", "transform", "ok", "3", "0"],
            vec!["2", "shop.raw.orders", "job", "ok", "4", "1"],
            vec!["2", "shop.silver.big_orders", "transform", "ok", "", ""],
            // Merge: orders 2 and 3 updated, 4 and 5 inserted.
            vec![
                "2",
                "shop.silver.orders_latest",
                "transform",
                "ok",
                "4",
                "1",
            ],
            // Append: only the rows past the high-water mark (4 and 5).
            vec!["2", "shop.silver.orders_log", "transform", "ok", "2", "1"],
            vec!["3", "shop.raw.orders", "job", "up_to_date", "", "1"],
            // A view is never stored: each run re-plans it.
            vec!["3", "shop.silver.big_orders", "transform", "ok", "", ""],
            vec![
                "3",
                "shop.silver.orders_latest",
                "transform",
                "up_to_date",
                "",
                "1",
            ],
            vec![
                "3",
                "shop.silver.orders_log",
                "transform",
                "up_to_date",
                "",
                "1",
            ],
        ];
        assert_eq!(history, expected);
        // Input versions are recorded with each row.
        let inputs = cells(
            &e,
            "SELECT input_versions FROM mesh.ops.runs \
             WHERE node = 'shop.silver.orders_log' ORDER BY run_id",
        )
        .await;
        assert_eq!(
            inputs,
            [
                ["{\"shop.raw.orders\":0}"],
                ["{\"shop.raw.orders\":1}"],
                ["{\"shop.raw.orders\":1}"]
            ]
        );
    });
}

fn orders_job(dir: &Path, name: &str, options: &str, destination: &str) -> JobFile {
    job_file(
        &dir.join(name),
        &format!(
            r#"[{{"execution": [{{"type": "IngestCSV", "file_location": "orders.csv",
                  "additional_attributes": [{{"key": "header", "value": "true"}}{options}]}}],
                  "destination": [{destination}]}}]"#
        ),
    )
}

const TO_TABLE: &str = r#"{"type": "DestinationDefaultCatalog", "table_name": "shop.raw.orders", "mode": "overwrite"}"#;

#[test]
fn bad_rows_fail_the_step_with_their_position_or_go_to_a_rejects_table() {
    runtime().block_on(async {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        std::fs::write(d.join("orders.csv"), "id,amount\n1,10\n2,20\n").unwrap();
        let typed = r#", {"key": "schema", "value": "id INT, amount DOUBLE"}"#;
        let (e, report) = run_job(d, orders_job(d, "ok.json", typed, TO_TABLE), &["shop.raw.orders"]).await;
        assert!(report.succeeded(), "{report:#?}");
        drop(e);

        // Line 4 has a third field; line 5 a value that is not a DOUBLE.
        std::fs::write(d.join("orders.csv"), "id,amount\n3,30\n4,40\n5,50,x\n6,sixty\n7,70\n").unwrap();
        let (e, report) = run_job(d, orders_job(d, "strict.json", typed, TO_TABLE), &["shop.raw.orders"]).await;
        let why = report.nodes[0].status.detail().unwrap_or_default().to_string();
        let csv = d.join("orders.csv");
        assert!(
            why.contains(&format!(
                "{}:4:3: bad row: expected 2 fields, found 3 (set the CSV option mode to PERMISSIVE, DROPMALFORMED or REJECT to load the other rows)",
                csv.display()
            )),
            "{why}"
        );
        assert!(why.contains("strict.json:"), "the job is named: {why}");
        assert!(!why.contains("External error"), "{why}");
        // Nothing was published: the table keeps its first version.
        assert_eq!(
            cells(&e, "SELECT id FROM shop.raw.orders ORDER BY id").await,
            [["1"], ["2"]]
        );
        drop(e);

        // REJECT: the good rows are published, the bad ones land in `orders_rejects`.
        let reject = format!(r#"{typed}, {{"key": "mode", "value": "REJECT"}}"#);
        let (e, report) = run_job(d, orders_job(d, "reject.json", &reject, TO_TABLE), &["shop.raw.orders"]).await;
        assert!(report.succeeded(), "{report:#?}");
        assert_eq!(
            cells(&e, "SELECT id, amount FROM shop.raw.orders ORDER BY id").await,
            [["3", "30.0"], ["4", "40.0"], ["7", "70.0"]]
        );
        assert_eq!(
            cells(&e, "SELECT line, \"column\", error, record FROM shop.raw.orders_rejects ORDER BY line").await,
            [
                ["4", "3", "expected 2 fields, found 3", "5,50,x"],
                ["5", "2", "column 2 (`amount`): `sixty` is not a valid DOUBLE", "6,sixty"],
            ]
        );
        drop(e);

        // PERMISSIVE keeps every row with nulls where values do not fit; DROPMALFORMED drops them.
        let permissive = format!(r#"{typed}, {{"key": "mode", "value": "permissive"}}"#);
        let (e, report) = run_job(d, orders_job(d, "p.json", &permissive, TO_TABLE), &["shop.raw.orders"]).await;
        assert!(report.succeeded(), "{report:#?}");
        assert_eq!(
            cells(&e, "SELECT id, amount FROM shop.raw.orders ORDER BY id").await,
            [["3", "30.0"], ["4", "40.0"], ["5", "50.0"], ["6", ""], ["7", "70.0"]]
        );
        drop(e);
        let drop_bad = format!(r#"{typed}, {{"key": "mode", "value": "DROPMALFORMED"}}"#);
        let (e, report) = run_job(d, orders_job(d, "dm.json", &drop_bad, TO_TABLE), &["shop.raw.orders"]).await;
        assert!(report.succeeded(), "{report:#?}");
        assert_eq!(cells(&e, "SELECT count(*) FROM shop.raw.orders").await, [["3"]]);
    });
}

#[test]
fn a_merge_key_repeated_in_the_new_rows_is_refused_with_samples() {
    runtime().block_on(async {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        let merge = r#"{"type": "DestinationDefaultCatalog", "table_name": "shop.raw.orders", "mode": "merge",
                        "additional_attributes": [{"key": "unique_key", "value": "id"}]}"#;
        let infer = r#", {"key": "inferSchema", "value": "true"}"#;
        std::fs::write(d.join("orders.csv"), "id,amount\n1,10\n2,20\n").unwrap();
        let (e, report) = run_job(d, orders_job(d, "m1.json", infer, merge), &["shop.raw.orders"]).await;
        assert!(report.succeeded(), "{report:#?}");
        drop(e);
        std::fs::write(d.join("orders.csv"), "id,amount\n2,21\n3,30\n3,31\n4,40\n4,41\n4,42\n").unwrap();
        let (e, report) = run_job(d, orders_job(d, "m2.json", infer, merge), &["shop.raw.orders"]).await;
        let why = report.nodes[0].status.detail().unwrap_or_default().to_string();
        assert!(
            why.contains(
                "merge key (id) is not unique in the new rows; nothing was written. Repeated keys: "
            ),
            "{why}"
        );
        assert!(why.contains("(id=3) ×2") && why.contains("(id=4) ×3"), "{why}");
        assert_eq!(
            cells(&e, "SELECT id, amount FROM shop.raw.orders ORDER BY id").await,
            [["1", "10"], ["2", "20"]]
        );
        drop(e);
        std::fs::write(d.join("orders.csv"), "id,amount\n2,21\n3,30\n").unwrap();
        let (e, report) = run_job(d, orders_job(d, "m3.json", infer, merge), &["shop.raw.orders"]).await;
        assert!(report.succeeded(), "{report:#?}");
        assert_eq!(report.nodes[0].rows, Some(2));
        assert_eq!(
            cells(&e, "SELECT id, amount FROM shop.raw.orders ORDER BY id").await,
            [["1", "10"], ["2", "21"], ["3", "30"]]
        );
    });
}

fn problems(text: &str) -> Vec<String> {
    let mut diags = Vec::new();
    parse(Path::new("job.json"), text, &mut diags);
    diags.sort();
    diags.iter().map(|d| d.to_string()).collect()
}

#[test]
fn job_file_problems_name_line_column_and_json_path() {
    assert_eq!(
        problems(
            "[{\"execution\": [{\"type\": \"IngestKafka\"}], \"destination\": [{\"type\": \"print\"}]}]"
        ),
        [
            "job.json:1:26: $[0].execution[0].type: the mu-pipelines execution step `IngestKafka` is not run by meshql; \
          supported: IngestCSV, CSVReadCommand, IngestJSON, IngestParquet, TransformSQL"
        ]
    );
    assert_eq!(
        problems(
            "[{\"execution\": [{\"type\": \"IngestCSV\",\n  \"file_locaton\": \"a.csv\"}],\n \"destination\": [{\"type\": \"prnt\"}]}]"
        ),
        [
            "job.json:1:17: $[0].execution[0]: missing `file_location`",
            "job.json:2:3: $[0].execution[0].file_locaton: unknown parameter `file_locaton` for IngestCSV; \
             expected one of: type, exec_type, file_location, delimiter, quotes, additional_attributes; did you mean `file_location`?",
            "job.json:3:27: $[0].destination[0].type: unknown destination `prnt`; supported: \
             DestinationDefaultCatalog, table, DestinationCSV, csv, DestinationParquet, print; did you mean `print`?",
        ]
    );
    assert_eq!(
        problems(
            "[{\"execution\": [{\"type\": \"IngestCSV\", \"file_location\": \"a.csv\",\n \"additional_attributes\": [{\"key\": \"headr\", \"value\": \"true\"}, {\"key\": \"mode\", \"value\": \"LENIENT\"}]}],\n \"destination\": [{\"type\": \"table\", \"table_name\": \"shop.orders\", \"mode\": \"merge\"}]}]"
        ),
        [
            "job.json:2:28: $[0].execution[0].additional_attributes[0]: unknown option `headr` for CSV reading; supported: \
             header, inferSchema, sep, delimiter, quote, escape, comment, nullValue, dateFormat, timestampFormat, encoding, \
             charset, mode, ignoreLeadingWhiteSpace, ignoreTrailingWhiteSpace, multiLine, schema; did you mean `header`?",
            "job.json:2:88: $[0].execution[0].additional_attributes[1].value: invalid mode `LENIENT`; expected FAILFAST (default), \
             PERMISSIVE, DROPMALFORMED or REJECT",
            "job.json:3:50: $[0].destination[0].table_name: invalid table name `shop.orders`; expected domain.layer.dataset \
             in lower-case letters, digits and `_`",
        ]
    );
    assert_eq!(
        problems(
            "[{\"execution\": [{\"type\": \"TransformSQL\", \"sql\": \"SELECT * FROM orders\"}], \"destination\": [{\"type\": \"print\"}]}]"
        ),
        [
            "job.json:1:64: $[0].execution[0]: table `orders` is neither the previous step's output (`input`) nor a mesh table; \
          name mesh tables in full as domain.layer.dataset"
        ]
    );
    assert_eq!(
        problems(
            "[{\"execution\": [\n  {\"type\": \"TransformSQL\", \"query\": \"SELEC 1\"}\n], \"destination\": []"
        ),
        ["job.json:3:20: invalid JSON: EOF while parsing an object"]
    );
    assert_eq!(
        problems("[{\"execution\": [],\n  \"destination\": [{\"type\": \"print\" \"mode\": 1}]}]"),
        ["job.json:2:36: invalid JSON: expected `,` or `}`"]
    );
}

#[test]
fn jobs_in_a_mesh_are_checked_with_the_mesh() {
    let dir = demo_mesh();
    std::fs::write(
        dir.path().join("catalog/sales/jobs/bad.json"),
        "[{\"execution\": [{\"type\": \"IngestCSV\", \"file_location\": \"data/stores.csv\"}],\n  \"destination\": [{\"type\": \"table\", \"table_name\": \"finance.raw.stores\", \"mode\": \"overwrite\"}]}]\n",
    )
    .unwrap();
    let (code, _, err) = meshql(dir.path(), &["check"]);
    assert_eq!(code, Some(2), "{err}");
    let file = dir.path().join("catalog/sales/jobs/bad.json");
    assert!(
        err.contains(&format!(
            "{}:2:19: `finance.raw.stores`: a job of domain `sales` writes into its own domain only",
            file.display()
        )),
        "{err}"
    );
}

#[test]
fn every_demo_job_runs_and_the_lineage_is_the_dag() {
    runtime().block_on(async {
        let dir = demo_mesh();
        let e = engine(dir.path());
        // Each job file on its own, as `meshql job run` would inside the mesh.
        let mut jobs = Vec::new();
        for domain in ["sales", "marketing", "finance"] {
            let folder = dir.path().join("catalog").join(domain);
            for entry in std::fs::read_dir(folder.join("jobs")).unwrap() {
                let path = entry.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap();
                jobs.push((folder.clone(), job_file(&path, &text)));
            }
        }
        assert_eq!(jobs.len(), 4);
        for (folder, file) in jobs {
            let report = JobRun::new(Arc::clone(&e), file, folder).await;
            assert!(report.succeeded(), "{report:#?}");
        }
        crate::common::build_all(&e).await;
        assert_eq!(
            cells(&e, "SELECT count(*) FROM sales.raw.transactions").await,
            [["6000"]]
        );
        let edges = cells(&e, "SELECT upstream, downstream, via FROM mesh.lineage.edges ORDER BY 1, 2").await;
        let expected: Vec<[&str; 3]> = vec![
            ["finance.raw.revenue_targets", "finance.silver.revenue_targets", "transform"],
            ["finance.silver.revenue_targets", "finance.gold.revenue_vs_target", "transform"],
            ["marketing.gold.campaign_performance", "marketing.gold.roas_by_region", "transform"],
            ["marketing.raw.ad_spend", "marketing.silver.ad_spend", "transform"],
            ["marketing.raw.campaigns", "marketing.silver.campaigns", "transform"],
            ["marketing.silver.ad_spend", "marketing.gold.campaign_performance", "transform"],
            ["marketing.silver.campaigns", "marketing.gold.campaign_performance", "transform"],
            ["sales.gold.daily_revenue", "finance.gold.revenue_vs_target", "transform"],
            ["sales.gold.daily_revenue", "marketing.gold.roas_by_region", "transform"],
            ["sales.raw.stores", "sales.silver.stores", "transform"],
            ["sales.raw.transactions", "sales.silver.clean_transactions", "transform"],
            ["sales.silver.clean_transactions", "sales.gold.customer_value", "transform"],
            ["sales.silver.clean_transactions", "sales.gold.daily_revenue", "transform"],
            ["sales.silver.stores", "sales.gold.daily_revenue", "transform"],
        ];
        assert_eq!(edges, expected);
        assert_eq!(
            cells(
                &e,
                "SELECT domain, layer, dataset, kind, materialization, rows FROM mesh.catalog.datasets \
                 WHERE layer = 'raw' ORDER BY 1, 3"
            )
            .await,
            [
                ["finance", "raw", "revenue_targets", "job", "table", "12"],
                ["marketing", "raw", "ad_spend", "job", "table", "335"],
                ["marketing", "raw", "campaigns", "job", "table", "12"],
                ["sales", "raw", "stores", "job", "table", "24"],
                ["sales", "raw", "transactions", "job", "table", "6000"],
            ]
        );
        assert_eq!(
            cells(
                &e,
                "SELECT column_name, data_type FROM mesh.catalog.columns \
                 WHERE dataset = 'stores' AND layer = 'raw' ORDER BY ordinal"
            )
            .await,
            [
                ["store_id", "Int32"],
                ["store_name", "Utf8View"],
                ["region", "Utf8View"],
                ["opened_on", "Date32"],
            ]
        );
    });
}
