//! Executing one node: a transform or a job item. Up to date means no work: each publish records
//! a fingerprint of the node's definition and of the versions of everything it read, and a node
//! whose fingerprint is unchanged is skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::incremental;
use super::job::{self, JobOutcome};
use super::publish::publish;
use crate::engine::{Engine, SearchPath};
use crate::error::Result;
use crate::quality::Check;
use crate::spec::job::{Job, StepKind};
use crate::spec::{Dataset, DatasetKind, DatasetName, Materialization, Transform};
use crate::storage::{CommitMetadata, WriteMode};

/// What a node is.
pub(crate) enum Work<'a> {
    Transform(&'a Dataset, &'a Transform),
    /// A job item; relative file locations resolve against the path.
    Job(&'a Job, PathBuf),
}

impl Work<'_> {
    pub fn kind(&self) -> &'static str {
        match self {
            Work::Transform(..) => "transform",
            Work::Job(..) => "job",
        }
    }

    /// Mesh tables the node writes.
    fn outputs(&self) -> Vec<DatasetName> {
        match self {
            Work::Transform(ds, _) => vec![ds.name.clone()],
            Work::Job(job, _) => job.outputs().cloned().collect(),
        }
    }
}

/// How a node ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Done {
    Published,
    UpToDate,
}

/// The result of one node.
pub(crate) struct NodeResult {
    pub outcome: Result<Done>,
    pub rows: Option<u64>,
    pub version: Option<u64>,
    /// What the node read: dataset → version, file → size and modification time.
    pub inputs: BTreeMap<String, Value>,
    /// Contract rules evaluated for the node's products.
    pub checks: Vec<Check>,
}

/// Runs `work`, skipping it when its fingerprint is the one its tables recorded last (unless
/// `force`).
pub(crate) async fn execute(
    engine: &Engine,
    work: &Work<'_>,
    run_id: &str,
    force: bool,
    print: &(dyn Fn(&str) + Send + Sync),
) -> NodeResult {
    let inputs = match inputs(engine, work).await {
        Ok(i) => i,
        Err(e) => {
            return NodeResult {
                outcome: Err(e),
                rows: None,
                version: None,
                inputs: BTreeMap::new(),
                checks: Vec::new(),
            };
        }
    };
    let fingerprint = fingerprint(engine, work, &inputs);
    let mut result = NodeResult {
        outcome: Ok(Done::Published),
        rows: None,
        version: None,
        inputs,
        checks: Vec::new(),
    };
    if !force {
        match up_to_date(engine, work, &fingerprint).await {
            Ok(Some(version)) => {
                result.outcome = Ok(Done::UpToDate);
                result.version = version;
                return result;
            }
            Ok(None) => {}
            Err(e) => {
                result.outcome = Err(e);
                return result;
            }
        }
    }
    let metadata: CommitMetadata = [
        ("run_id".to_string(), json!(run_id)),
        ("fingerprint".to_string(), json!(fingerprint)),
        ("inputs".to_string(), json!(result.inputs)),
    ]
    .into_iter()
    .collect();
    match work {
        Work::Transform(ds, t) => {
            match run_transform(engine, ds, t, metadata, &mut result.checks).await {
                Ok((rows, version)) => {
                    result.rows = rows;
                    result.version = version;
                }
                Err(e) => result.outcome = Err(e),
            }
        }
        Work::Job(job, base) => {
            match job::run_job(engine, job, base, &metadata, print, &mut result.checks).await {
                Ok(JobOutcome { tables, files, .. }) => {
                    let table_rows = tables.iter().filter_map(|t| t.published.map(|p| p.rows));
                    let file_rows = files.iter().map(|(_, r)| *r);
                    result.rows = Some(table_rows.chain(file_rows).max().unwrap_or(0));
                    result.version = tables.first().and_then(|t| t.published.map(|p| p.version));
                }
                Err(e) => result.outcome = Err(e),
            }
        }
    }
    result
}

/// Computes a transform and publishes it as its materialisation says.
async fn run_transform(
    engine: &Engine,
    ds: &Dataset,
    t: &Transform,
    metadata: CommitMetadata,
    checks: &mut Vec<Check>,
) -> Result<(Option<u64>, Option<u64>)> {
    let name = &ds.name;
    let state = engine.session_in(&SearchPath {
        domain: name.domain.clone(),
        layer: name.layer.clone(),
    });
    let plan = engine.plan(&t.sql, &state).await?;
    if t.options.materialized == Materialization::View {
        // Nothing is stored: planning proves the view still reads what exists.
        return Ok((None, None));
    }
    let catalog = engine.catalog();
    let exists = catalog.snapshot(name).await?.is_some();
    let (mode, plan) = match t.options.materialized {
        Materialization::Incremental if exists => {
            let plan = match &t.options.watermark {
                Some(w) => incremental::past_watermark(engine, name, plan, w).await?,
                None => plan,
            };
            if t.options.unique_key.is_empty() {
                (WriteMode::Append, plan)
            } else {
                incremental::check_unique(engine, &plan, &t.options.unique_key).await?;
                (
                    WriteMode::Merge {
                        keys: t.options.unique_key.clone(),
                    },
                    plan,
                )
            }
        }
        _ => (WriteMode::Replace, plan),
    };
    let published = publish(engine, name, plan, &mode, metadata, checks).await?;
    Ok((Some(published.rows), Some(published.version)))
}

