//! What `meshql serve` does around serving requests: build the tables that are missing, describe
//! what is served in the `mesh` system catalog (in the background, once listening: on a large
//! mesh that means opening every table), and keep schedules and the freshness monitor running
//! until the server stops.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

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

/// Told when the mesh is described: how long it took, or why it could not be.
pub type OnDescribed = Box<dyn FnOnce(Result<Duration>) + Send>;

/// Rewrites `mesh.catalog.*` and `mesh.lineage.*` to describe what is served now, and reports
/// how long it took. Until it is done, they show what the last run or start described.
pub async fn describe(engine: Arc<Engine>, done: OnDescribed) {
    let started = std::time::Instant::now();
    let described = refresh_system_catalog(&engine)
        .await
        .map(|_| started.elapsed());
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
}

impl Maintenance {
    /// Starts holding the datasets of `server.accelerate` in memory, schedules and the
    /// freshness monitor, and — when `on_described` is given — the description of the mesh in
    /// its system catalog ([`describe`]), which it is told of.
    pub fn start(engine: &Arc<Engine>, on_described: Option<OnDescribed>) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let every = Duration::from_secs(engine.mesh().notifications.freshness_check_secs.max(1));
        let catalog = Arc::clone(engine.catalog());
        let mut tasks = vec![
            spawn(until(
                async move { catalog.accelerate().await },
                stopped(stop_rx.clone()),
            )),
            spawn(run_schedules(Arc::clone(engine), stopped(stop_rx.clone()))),
            spawn(FreshnessMonitor::new(Arc::clone(engine)).watch(every, stopped(stop_rx.clone()))),
        ];
        if let Some(done) = on_described {
            let engine = Arc::clone(engine);
            let mut stop_rx = stop_rx;
            // Stopping the server abandons a description under way: the tables keep the last.
            tasks.push(spawn(async move {
                tokio::select! {
                    _ = describe(engine, done) => {}
                    _ = stop_rx.wait_for(|s| *s) => {}
                }
            }));
        }
        Self { stop, tasks }
    }

    /// Stops the background work and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
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
