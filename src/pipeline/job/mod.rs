//! Running one mu-pipelines job item: its execution steps in order, then every destination with
//! the last step's output.
//!
//! A `TransformSQL` step reads the previous step's output under its `alias` (default `input`)
//! and any mesh table by its full name. Mesh tables are written as one atomic commit each; file
//! destinations appear whole or not at all (written aside, then renamed into place).

mod csv;
mod files;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::{MemTable, TableProvider};
use datafusion::datasource::ViewTable;
use datafusion::datasource::file_format::options::JsonReadOptions;
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::TryStreamExt;

pub use csv::{CsvSource, Reject};

use super::incremental;
use super::publish::publish;
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::quality::Check;
use crate::spec::DatasetName;
use crate::spec::job::{BadRows, DestinationKind, Job, SaveMode, StepKind};
use crate::storage::{CommitMetadata, Published, WriteMode};

/// What a job item did to one mesh table.
#[derive(Debug, Clone)]
pub struct TableOutput {
    pub name: DatasetName,
    /// `None`: left as it was (`mode: ignore` on an existing table).
    pub published: Option<Published>,
}

/// What a job item did.
#[derive(Debug, Clone, Default)]
pub struct JobOutcome {
    pub tables: Vec<TableOutput>,
    /// Rows written to each file destination, by location.
    pub files: Vec<(PathBuf, u64)>,
    /// Rows sent to `<dataset>_rejects`.
    pub rejected: u64,
}

/// Runs `job`; relative file locations resolve against `base`. `metadata` is recorded with every
/// table commit; `print` receives the text of `print` destinations.
pub async fn run_job(
    engine: &Engine,
    job: &Job,
    base: &Path,
    metadata: &CommitMetadata,
    print: &(dyn Fn(&str) + Send + Sync),
    checks: &mut Vec<Check>,
) -> Result<JobOutcome> {
    let mut previous: Option<Arc<dyn TableProvider>> = None;
    let mut rejecting: Vec<Arc<CsvSource>> = Vec::new();
    for step in &job.steps {
        let at = |e: Error| {
            Error::new(
                e.kind(),
                format!(
                    "{}:{}:{}: {}: {e}",
                    job.file.display(),
                    step.at.line,
                    step.at.column,
                    step.type_name
                ),
            )
        };
        let provider = execute_step(engine, &step.kind, base, previous.take(), &mut rejecting)
            .await
            .map_err(at)?;
        previous = Some(provider);
    }
    let output = previous.ok_or_else(|| Error::user(format!("{}: no step", job.label())))?;
    let plan = LogicalPlanBuilder::scan("output", provider_as_source(output), None)?.build()?;

    let mut outcome = JobOutcome::default();
    let tables: Vec<&DatasetName> = job.outputs().collect();
    if !rejecting.is_empty() && tables.is_empty() {
        return Err(Error::user(format!(
            "{}: CSV mode REJECT writes bad rows to `<dataset>_rejects`, so the job needs a table destination",
            job.label()
        )));
    }
    for dest in &job.destinations {
        let at = |e: Error| {
            Error::new(
                e.kind(),
                format!(
                    "{}:{}:{}: {}: {e}",
                    job.file.display(),
                    dest.at.line,
                    dest.at.column,
                    dest.type_name
                ),
            )
        };
        match &dest.kind {
            DestinationKind::Table { name, .. } => {
                let published = write_table(engine, &dest.kind, plan.clone(), metadata, checks)
                    .await
                    .map_err(at)?;
                outcome.tables.push(TableOutput {
                    name: name.clone(),
                    published,
                });
            }
            DestinationKind::Csv {
                location,
                mode,
                delimiter,
                quote,
                escape,
                header,
                null_value,
            } => {
                let path = resolve(base, location);
                let format = files::CsvFormat {
                    delimiter: *delimiter,
                    quote: *quote,
                    escape: *escape,
                    header: *header,
                    null_value: null_value.clone(),
                };
                let rows = files::write_csv(engine, plan.clone(), &path, *mode, &format)
                    .await
                    .map_err(at)?;
                outcome.files.push((path, rows));
            }
            DestinationKind::Parquet {
                location,
                mode,
                partition_columns,
                compression,
            } => {
                let path = resolve(base, location);
                let rows = files::write_parquet(
                    engine,
                    plan.clone(),
                    &path,
                    *mode,
                    partition_columns,
                    compression,
                )
                .await
                .map_err(at)?;
                outcome.files.push((path, rows));
            }
            DestinationKind::Print => {
                let text = show(engine, plan.clone()).await.map_err(at)?;
                print(&text);
            }
        }
    }
    if let Some(first) = tables.first() {
        outcome.rejected = write_rejects(engine, job, first, &rejecting, metadata).await?;
    }
    Ok(outcome)
}