/// The version every input is at now.
async fn inputs(engine: &Engine, work: &Work<'_>) -> Result<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    let deps: Vec<DatasetName> = match work {
        Work::Transform(_, t) => t.dependencies.iter().map(|d| d.name.clone()).collect(),
        Work::Job(job, _) => job.dependencies().map(|d| d.name.clone()).collect(),
    };
    let catalog = engine.catalog();
    for name in deps {
        let value = if catalog.is_view(&name) {
            json!("view")
        } else {
            match catalog.snapshot(&name).await? {
                Some(s) => match s.version {
                    Some(v) => json!(v),
                    None => source_state(engine, &name),
                },
                None => Value::Null,
            }
        };
        out.insert(name.to_string(), value);
    }
    if let Work::Job(job, base) = work {
        for step in &job.steps {
            let location = match &step.kind {
                StepKind::Csv(read) => &read.location,
                StepKind::Json { location, .. } | StepKind::Parquet { location } => location,
                StepKind::Sql(_) => continue,
            };
            let path = job::resolve(base, location);
            for (file, state) in file_states(&path) {
                out.insert(format!("file:{}", file.display()), json!(state));
            }
        }
    }
    Ok(out)
}

/// A read-only source's files, as their sizes and modification times.
fn source_state(engine: &Engine, name: &DatasetName) -> Value {
    let Some(Dataset {
        kind: DatasetKind::Source(source),
        ..
    }) = engine.mesh().dataset(name)
    else {
        return Value::Null;
    };
    let path = source
        .location
        .strip_prefix("file://")
        .unwrap_or(&source.location);
    let states: BTreeMap<String, String> = file_states(Path::new(path))
        .into_iter()
        .map(|(f, s)| (f.display().to_string(), s))
        .collect();
    json!(states)
}

/// `size@modified-millis` of a file, or of every file in a folder.
fn file_states(path: &Path) -> Vec<(PathBuf, String)> {
    let mut files = vec![path.to_path_buf()];
    if path.is_dir() {
        files = std::fs::read_dir(path)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
    }
    files
        .into_iter()
        .filter_map(|f| {
            let meta = std::fs::metadata(&f).ok()?;
            let modified = meta
                .modified()
                .ok()?
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_millis();
            Some((f, format!("{}@{modified}", meta.len())))
        })
        .collect()
}

fn fingerprint(engine: &Engine, work: &Work<'_>, inputs: &BTreeMap<String, Value>) -> String {
    let mut h = Sha256::new();
    match work {
        Work::Transform(_, t) => h.update(t.sql.as_bytes()),
        Work::Job(job, _) => h.update(job.fingerprint.as_bytes()),
    }
    // A changed contract is audited again.
    for name in work.outputs() {
        if let Some(c) = engine
            .mesh()
            .dataset(&name)
            .and_then(|d| d.contract.as_ref())
        {
            h.update(c.fingerprint.as_bytes());
        }
    }
    h.update(b"\n");
    h.update(json!(inputs).to_string().as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// `Some(version of the first output)` when every table the node writes recorded `fingerprint`
/// in its latest commit.
async fn up_to_date(
    engine: &Engine,
    work: &Work<'_>,
    fingerprint: &str,
) -> Result<Option<Option<u64>>> {
    if let Work::Transform(_, t) = work
        && t.options.materialized == Materialization::View
    {
        return Ok(None);
    }
    let outputs = work.outputs();
    if outputs.is_empty() {
        return Ok(None);
    }
    let catalog = engine.catalog();
    let mut first_version = None;
    for (i, name) in outputs.iter().enumerate() {
        let Some(store) = catalog.store(name) else {
            return Ok(None);
        };
        let recorded = store.last_commit_metadata().await?;
        let same = recorded
            .as_ref()
            .and_then(|m| m.get("fingerprint"))
            .and_then(Value::as_str)
            == Some(fingerprint);
        if !same {
            return Ok(None);
        }
        if i == 0 {
            first_version = catalog.snapshot(name).await?.and_then(|s| s.version);
        }
    }
    Ok(Some(first_version))
}
