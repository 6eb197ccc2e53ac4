//! Freshness: the age of each product's latest publish against its latency SLA.
//!
//! [`FreshnessMonitor`] runs inside `meshql serve`: it re-evaluates every product on an interval,
//! rewrites `mesh.catalog.products` when a status changes, and sends `product_stale` to the
//! webhooks when a product turns stale. Its clock can be replaced, for tests.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::history;
use super::notify::{self, Event};
use crate::engine::Engine;
use crate::error::Result;
use crate::spec::DatasetName;
use crate::spec::contract::freshness;

type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Watches the products of a mesh.
pub struct FreshnessMonitor {
    engine: Arc<Engine>,
    clock: Clock,
    known: HashMap<DatasetName, &'static str>,
}

impl FreshnessMonitor {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self {
            engine,
            clock: Arc::new(Utc::now),
            known: HashMap::new(),
        }
    }

    /// Uses `clock` instead of the system time.
    pub fn with_clock(mut self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Evaluates every product once; returns those that turned stale (their events are sent).
    pub async fn check(&mut self) -> Result<Vec<DatasetName>> {
        let now = (self.clock)();
        let mesh = Arc::clone(self.engine.mesh());
        let mut changed = false;
        let mut turned = Vec::new();
        let mut events = Vec::new();
        for (ds, contract) in mesh.products() {
            let last = match self.engine.catalog().snapshot(&ds.name).await {
                Ok(s) => s.and_then(|s| s.last_modified),
                Err(e) => {
                    tracing::warn!(product = %ds.name, error = %e, "cannot read a product's version");
                    continue;
                }
            };
            let status = freshness(contract.latency, last, now);
            let before = self.known.insert(ds.name.clone(), status);
            changed |= before != Some(status);
            if status == "stale" && before != Some("stale") {
                if let Some(latency) = contract.latency {
                    events.push(Event::stale(
                        &mesh,
                        now,
                        &ds.name.to_string(),
                        &contract.id,
                        last,
                        latency,
                    ));
                }
                turned.push(ds.name.clone());
            }
        }
        if changed {
            history::refresh_products(&self.engine, now).await?;
        }
        notify::send(&mesh, &events).await;
        Ok(turned)
    }

    /// Checks every `every`, when `may_run` says so, until `stop` completes.
    pub async fn watch(
        mut self,
        every: Duration,
        may_run: impl Fn() -> bool,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        loop {
            if may_run()
                && let Err(e) = self.check().await
            {
                tracing::warn!(error = %e, "freshness check failed");
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }
}
