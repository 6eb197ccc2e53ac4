//! Executing a [`RunPlan`] (or the job items of one file, [`JobRun`]), recording every node in
//! `mesh.ops.runs`.

use std::collections::BTreeMap;
use std::future::{Future, IntoFuture};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::FutureExt;
use tokio::task::JoinSet;

use super::dag::RunPlan;
use super::history;
use super::node::{self, Done, NodeResult, Work};
use super::notify::{self, Event};
use super::report::{NodeReport, NodeStatus, RunEvent, RunReport};
use crate::engine::Engine;
use crate::error::{Error, ErrorKind};
use crate::spec::job::JobFile;
use crate::spec::{DatasetKind, DatasetName};

/// Attempts of a node whose publish conflicts with another writer's commit.
const CONFLICT_ATTEMPTS: u32 = 4;

type Observer = Arc<dyn Fn(&RunEvent<'_>) + Send + Sync>;

fn new_run_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Options shared by [`Run`] and [`JobRun`].
#[derive(Clone)]
struct Options {
    parallelism: usize,
    observer: Option<Observer>,
    force: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            parallelism: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            observer: None,
            force: false,
        }
    }
}

impl Options {
    fn emit(&self, event: &RunEvent<'_>) {
        if let Some(o) = &self.observer {
            o(event);
        }
    }
}

/// One execution of a [`RunPlan`]; `.await` it.
///
/// ```no_run
/// # async fn demo(engine: std::sync::Arc<meshql::engine::Engine>) -> meshql::Result<()> {
/// use meshql::pipeline::{Run, RunPlan};
/// let plan = RunPlan::new(engine.mesh(), &["sales.silver+".parse()?])?;
/// let report = Run::new(engine, plan).with_parallelism(2).await;
/// assert!(report.succeeded());
/// # Ok(()) }
/// ```
pub struct Run {
    engine: Arc<Engine>,
    plan: RunPlan,
    options: Options,
}

impl Run {
    pub fn new(engine: Arc<Engine>, plan: RunPlan) -> Self {
        Self {
            engine,
            plan,
            options: Options::default(),
        }
    }

    /// At most `n` nodes at once (default: the number of cores).
    pub fn with_parallelism(mut self, n: usize) -> Self {
        self.options.parallelism = n.max(1);
        self
    }

    /// Called as nodes start and end.
    pub fn with_progress(mut self, f: impl Fn(&RunEvent<'_>) + Send + Sync + 'static) -> Self {
        self.options.observer = Some(Arc::new(f));
        self
    }

    /// Run nodes even when they are up to date.
    pub fn with_force(mut self, force: bool) -> Self {
        self.options.force = force;
        self
    }

    async fn execute(self) -> RunReport {
        let started = Instant::now();
        let Run {
            engine,
            plan,
            options,
        } = self;
        let run_id = new_run_id();
        // Rows staged by runs that were killed before they published are removed.
        for name in &plan.nodes {
            super::publish::sweep_staging(&engine, name);
        }
        let mut outcome: BTreeMap<DatasetName, bool> = BTreeMap::new();
        let mut pending: Vec<DatasetName> = plan.nodes.clone();
        let mut tasks: JoinSet<(DatasetName, NodeReport)> = JoinSet::new();
        let mut report = RunReport {
            run_id: run_id.clone(),
            ..Default::default()
        };

        loop {
            // Skip nodes whose inputs failed; start nodes whose inputs all succeeded.
            let mut finished: Vec<NodeReport> = Vec::new();
            let mut i = 0;
            while i < pending.len() {
                let name = &pending[i];
                let deps = &plan.upstream[name];
                if let Some(bad) = deps.iter().find(|d| outcome.get(*d) == Some(&false)) {
                    let r = NodeReport::unrun(
                        name.to_string(),
                        node_kind(&engine, name),
                        NodeStatus::Skipped(format!("upstream `{bad}` did not succeed")),
                    );
                    let name = pending.remove(i);
                    outcome.insert(name, false);
                    finished.push(r);
                    i = 0;
                    continue;
                }
                if tasks.len() < options.parallelism
                    && deps.iter().all(|d| outcome.get(d) == Some(&true))
                {
                    let name = pending.remove(i);
                    let engine = Arc::clone(&engine);
                    let options = options.clone();
                    let run_id = run_id.clone();
                    tasks.spawn(async move {
                        let r = run_mesh_node(&engine, &name, &run_id, &options).await;
                        (name, r)
                    });
                    continue;
                }
                i += 1;
            }
            for r in finished {
                options.emit(&RunEvent::Finished(&r));
                record(&engine, &mut report, r).await;
            }

            let Some(joined) = tasks.join_next().await else {
                break;
            };
            match joined {
                Ok((name, r)) => {
                    outcome.insert(name.clone(), r.status.is_success());
                    options.emit(&RunEvent::Finished(&r));
                    record(&engine, &mut report, r).await;
                }
                Err(join) => {
                    // Panics are caught inside the task; only a cancelled runtime lands here.
                    tracing::error!(error = %join, "pipeline task ended abnormally");
                }
            }
        }
        for name in pending {
            let r = NodeReport::unrun(
                name.to_string(),
                node_kind(&engine, &name),
                NodeStatus::Skipped("the run stopped before this node".into()),
            );
            options.emit(&RunEvent::Finished(&r));
            record(&engine, &mut report, r).await;
        }
        refresh(&engine, &mut report).await;
        report.duration = started.elapsed();
        notify::send(engine.mesh(), &Event::of_run(engine.mesh(), &report)).await;
        report
    }
}

impl IntoFuture for Run {
    type Output = RunReport;
    type IntoFuture = Pin<Box<dyn Future<Output = RunReport> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.execute())
    }
}

