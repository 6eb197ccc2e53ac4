//! What `meshql serve` does around serving requests: build the tables that are missing, describe
//! what is served in the `mesh` system catalog (in the background, once listening: on a large
//! mesh that means opening every table), and keep schedules and the freshness monitor running
//! until the server stops. Describing, schedules and freshness checks are the warehouse's
//! background work, done by the one process holding its [`Lease`]; holding datasets in memory is
//! each process's own.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::lease::Lease;
use crate::engine::Engine;
use crate::error::Result;
use crate::pipeline::{FreshnessMonitor, RunEvent, RunPlan, RunReport, refresh_system_catalog};
use crate::pipeline::{Run, run_schedules};

/// Builds the warehouse's missing tables (unless `build` is false); answers the build's report,
/// if one ran (a run ends by describing what it published in the `mesh` system catalog).
/// `observe` sees the run's events.
pub async fn prepare(
    engine: &Arc<Engine>,
    build: bool,
    observe: impl Fn(&RunEvent<'_>) + Send + Sync + 'static,
) -> Result<Option<RunReport>> {
    if !(build && missing_tables(engine).await?) {
        return Ok(None);
    }
    let plan = RunPlan::new(engine.mesh(), &[])?;
    Ok(Some(
        Run::new(Arc::clone(engine), plan)
            .with_progress(observe)
            .await,
    ))
}

/// Told when the mesh is described: how long it took (`None`: another process holds the lease
/// and describes it), or why it could not be.
pub type OnDescribed = Box<dyn FnOnce(Result<Option<Duration>>) + Send>;

/// Rewrites `mesh.catalog.*` and `mesh.lineage.*` to describe what is served now, and reports
/// how long it took. Until it is done, they show what the last run or start described.
pub async fn describe(engine: Arc<Engine>, done: OnDescribed) {
    let started = std::time::Instant::now();
    let described = refresh_system_catalog(&engine)
        .await
        .map(|_| Some(started.elapsed()));
    done(described);
}

/// Whether a declared table has no published version yet.
pub async fn missing_tables(engine: &Engine) -> Result<bool> {
    for dataset in engine.mesh().nodes() {
        if !engine.catalog().is_view(&dataset.name)
            && engine.catalog().snapshot(&dataset.name).await?.is_none()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Schedules and the freshness monitor, running until [`Maintenance::stop`].
pub struct Maintenance {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    lease: Arc<dyn Lease>,
}

impl Maintenance {
    /// Starts holding the datasets of `server.accelerate` in memory, schedules and the
    /// freshness monitor, and — when `on_described` is given — the description of the mesh in
    /// its system catalog ([`describe`]), which it is told of.
    pub fn start(engine: &Arc<Engine>, on_described: Option<OnDescribed>) -> Self {
        let term = Duration::from_secs(engine.mesh().server.lease_secs.max(1));
        let lease: Arc<dyn Lease> = Arc::from(<dyn Lease>::for_warehouse(
            engine.catalog().warehouse().root(),
            term,
        ));
        Self::start_with(engine, on_described, lease, term)
    }

    /// [`Maintenance::start`] with the background work gated by `lease`, renewed three times per
    /// `term`.
    pub fn start_with(
        engine: &Arc<Engine>,
        on_described: Option<OnDescribed>,
        lease: Arc<dyn Lease>,
        term: Duration,
    ) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        // Whether this process holds the lease: `None` until first asked.
        let (held_tx, held) = watch::channel(None::<bool>);
        let may_run = |held: watch::Receiver<Option<bool>>| move || *held.borrow() == Some(true);
        let every = Duration::from_secs(engine.mesh().notifications.freshness_check_secs.max(1));
        let catalog = Arc::clone(engine.catalog());
        let mut tasks = vec![
            spawn(keep(
                Arc::clone(&lease),
                term / 3,
                held_tx,
                stopped(stop_rx.clone()),
            )),
            spawn(until(
                async move { catalog.accelerate().await },
                stopped(stop_rx.clone()),
            )),
            spawn(run_schedules(
                Arc::clone(engine),
                may_run(held.clone()),
                stopped(stop_rx.clone()),
            )),
            spawn(FreshnessMonitor::new(Arc::clone(engine)).watch(
                every,
                may_run(held.clone()),
                stopped(stop_rx.clone()),
            )),
        ];
        if let Some(done) = on_described {
            let engine = Arc::clone(engine);
            let mut stop_rx = stop_rx;
            let mut held = held;
            // Stopping the server abandons a description under way: the tables keep the last.
            tasks.push(spawn(async move {
                let describing = async move {
                    match held.wait_for(|h| h.is_some()).await.map(|h| *h) {
                        Ok(Some(true)) => describe(engine, done).await,
                        _ => done(Ok(None)),
                    }
                };
                tokio::select! {
                    _ = describing => {}
                    _ = stop_rx.wait_for(|s| *s) => {}
                }
            }));
        }
        Self { stop, tasks, lease }
    }

    /// Stops the background work, waits for it and gives the lease up.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let lease = self.lease;
        let _ = tokio::task::spawn_blocking(move || lease.release()).await;
    }
}

/// Takes or renews `lease` every `every` until `stop`, telling `held` whether this process holds
/// it.
async fn keep(
    lease: Arc<dyn Lease>,
    every: Duration,
    held: watch::Sender<Option<bool>>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        let asked = Arc::clone(&lease);
        let now = tokio::task::spawn_blocking(move || asked.hold())
            .await
            .unwrap_or(false);
        let before = held.send_replace(Some(now));
        if before != Some(now) {
            tracing::info!(
                held = now,
                "lease on the warehouse's background work (schedules, freshness checks, system catalog)"
            );
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// `work` until `stop` resolves, whichever comes first.
async fn until(work: impl Future<Output = ()>, stop: impl Future<Output = ()>) {
    tokio::select! {
        _ = work => {}
        _ = stop => {}
    }
}

fn spawn(f: impl Future<Output = ()> + Send + 'static) -> JoinHandle<()> {
    tokio::spawn(f)
}
