//! Where planning runs, and how long it may take.
//!
//! DataFusion's planner and optimiser recurse deeply and, on hostile SQL, can run for minutes.
//! Planning therefore runs on a fixed pool of threads with large stacks ([`PlannerPool`]), never
//! on an async worker and never on a thread created per query (a burst of queries would reserve
//! gigabytes of stacks). Each planning carries a [`Budget`] — a deadline and a cancellation flag
//! — that every analyzer, optimizer and physical-optimizer rule checks before it runs
//! ([`budgeted_rules`]): a planning past its deadline, or whose client went away, stops at the
//! next rule instead of keeping a core busy. A panic inside planning costs that query only.

use std::cell::RefCell;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result as DfResult;
use datafusion::execution::SessionState;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::optimizer::analyzer::AnalyzerRule;
use datafusion::optimizer::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use tokio::sync::oneshot;

use crate::error::{Error, Result};

/// How long one planning may take and whether its requester still waits for it.
#[derive(Debug)]
pub struct Budget {
    deadline: Option<Instant>,
    /// What the deadline came from, for the message (`server.planning_timeout_secs`).
    limit: Option<(Duration, &'static str)>,
    cancelled: AtomicBool,
}

impl Budget {
    /// A budget ending `limit` from now (`None`: no deadline); `setting` names the limit.
    pub fn new(limit: Option<Duration>, setting: &'static str) -> Arc<Self> {
        Arc::new(Self {
            deadline: limit.map(|l| Instant::now() + l),
            limit: limit.map(|l| (l, setting)),
            cancelled: AtomicBool::new(false),
        })
    }

    /// A budget ending at `deadline` at the latest, and within `limit` of now.
    pub fn until(
        deadline: Option<Instant>,
        limit: Option<Duration>,
        setting: &'static str,
    ) -> Arc<Self> {
        let from_limit = limit.map(|l| Instant::now() + l);
        let at = match (deadline, from_limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Arc::new(Self {
            deadline: at,
            limit: at.map(|at| {
                (
                    at.saturating_duration_since(Instant::now()),
                    if Some(at) == from_limit {
                        setting
                    } else {
                        "server.query_timeout_secs"
                    },
                )
            }),
            cancelled: AtomicBool::new(false),
        })
    }

    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// An error once the budget is spent or cancelled.
    pub fn check(&self) -> Result<()> {
        if self.cancelled.load(Ordering::Relaxed) {
            return Err(Error::cancelled(
                "planning stopped: the request was cancelled or its client went away",
            ));
        }
        if let Some(at) = self.deadline
            && Instant::now() >= at
        {
            let (limit, setting) = self.limit.unwrap_or((Duration::ZERO, "a deadline"));
            return Err(Error::deadline(format!(
                "planning the query took longer than {} s ({setting}); simplify the query",
                limit.as_secs_f64().ceil() as u64
            )));
        }
        Ok(())
    }
}

thread_local! {
    /// The budget of the planning running on this thread, if it is a planner thread.
    static CURRENT: RefCell<Option<Arc<Budget>>> = const { RefCell::new(None) };
}

/// Checks the budget of the planning running on this thread (nothing to check elsewhere).
pub fn check_budget() -> DfResult<()> {
    CURRENT.with(|c| match c.borrow().as_ref() {
        Some(budget) => budget.check().map_err(Error::into_datafusion),
        None => Ok(()),
    })
}

fn on_planner_thread() -> bool {
    CURRENT.with(|c| c.borrow().is_some())
}

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed set of planner threads and a bounded queue in front of them.
pub struct PlannerPool {
    queue: SyncSender<Job>,
    threads: usize,
    waiting: usize,
    /// Bytes the process may hold when a planning starts (see [`super::allocator`]).
    memory_budget: Option<usize>,
}

impl fmt::Debug for PlannerPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlannerPool")
            .field("threads", &self.threads)
            .field("waiting", &self.waiting)
            .finish()
    }
}

