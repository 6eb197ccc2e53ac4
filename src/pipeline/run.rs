//! Executing a [`RunPlan`].

use std::collections::BTreeMap;
use std::future::{Future, IntoFuture};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::task::JoinSet;

use super::dag::RunPlan;
use crate::engine::{Engine, SearchPath};
use crate::error::{Error, Result};
use crate::spec::{DatasetKind, DatasetName};
use crate::storage::{Published, WriteMode};

/// How a node ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeStatus {
    /// Published a new version.
    Succeeded,
    /// Failed; the table keeps its previous version.
    Failed(String),
    /// Not run because a node it reads failed or was skipped.
    Skipped(String),
}

impl NodeStatus {
    pub fn label(&self) -> &'static str {
        match self {
            NodeStatus::Succeeded => "ok",
            NodeStatus::Failed(_) => "failed",
            NodeStatus::Skipped(_) => "skipped",
        }
    }
}

/// What happened to one node.
#[derive(Debug, Clone)]
pub struct NodeReport {
    pub name: DatasetName,
    pub status: NodeStatus,
    pub rows: Option<u64>,
    pub duration: Duration,
    /// Version published by this run.
    pub version: Option<u64>,
}

/// What happened to every node of a run, in completion order.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub nodes: Vec<NodeReport>,
    pub duration: Duration,
}

impl RunReport {
    pub fn succeeded(&self) -> bool {
        self.nodes.iter().all(|n| n.status == NodeStatus::Succeeded)
    }

    pub fn count(&self, label: &str) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.status.label() == label)
            .count()
    }

    pub fn node(&self, name: &DatasetName) -> Option<&NodeReport> {
        self.nodes.iter().find(|n| n.name == *name)
    }
}

type Progress = Arc<dyn Fn(&NodeReport) + Send + Sync>;

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
    parallelism: usize,
    progress: Option<Progress>,
}

impl Run {
    pub fn new(engine: Arc<Engine>, plan: RunPlan) -> Self {
        let parallelism = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Self {
            engine,
            plan,
            parallelism,
            progress: None,
        }
    }

    /// At most `n` nodes at once (default: the number of cores).
    pub fn with_parallelism(mut self, n: usize) -> Self {
        self.parallelism = n.max(1);
        self
    }

    /// Called as each node ends.
    pub fn with_progress(mut self, f: impl Fn(&NodeReport) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    async fn execute(self) -> RunReport {
        let started = Instant::now();
        let Run {
            engine,
            plan,
            parallelism,
            progress,
        } = self;
        let mut outcome: BTreeMap<DatasetName, bool> = BTreeMap::new();
        let mut pending: Vec<DatasetName> = plan.nodes.clone();
        let mut tasks: JoinSet<(DatasetName, Result<Published>, Duration)> = JoinSet::new();
        let mut report = RunReport::default();
        let mut record = |r: NodeReport, outcome: &mut BTreeMap<DatasetName, bool>| {
            outcome.insert(r.name.clone(), r.status == NodeStatus::Succeeded);
            if let Some(p) = &progress {
                p(&r);
            }
            report.nodes.push(r);
        };

        loop {
            // Skip nodes whose inputs failed; start nodes whose inputs all succeeded.
            let mut i = 0;
            while i < pending.len() {
                let name = &pending[i];
                let deps = &plan.upstream[name];
                if let Some(bad) = deps.iter().find(|d| outcome.get(*d) == Some(&false)) {
                    let r = NodeReport {
                        name: name.clone(),
                        status: NodeStatus::Skipped(format!("upstream `{bad}` did not succeed")),
                        rows: None,
                        duration: Duration::ZERO,
                        version: None,
                    };
                    pending.remove(i);
                    record(r, &mut outcome);
                    i = 0;
                    continue;
                }
                if tasks.len() < parallelism && deps.iter().all(|d| outcome.get(d) == Some(&true)) {
                    let name = pending.remove(i);
                    let engine = Arc::clone(&engine);
                    tasks.spawn(async move {
                        let t0 = Instant::now();
                        let result = AssertUnwindSafe(run_node(&engine, &name))
                            .catch_unwind()
                            .await
                            .unwrap_or_else(|_| {
                                Err(Error::internal(format!("node `{name}` panicked")))
                            });
                        (name, result, t0.elapsed())
                    });
                    continue;
                }
                i += 1;
            }

            let Some(joined) = tasks.join_next().await else {
                break;
            };
            let r = match joined {
                Ok((name, Ok(published), duration)) => NodeReport {
                    name,
                    status: NodeStatus::Succeeded,
                    rows: Some(published.rows),
                    duration,
                    version: Some(published.version),
                },
                Ok((name, Err(e), duration)) => NodeReport {
                    name,
                    status: NodeStatus::Failed(e.to_string()),
                    rows: None,
                    duration,
                    version: None,
                },
                Err(join) => {
                    // Panics are caught inside the task; only a cancelled runtime lands here.
                    tracing::error!(error = %join, "pipeline task ended abnormally");
                    continue;
                }
            };
            record(r, &mut outcome);
        }
        for name in pending {
            let r = NodeReport {
                name,
                status: NodeStatus::Skipped("the run stopped before this node".into()),
                rows: None,
                duration: Duration::ZERO,
                version: None,
            };
            record(r, &mut outcome);
        }
        report.duration = started.elapsed();
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

/// Computes one transform and publishes it in one commit.
async fn run_node(engine: &Engine, name: &DatasetName) -> Result<Published> {
    let dataset = engine
        .mesh()
        .dataset(name)
        .ok_or_else(|| engine.catalog().not_found(name))?;
    let DatasetKind::Transform(transform) = &dataset.kind else {
        return Err(Error::user(format!(
            "`{name}` is a source, not a transform"
        )));
    };
    let store = engine
        .catalog()
        .store(name)
        .ok_or_else(|| engine.catalog().not_found(name))?;
    let state = engine.session_in(&SearchPath {
        domain: name.domain.clone(),
        layer: name.layer.clone(),
    });
    let plan = engine.plan(&transform.sql, &state).await?;
    let published = store.write(plan, &state, WriteMode::Replace).await;
    // Whatever happened, the next reader must look at the table afresh.
    engine.catalog().invalidate(name).await;
    published
}
