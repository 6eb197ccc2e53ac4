//! A per-query memory cap inside the pool shared by every query: a query past its cap fails
//! with ResourceExhausted, while the shared pool keeps spilling operators fair between queries.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::common::resources_datafusion_err;
use datafusion::error::Result;
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};

/// One query's view of the shared pool.
#[derive(Debug)]
pub struct QueryPool {
    shared: Arc<dyn MemoryPool>,
    cap: usize,
    used: AtomicUsize,
}

impl QueryPool {
    pub fn new(shared: Arc<dyn MemoryPool>, cap: usize) -> Self {
        Self {
            shared,
            cap,
            used: AtomicUsize::new(0),
        }
    }
}

impl MemoryPool for QueryPool {
    fn register(&self, consumer: &MemoryConsumer) {
        self.shared.register(consumer)
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.shared.unregister(consumer)
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.shared.grow(reservation, additional);
        self.used.fetch_add(additional, Ordering::Relaxed);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.shared.shrink(reservation, shrink);
        self.used.fetch_sub(shrink, Ordering::Relaxed);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let used = self.used.load(Ordering::Relaxed);
        if used + additional > self.cap {
            return Err(resources_datafusion_err!(
                "the query needs more than its {} MiB of memory (server.query_memory_limit_mb); \
                 {} wanted {additional} more bytes with {used} in use",
                self.cap / (1024 * 1024),
                reservation.consumer().name()
            ));
        }
        self.shared.try_grow(reservation, additional)?;
        self.used.fetch_add(additional, Ordering::Relaxed);
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.cap)
    }
}