impl PlannerPool {
    /// Starts `threads` planner threads with `stack_bytes` of stack each, in front of a queue of
    /// `waiting` plannings.
    pub fn new(
        threads: usize,
        waiting: usize,
        stack_bytes: usize,
        memory_budget: Option<usize>,
    ) -> Result<Self> {
        let threads = threads.max(1);
        let (queue, jobs) = sync_channel::<Job>(waiting);
        let jobs = Arc::new(Mutex::new(jobs));
        for i in 0..threads {
            let jobs = Arc::clone(&jobs);
            std::thread::Builder::new()
                .name(format!("meshql-planner-{i}"))
                .stack_size(stack_bytes)
                .spawn(move || work(&jobs))
                .map_err(|e| Error::resource(format!("cannot start planner threads: {e}")))?;
        }
        Ok(Self {
            queue,
            threads,
            waiting,
            memory_budget,
        })
    }

    /// Refuses new work while the process holds more than its memory budget: the queries
    /// running finish (and free what they hold) before more start.
    fn check_memory(&self) -> Result<()> {
        let (Some(budget), Some(held)) = (self.memory_budget, super::allocator::allocated()) else {
            return Ok(());
        };
        if held > budget {
            return Err(Error::resource(format!(
                "the server is low on memory ({} MiB in use, budget {} MiB: \
                 server.memory_limit_mb plus 1024); retry later",
                held >> 20,
                budget >> 20
            )));
        }
        Ok(())
    }

    /// Runs `f` on a planner thread under `budget` and waits for it without blocking the async
    /// runtime. Dropping the returned future cancels the budget, so an abandoned planning stops
    /// at its next rule. Called from a planner thread, `f` runs right there.
    pub async fn run<T: Send + 'static>(
        &self,
        budget: Arc<Budget>,
        f: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        budget.check()?;
        if on_planner_thread() {
            return f();
        }
        self.check_memory()?;
        let (tx, rx) = oneshot::channel();
        let job_budget = Arc::clone(&budget);
        let job: Job = Box::new(move || {
            // A planning abandoned while it waited in the queue never starts.
            let result = job_budget.check().and_then(|()| {
                CURRENT.with(|c| *c.borrow_mut() = Some(Arc::clone(&job_budget)));
                let result = catch_unwind(AssertUnwindSafe(f))
                    .unwrap_or_else(|panic| Err(Error::from_panic(panic.as_ref())));
                CURRENT.with(|c| *c.borrow_mut() = None);
                result
            });
            let _ = tx.send(result);
        });
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(Error::resource(format!(
                    "the server is busy: {} queries are being planned and {} wait \
                     (server.max_concurrent_queries, server.max_queued_queries); retry later",
                    self.threads, self.waiting
                )));
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(Error::internal("the planner threads are gone"));
            }
        }
        let cancel_on_drop = CancelOnDrop(Some(budget));
        let answer = rx
            .await
            .map_err(|_| Error::internal("a planner thread stopped without an answer"))?;
        cancel_on_drop.disarm();
        answer
    }
}

fn work(jobs: &Mutex<Receiver<Job>>) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            Err(_) => return, // the pool is gone
        }
    }
}

/// Cancels a planning whose requester stopped waiting.
struct CancelOnDrop(Option<Arc<Budget>>);

impl CancelOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(b) = self.0.take() {
            b.cancel();
        }
    }
}

/// `state` with every analyzer, optimizer and physical-optimizer rule checking the planning
/// budget before it runs.
pub fn budgeted_rules(state: SessionState) -> SessionState {
    let analyzers: Vec<Arc<dyn AnalyzerRule + Send + Sync>> = state
        .analyzer()
        .rules
        .iter()
        .map(|r| Arc::new(Budgeted(Arc::clone(r))) as _)
        .collect();
    let optimizers: Vec<Arc<dyn OptimizerRule + Send + Sync>> = state
        .optimizers()
        .iter()
        .map(|r| Arc::new(Budgeted(Arc::clone(r))) as _)
        .collect();
    let physical: Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> = state
        .physical_optimizers()
        .iter()
        .map(|r| Arc::new(Budgeted(Arc::clone(r))) as _)
        .collect();
    SessionStateBuilder::new_from_existing(state)
        .with_analyzer_rules(analyzers)
        .with_optimizer_rules(optimizers)
        .with_physical_optimizer_rules(physical)
        .build()
}

