//! Queries in flight, by their [`QueryId`], and the ids cancelled before or while they ran: a
//! cancel request stops a running query and refuses its id afterwards.
//!
//! A front end derives the id from what names the query to its clients (a Flight ticket; a
//! PostgreSQL backend's key), so the service never sees protocol bytes. The registry is this
//! process's: a cancel request reaching another replica than the one running the query finds
//! nothing to stop there, but the id stays refused on that replica. Replicas that must stop each
//! other's queries publish cancelled ids to a shared store (the warehouse, as the lease does)
//! and poll it; nothing in the service changes but this registry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::AbortHandle;
use sha2::{Digest, Sha256};

/// What names a query for cancellation: a hash of what names it to its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueryId([u8; 32]);

impl QueryId {
    /// The id of the query that opaque request bytes (a ticket, a handle) name.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
}

/// Running queries, by key, each with its registration id.
pub struct Running {
    active: Mutex<HashMap<QueryId, Vec<(u64, AbortHandle)>>>,
    cancelled: moka::sync::Cache<QueryId, ()>,
    next_id: AtomicU64,
}

impl Default for Running {
    fn default() -> Self {
        Self {
            active: Mutex::default(),
            // A cancelled key stays refused for a day; keys are otherwise stateless.
            cancelled: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(24 * 3600))
                .build(),
            next_id: AtomicU64::new(0),
        }
    }
}

impl Running {
    /// Registers a running query; it stays registered while the guard lives.
    pub fn register(self: &Arc<Self>, key: QueryId, abort: AbortHandle) -> Registered {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut active) = self.active.lock() {
            active.entry(key).or_default().push((id, abort));
        }
        Registered {
            running: Arc::clone(self),
            key,
            id,
        }
    }

    pub fn is_cancelled(&self, key: &QueryId) -> bool {
        self.cancelled.contains_key(key)
    }

    /// Stops every running query of `key` and refuses later ones; true if one was running.
    pub fn cancel(&self, key: QueryId) -> bool {
        self.cancelled.insert(key, ());
        let aborted = self
            .active
            .lock()
            .ok()
            .and_then(|mut a| a.remove(&key))
            .unwrap_or_default();
        for (_, abort) in &aborted {
            abort.abort();
        }
        !aborted.is_empty()
    }
}

/// A query's registration, removed when dropped.
pub struct Registered {
    running: Arc<Running>,
    key: QueryId,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut active) = self.running.active.lock()
            && let Some(list) = active.get_mut(&self.key)
        {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                active.remove(&self.key);
            }
        }
    }
}