fn node_kind(engine: &Engine, name: &DatasetName) -> &'static str {
    engine
        .mesh()
        .dataset(name)
        .map_or("transform", |d| d.kind.label())
}

/// Appends one node's row to `mesh.ops.runs` and keeps it in the report.
async fn record(engine: &Engine, report: &mut RunReport, r: NodeReport) {
    if let Err(e) = history::record(engine, &report.run_id, std::slice::from_ref(&r)).await {
        tracing::warn!(error = %e, "cannot record the node in mesh.ops.runs");
        report.history_errors.push(e.to_string());
    }
    report.nodes.push(r);
}

/// After a run: the system catalog, then the run's OpenLineage events.
async fn refresh(engine: &Engine, report: &mut RunReport) {
    let columns = match history::refresh(engine).await {
        Ok(columns) => columns,
        Err(e) => {
            tracing::warn!(error = %e, "cannot refresh the mesh system catalog");
            report.history_errors.push(e.to_string());
            Vec::new()
        }
    };
    if let Err(e) = super::lineage::emit(engine, report, &columns).await {
        tracing::warn!(error = %e, "cannot emit OpenLineage events");
        report.history_errors.push(e.to_string());
    }
}

/// Runs one node of the mesh, catching panics.
async fn run_mesh_node(
    engine: &Engine,
    name: &DatasetName,
    run_id: &str,
    options: &Options,
) -> NodeReport {
    let label = name.to_string();
    let Some(dataset) = engine.mesh().dataset(name) else {
        return failed(label, "transform", engine.catalog().not_found(name));
    };
    let work = match &dataset.kind {
        DatasetKind::Transform(t) => Work::Transform(dataset, t),
        DatasetKind::Job(job) => {
            let base = engine
                .mesh()
                .domain(&name.domain)
                .map(|d| d.folder.clone())
                .unwrap_or_default();
            Work::Job(job, base)
        }
        DatasetKind::Source(_) => {
            return failed(
                label,
                "source",
                Error::user(format!("`{name}` is a source, not a transform or job")),
            );
        }
    };
    run_work(engine, &label, &work, run_id, options).await
}

fn failed(name: String, kind: &'static str, e: Error) -> NodeReport {
    NodeReport::unrun(name, kind, NodeStatus::failed(&e))
}

