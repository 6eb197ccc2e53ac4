//! Limits that keep one client from starving the others: a bounded number of queries running at
//! once with a bounded queue, a deadline on each result stream, and a cap on result rows. The
//! shared memory pool lives in the engine's runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Result};
use crate::spec::ServerSettings;

/// Admission of queries: `max_concurrent_queries` run, `max_queued_queries` wait, the rest are
/// refused with ResourceExhausted.
pub struct Admission {
    running: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_running: usize,
    max_waiting: usize,
}

/// Per-stream limits.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    pub timeout: Option<Duration>,
    pub max_rows: Option<u64>,
}

impl StreamLimits {
    pub fn from_settings(s: &ServerSettings) -> Self {
        Self {
            timeout: (s.query_timeout_secs > 0).then(|| Duration::from_secs(s.query_timeout_secs)),
            max_rows: (s.max_result_rows > 0).then_some(s.max_result_rows),
        }
    }
}

impl Admission {
    pub fn new(s: &ServerSettings) -> Self {
        let max_running = s.max_concurrent_queries.max(1);
        Self {
            running: Arc::new(Semaphore::new(max_running)),
            waiting: AtomicUsize::new(0),
            max_running,
            max_waiting: s.max_queued_queries,
        }
    }

    /// Waits for a slot, or refuses at once when the queue is full. The permit is held for as
    /// long as the query's stream lives.
    pub async fn admit(&self) -> Result<OwnedSemaphorePermit> {
        if let Ok(permit) = Arc::clone(&self.running).try_acquire_owned() {
            return Ok(permit);
        }
        let queued = self.waiting.fetch_add(1, Ordering::SeqCst);
        if queued >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::resource(format!(
                "the server is busy: {} queries are running and {} waiting \\
                 (server.max_concurrent_queries, server.max_queued_queries); retry later",
                self.max_running, self.max_waiting
            )));
        }
        let permit = Arc::clone(&self.running).acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        permit.map_err(|_| Error::internal("the admission semaphore was closed"))
    }
}