/// `location` as a path: absolute, `file://`, or relative to `base`.
pub fn resolve(base: &Path, location: &str) -> PathBuf {
    let location = location.strip_prefix("file://").unwrap_or(location);
    let p = Path::new(location);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

async fn execute_step(
    engine: &Engine,
    step: &StepKind,
    base: &Path,
    previous: Option<Arc<dyn TableProvider>>,
    rejecting: &mut Vec<Arc<CsvSource>>,
) -> Result<Arc<dyn TableProvider>> {
    let missing = |p: &Path| Error::not_found(format!("file or folder not found: {}", p.display()));
    Ok(match step {
        StepKind::Csv(read) => {
            let path = resolve(base, &read.location);
            if !path.exists() {
                return Err(missing(&path));
            }
            let options = read.options.clone();
            let reject = options.bad_rows == BadRows::Reject;
            let source = tokio::task::spawn_blocking(move || CsvSource::open(&path, options))
                .await
                .map_err(|e| Error::internal(format!("the CSV reader stopped: {e}")))??;
            let source = Arc::new(source);
            if reject {
                rejecting.push(Arc::clone(&source));
            }
            Arc::new(StreamingTable::try_new(
                source.schema(),
                source.partitions(),
            )?)
        }
        StepKind::Json {
            location,
            multi_line,
        } => {
            let path = resolve(base, location);
            if !path.exists() {
                return Err(missing(&path));
            }
            if *multi_line {
                json_documents(&path).await?
            } else {
                let ctx = SessionContext::new_with_state(engine.session());
                let options = JsonReadOptions::default().file_extension("");
                ctx.read_json(path.display().to_string(), options)
                    .await?
                    .into_view()
            }
        }
        StepKind::Parquet { location } => {
            let path = resolve(base, location);
            if !path.exists() {
                return Err(missing(&path));
            }
            let ctx = SessionContext::new_with_state(engine.session());
            let options = ParquetReadOptions::default().file_extension("");
            ctx.read_parquet(path.display().to_string(), options)
                .await?
                .into_view()
        }
        StepKind::Sql(sql) => {
            let locals = previous
                .map(|p| vec![(sql.alias.clone(), p)])
                .unwrap_or_default();
            let state = engine.session_with_locals(locals)?;
            let plan = engine
                .plan(&sql.sql, &state)
                .await
                .map_err(|e| match &sql.sql_file {
                    Some(f) => Error::new(e.kind(), format!("{}: {e}", f.display())),
                    None => e,
                })?;
            Arc::new(ViewTable::new(plan, Some(sql.sql.clone())))
        }
    })
}

/// `multiLine` JSON: each file holds one JSON document (an object) or an array of them.
async fn json_documents(path: &Path) -> Result<Arc<dyn TableProvider>> {
    let mut paths = vec![path.to_path_buf()];
    if path.is_dir() {
        paths = std::fs::read_dir(path)
            .map_err(|e| Error::user(format!("cannot read {}: {e}", path.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        paths.sort();
    }
    let mut values = Vec::new();
    for p in &paths {
        let text = std::fs::read_to_string(p)
            .map_err(|e| Error::user(format!("cannot read {}: {e}", p.display())))?;
        let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            Error::user(format!(
                "{}:{}:{}: invalid JSON: {e}",
                p.display(),
                e.line(),
                e.column()
            ))
        })?;
        match doc {
            serde_json::Value::Array(items) => values.extend(items),
            other => values.push(other),
        }
    }
    let schema =
        datafusion::arrow::json::reader::infer_json_schema_from_iterator(values.iter().map(Ok))?;
    let schema = Arc::new(schema);
    let mut decoder =
        datafusion::arrow::json::ReaderBuilder::new(Arc::clone(&schema)).build_decoder()?;
    decoder.serialize(&values)?;
    let batches: Vec<RecordBatch> = decoder.flush()?.into_iter().collect();
    Ok(Arc::new(MemTable::try_new(schema, vec![batches])?))
}

/// Writes `plan` to the table of a `DestinationDefaultCatalog` destination; `None` when the
/// destination left an existing table as it was (`mode: ignore`).
async fn write_table(
    engine: &Engine,
    destination: &DestinationKind,
    plan: LogicalPlan,
    metadata: &CommitMetadata,
    checks: &mut Vec<Check>,
) -> Result<Option<Published>> {
    let DestinationKind::Table {
        name,
        mode,
        unique_key,
        watermark,
    } = destination
    else {
        return Err(Error::internal("not a table destination"));
    };
    let (mode, watermark) = (*mode, watermark.as_deref());
    let mesh = engine.mesh();
    if !mesh
        .domain(&name.domain)
        .is_some_and(|d| d.layers.contains(&name.layer))
    {
        let domains: Vec<&str> = mesh.domains.iter().map(|d| d.name.as_str()).collect();
        return Err(Error::user(format!(
            "the job writes `{name}`, but the mesh `{}` declares no layer `{}.{}` (domains: {}); \
             declare it in the mesh, or run the job outside a mesh folder",
            mesh.name,
            name.domain,
            name.layer,
            domains.join(", ")
        )));
    }
    let catalog = engine.catalog();
    catalog.store_or_create(name, engine.mesh().format_in(name))?;
    let exists = catalog.snapshot(name).await?.is_some();
    let (write_mode, plan) = match mode {
        SaveMode::Overwrite => (WriteMode::Replace, plan),
        SaveMode::Append if exists => match watermark {
            Some(column) => (
                WriteMode::Append,
                incremental::past_watermark(engine, name, plan, column).await?,
            ),
            None => (WriteMode::Append, plan),
        },
        SaveMode::Append => (WriteMode::Replace, plan),
        SaveMode::Ignore if exists => return Ok(None),
        SaveMode::Ignore => (WriteMode::Replace, plan),
        SaveMode::ErrorIfExists if exists => {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "table `{name}` already exists and the mode is errorifexists; use overwrite, append, ignore or merge"
                ),
            ));
        }
        SaveMode::ErrorIfExists => (WriteMode::Replace, plan),
        SaveMode::Merge => {
            incremental::check_unique(engine, &plan, unique_key).await?;
            (
                WriteMode::Merge {
                    keys: unique_key.to_vec(),
                },
                plan,
            )
        }
    };
    let published = publish(engine, name, plan, &write_mode, metadata.clone(), checks).await?;
    Ok(Some(published))
}

