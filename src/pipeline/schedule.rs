//! Schedules: `meshql serve` runs each node on its cron schedule, declared once — in the
//! transform's header (`-- @schedule: 0 6 * * *`) or on its product contract's `frequency` service
//! level (`scheduler: cron`, `schedule: ...`).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::dag::RunPlan;
use super::run::Run;
use crate::engine::Engine;
use crate::spec::{DatasetKind, DatasetName, Mesh, parse_schedule};

/// A node and its schedule.
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub node: DatasetName,
    pub expression: String,
    cron: croner::Cron,
}

impl Scheduled {
    /// The first time strictly after `after` the node is due.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&after, false).ok()
    }
}

/// Every scheduled node of `mesh`.
pub fn scheduled(mesh: &Mesh) -> Vec<Scheduled> {
    let mut out: Vec<Scheduled> = Vec::new();
    for ds in mesh.datasets() {
        let from_header = match &ds.kind {
            DatasetKind::Transform(t) => t.options.schedule.clone(),
            _ => None,
        };
        let from_contract = ds.contract.as_ref().and_then(|c| c.schedule.clone());
        let Some(expression) = from_header.or(from_contract) else {
            continue;
        };
        let Some(node) = mesh.node_of(&ds.name) else {
            continue;
        };
        if out.iter().any(|s| s.node == node) {
            continue;
        }
        // Validated when the mesh was loaded.
        if let Ok(cron) = parse_schedule(&expression) {
            out.push(Scheduled {
                node,
                expression,
                cron,
            });
        }
    }
    out
}

/// Runs the scheduled nodes of the engine's mesh until `stop` completes; a tick when `may_run`
/// says no (another process does the warehouse's background work) is skipped.
pub async fn run_schedules(
    engine: Arc<Engine>,
    may_run: impl Fn() -> bool,
    stop: impl std::future::Future<Output = ()>,
) {
    let entries = scheduled(engine.mesh());
    if entries.is_empty() {
        return;
    }
    tokio::pin!(stop);
    let mut from = Utc::now();
    loop {
        let Some(next) = entries.iter().filter_map(|e| e.next_after(from)).min() else {
            return;
        };
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let due: Vec<String> = entries
            .iter()
            .filter(|e| e.next_after(from) == Some(next))
            .map(|e| e.node.to_string())
            .collect();
        from = next;
        if !may_run() {
            tracing::debug!(nodes = ?due, "scheduled run left to the process holding the lease");
            continue;
        }
        let selectors = due
            .iter()
            .filter_map(|d| d.parse().ok())
            .collect::<Vec<_>>();
        let plan = match RunPlan::new(engine.mesh(), &selectors) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot plan a scheduled run");
                continue;
            }
        };
        tracing::info!(nodes = ?due, "scheduled run");
        let report = Run::new(Arc::clone(&engine), plan).await;
        tracing::info!(run_id = %report.run_id, ok = report.succeeded(), "scheduled run ended");
    }
}