async fn run_work(
    engine: &Engine,
    label: &str,
    work: &Work<'_>,
    run_id: &str,
    options: &Options,
) -> NodeReport {
    let kind = work.kind();
    options.emit(&RunEvent::Started { name: label, kind });
    let started_at = Utc::now();
    let t0 = Instant::now();
    let print = |text: &str| options.emit(&RunEvent::Printed { name: label, text });
    let mut attempt = 0;
    let result = loop {
        attempt += 1;
        let result = AssertUnwindSafe(node::execute(engine, work, run_id, options.force, &print))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| NodeResult {
                outcome: Err(Error::internal(format!("node `{label}` panicked"))),
                rows: None,
                version: None,
                inputs: BTreeMap::new(),
                checks: Vec::new(),
            });
        // Another writer committed first: the node computes again from what is there now and
        // publishes again (a node's publish replaces or merges what it computed, so a second
        // attempt never duplicates rows).
        match &result.outcome {
            Err(e) if e.kind() == ErrorKind::Conflict && attempt < CONFLICT_ATTEMPTS => {
                tracing::info!(node = label, attempt, error = %e, "retrying after a commit conflict");
                let jitter = rand::random::<u64>() % 200;
                tokio::time::sleep(Duration::from_millis(100 * attempt as u64 + jitter)).await;
            }
            _ => break result,
        }
    };
    let status = match result.outcome {
        Ok(Done::Published) => NodeStatus::Succeeded,
        Ok(Done::UpToDate) => NodeStatus::UpToDate,
        Err(e) if e.kind() == ErrorKind::ContractViolation => NodeStatus::Blocked(e.to_string()),
        Err(e) => NodeStatus::failed(&e),
    };
    NodeReport {
        name: label.to_string(),
        kind,
        status,
        rows: result.rows,
        started_at,
        duration: t0.elapsed(),
        version: result.version,
        inputs: result.inputs,
        checks: result.checks,
    }
}

/// The job items of one file, run in order; `.await` it. A failed item stops the items after
/// it (they are reported as skipped).
pub struct JobRun {
    engine: Arc<Engine>,
    file: JobFile,
    base: PathBuf,
    options: Options,
}

impl JobRun {
    /// Relative file locations in the jobs resolve against `base` (the working directory, as
    /// for mu-pipelines).
    pub fn new(engine: Arc<Engine>, file: JobFile, base: impl Into<PathBuf>) -> Self {
        Self {
            engine,
            file,
            base: base.into(),
            options: Options::default(),
        }
    }

    /// Called as job items start and end, and with `print` output.
    pub fn with_progress(mut self, f: impl Fn(&RunEvent<'_>) + Send + Sync + 'static) -> Self {
        self.options.observer = Some(Arc::new(f));
        self
    }

    /// Run items even when they are up to date.
    pub fn with_force(mut self, force: bool) -> Self {
        self.options.force = force;
        self
    }

    async fn execute(self) -> RunReport {
        let started = Instant::now();
        let mut report = RunReport {
            run_id: new_run_id(),
            ..Default::default()
        };
        let mut stopped = false;
        for job in &self.file.jobs {
            let label = job
                .outputs()
                .next()
                .map(|n| n.to_string())
                .unwrap_or_else(|| job.label());
            let r = if stopped {
                NodeReport::unrun(
                    label,
                    "job",
                    NodeStatus::Skipped("an earlier job item failed".into()),
                )
            } else {
                let work = Work::Job(job, self.base.clone());
                run_work(&self.engine, &label, &work, &report.run_id, &self.options).await
            };
            stopped |= !r.status.is_success();
            self.options.emit(&RunEvent::Finished(&r));
            if let Err(e) =
                history::record(&self.engine, &report.run_id, std::slice::from_ref(&r)).await
            {
                tracing::warn!(error = %e, "cannot record the job in mesh.ops.runs");
                report.history_errors.push(e.to_string());
            }
            report.nodes.push(r);
        }
        refresh(&self.engine, &mut report).await;
        report.duration = started.elapsed();
        notify::send(
            self.engine.mesh(),
            &Event::of_run(self.engine.mesh(), &report),
        )
        .await;
        report
    }
}

impl IntoFuture for JobRun {
    type Output = RunReport;
    type IntoFuture = Pin<Box<dyn Future<Output = RunReport> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.execute())
    }
}