/// Writes the rows REJECT mode left out to `<first table>_rejects`, replacing the previous
/// run's. Returns how many.
async fn write_rejects(
    engine: &Engine,
    job: &Job,
    table: &DatasetName,
    sources: &[Arc<CsvSource>],
    metadata: &CommitMetadata,
) -> Result<u64> {
    if sources.is_empty() {
        return Ok(0);
    }
    let mut rows: Vec<Reject> = Vec::new();
    for s in sources {
        if let Ok(r) = s.rejects().lock() {
            rows.extend(r.values().cloned());
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("file", DataType::Utf8, false),
        Field::new("line", DataType::Int64, false),
        Field::new("column", DataType::Int32, true),
        Field::new("error", DataType::Utf8, false),
        Field::new("record", DataType::Utf8, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.file))),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.line as i64),
        )),
        Arc::new(Int32Array::from_iter(
            rows.iter().map(|r| r.column.map(|c| c as i32)),
        )),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.error))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| &r.record),
        )),
    ];
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    let provider = MemTable::try_new(schema, vec![vec![batch]])?;
    let plan = LogicalPlanBuilder::scan("rejects", provider_as_source(Arc::new(provider)), None)?
        .build()?;
    let name = DatasetName::new(
        &table.domain,
        &table.layer,
        format!("{}_rejects", table.dataset),
    );
    let state = engine.session();
    let published = engine
        .catalog()
        .publish(&name, plan, &state, &WriteMode::Replace, metadata.clone())
        .await;
    published.map_err(|e| {
        Error::new(
            e.kind(),
            format!("{}: cannot write `{name}`: {e}", job.label()),
        )
    })?;
    Ok(rows.len() as u64)
}

/// Spark's `show()`: the first 20 rows as a table.
async fn show(engine: &Engine, plan: LogicalPlan) -> Result<String> {
    const ROWS: usize = 20;
    let plan = LogicalPlanBuilder::from(plan)
        .limit(0, Some(ROWS + 1))?
        .build()?;
    let state = engine.session();
    let (_, stream) = engine.execute_plan(plan, &state).await?;
    let batches: Vec<RecordBatch> = stream.try_collect().await?;
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut shown = Vec::new();
    let mut left = ROWS;
    for b in &batches {
        let n = left.min(b.num_rows());
        shown.push(b.slice(0, n));
        left -= n;
    }
    let mut text = datafusion::arrow::util::pretty::pretty_format_batches(&shown)?.to_string();
    if total > ROWS {
        text.push_str(&format!("\nonly showing top {ROWS} rows"));
    }
    Ok(text)
}
