//! Queries in flight, by the key their front end gives them (a Flight ticket's hash), and the
//! keys cancelled before or while they ran: CancelFlightInfo stops a running query and refuses
//! its key afterwards.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::AbortHandle;
use sha2::{Digest, Sha256};

/// What names a query for cancellation.
pub type CancelKey = [u8; 32];

/// The key of opaque request bytes (a ticket).
pub fn cancel_key(bytes: &[u8]) -> CancelKey {
    Sha256::digest(bytes).into()
}

/// Running queries, by key, each with its registration id.
pub struct Running {
    active: Mutex<HashMap<CancelKey, Vec<(u64, AbortHandle)>>>,
    cancelled: moka::sync::Cache<CancelKey, ()>,
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
    pub fn register(self: &Arc<Self>, key: CancelKey, abort: AbortHandle) -> Registered {
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

    pub fn is_cancelled(&self, key: &CancelKey) -> bool {
        self.cancelled.contains_key(key)
    }

    /// Stops every running query of `key` and refuses later ones; true if one was running.
    pub fn cancel(&self, key: CancelKey) -> bool {
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
    key: CancelKey,
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