/// A rule that checks the planning budget before delegating.
struct Budgeted<R: ?Sized>(Arc<R>);

impl<R: ?Sized + fmt::Debug> fmt::Debug for Budgeted<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl AnalyzerRule for Budgeted<dyn AnalyzerRule + Send + Sync> {
    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> DfResult<LogicalPlan> {
        check_budget()?;
        self.0.analyze(plan, config)
    }

    fn name(&self) -> &str {
        self.0.name()
    }
}

/// DataFusion 53's `optimize_projections` prunes columns of a recursive CTE's static term that
/// its recursive term still reads ("project index 1 out of bounds", or wrong rows; upstream
/// apache/datafusion#22249, fixed after 53). Plans with a recursive CTE skip that rule.
const PROJECTIONS_RULE: &str = "optimize_projections";

impl OptimizerRule for Budgeted<dyn OptimizerRule + Send + Sync> {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        self.0.apply_order()
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> DfResult<Transformed<LogicalPlan>> {
        check_budget()?;
        if self.0.name() == PROJECTIONS_RULE && has_recursive_query(&plan) {
            return Ok(Transformed::no(plan));
        }
        self.0.rewrite(plan, config)
    }
}

fn has_recursive_query(plan: &LogicalPlan) -> bool {
    plan.exists(|p| Ok(matches!(p, LogicalPlan::RecursiveQuery(_))))
        .unwrap_or(true)
}

impl PhysicalOptimizerRule for Budgeted<dyn PhysicalOptimizerRule + Send + Sync> {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        check_budget()?;
        self.0.optimize(plan, config)
    }

    fn name(&self) -> &str {
        self.0.name()
    }

    fn schema_check(&self) -> bool {
        self.0.schema_check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[tokio::test]
    async fn a_spent_budget_stops_the_planning_and_a_panic_costs_one_planning() {
        let pool = PlannerPool::new(1, 4, 1 << 20, None).unwrap();
        let budget = Budget::new(Some(Duration::from_millis(20)), "test.limit");
        let err = pool
            .run::<()>(budget, || {
                loop {
                    std::thread::sleep(Duration::from_millis(5));
                    check_budget().map_err(Error::from)?;
                }
            })
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DeadlineExceeded, "{err}");
        assert!(err.message().contains("test.limit"), "{err}");

        let err = pool
            .run(Budget::new(None, "x"), || -> Result<()> { panic!("boom") })
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert!(err.message().contains("boom"), "{err}");
        // The thread survived its panic.
        assert_eq!(pool.run(Budget::new(None, "x"), || Ok(7)).await.unwrap(), 7);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_and_an_abandoned_planning_is_cancelled() {
        let pool = Arc::new(PlannerPool::new(1, 1, 1 << 20, None).unwrap());
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let budget = Budget::new(None, "x");
        let long = {
            let pool = Arc::clone(&pool);
            let budget = Arc::clone(&budget);
            tokio::spawn(async move {
                pool.run::<()>(budget, move || {
                    let _ = started_tx.send(());
                    loop {
                        std::thread::sleep(Duration::from_millis(2));
                        check_budget().map_err(Error::from)?;
                    }
                })
                .await
            })
        };
        started_rx.recv().unwrap();
        // One waits in the queue; the next is refused.
        let queued = {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move { pool.run(Budget::new(None, "x"), || Ok(1)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let refused = pool
            .run(Budget::new(None, "x"), || Ok(2))
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::ResourceExhausted, "{refused}");
        // The client of the long planning goes away: its planning stops at the next check.
        long.abort();
        let _ = long.await;
        assert_eq!(queued.await.unwrap().unwrap(), 1);
        assert!(budget.check().is_err());
    }
}
