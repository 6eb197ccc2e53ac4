//! What `meshql serve` does around serving requests: build the tables that are missing, describe
//! what is served in the `mesh` system catalog, and keep schedules and the freshness monitor
//! running until the server stops.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::engine::Engine;
use crate::error::Result;
use crate::pipeline::{FreshnessMonitor, RunEvent, RunPlan, RunReport, refresh_system_catalog};
use crate::pipeline::{Run, run_schedules};

/// Builds the warehouse's missing tables (unless `build` is false) and refreshes the system
/// catalog; answers the build's report, if one ran. `observe` sees the run's events.
pub async fn prepare(
    engine: &Arc<Engine>,
    build: bool,
    observe: impl Fn(&RunEvent<'_>) + Send + Sync + 'static,
) -> Result<Option<RunReport>> {
    let mut report = None;
    if build && missing_tables(engine).await? {
        let plan = RunPlan::new(engine.mesh(), &[])?;
        report = Some(
            Run::new(Arc::clone(engine), plan)
                .with_progress(observe)
                .await,
        );
    }
    // mesh.catalog.* describe what is served now.
    if let Err(e) = refresh_system_catalog(engine).await {
        tracing::warn!(error = %e, "cannot refresh the mesh system catalog");
    }
    Ok(report)
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
    pub fn start(engine: &Arc<Engine>) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let every = Duration::from_secs(engine.mesh().notifications.freshness_check_secs.max(1));
        let tasks = vec![
            spawn(run_schedules(Arc::clone(engine), stopped(stop_rx.clone()))),
            spawn(FreshnessMonitor::new(Arc::clone(engine)).watch(every, stopped(stop_rx))),
        ];
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

fn spawn(f: impl Future<Output = ()> + Send + 'static) -> JoinHandle<()> {
    tokio::spawn(f)
}
