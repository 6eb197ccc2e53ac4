//! Acceleration: datasets held in memory as Arrow, so that their scans read no storage and
//! decode no Parquet.
//!
//! In `meshql serve` (commands that read a table once gain nothing from a copy), the datasets
//! named by `server.accelerate` (patterns such as `sales.gold.*` or `tpch.raw.lineitem`) are
//! loaded when they are first opened — the server describes the mesh right after it starts,
//! which opens them all — into a [`HeldTable`]: batches in memory, one partition per partition
//! of a scan of the files, that tell the planner each column's bounds as the files' statistics
//! did. All of them together stay within `server.acceleration_mb`. A held copy stands for one
//! version of its dataset: the Delta version, or for files their names, sizes and modification
//! times. Reopening a dataset (after a publish, or once the staleness bound has passed) keeps
//! the held copy while that identity is unchanged, and loads the new version in full before it
//! replaces the old one, so no query ever reads a half-loaded table. A dataset that does not fit
//! in what is left of the budget is read from storage, with a warning.
//!
//! The copy is a table provider like any other: plans over it are governed, masked, filtered and
//! audited exactly as over storage. Its memory is counted apart from `server.memory_limit_mb`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{ArrayRef, AsArray};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::execution::SessionState;
use datafusion::physical_plan::execute_stream_partitioned;
use futures::TryStreamExt;

use super::held::HeldTable;
use crate::error::{Error, Result};
use crate::spec::DatasetName;
use crate::spec::policy::Pattern;
use crate::storage::TableSnapshot;

/// One dataset held in memory.
struct Held {
    /// The identity of the version it holds (see [`TableSnapshot::identity`]).
    identity: u64,
    provider: Arc<dyn TableProvider>,
    bytes: usize,
    rows: usize,
}

/// What [`Accelerator::status`] reports of one dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acceleration {
    pub bytes: usize,
    pub rows: usize,
}

/// The datasets held in memory and their budget.
pub struct Accelerator {
    patterns: Vec<Pattern>,
    budget: usize,
    held: Mutex<HashMap<DatasetName, Arc<Held>>>,
    /// Bytes held, and being loaded.
    used: AtomicUsize,
    /// Whether this process holds datasets (see [`Accelerator::enable`]).
    enabled: AtomicBool,
}

impl std::fmt::Debug for Accelerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accelerator")
            .field("patterns", &self.patterns.len())
            .field("budget", &self.budget)
            .finish()
    }
}

impl Accelerator {
    /// Holds the datasets `patterns` name within `megabytes` MiB.
    pub fn new(patterns: Vec<Pattern>, megabytes: u64) -> Self {
        Self {
            patterns,
            budget: (megabytes as usize).saturating_mul(1 << 20),
            held: Mutex::default(),
            used: AtomicUsize::new(0),
            enabled: AtomicBool::new(false),
        }
    }

    /// Starts holding datasets in memory as they are opened (what `meshql serve` does).
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }

    /// Whether `server.accelerate` names `name` (whether or not this process holds datasets).
    pub fn configured(&self, name: &DatasetName) -> bool {
        self.budget > 0 && self.patterns.iter().any(|p| p.matches(name))
    }

    /// Whether this process holds `name` in memory when it opens it.
    pub fn wants(&self, name: &DatasetName) -> bool {
        self.enabled.load(Ordering::Relaxed) && self.configured(name)
    }

    /// Memory held (and being loaded) now, in bytes.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Whether `name` is held in memory now, with its size.
    pub fn status(&self, name: &DatasetName) -> Option<Acceleration> {
        let held = self.held.lock().ok()?;
        held.get(name).map(|t| Acceleration {
            bytes: t.bytes,
            rows: t.rows,
        })
    }

    /// `opened` (the version of `name` just opened from storage) served from memory: the copy
    /// held already if it is of this version, else one loaded now. `opened` itself when the
    /// dataset is not accelerated, has no identity, or does not fit.
    pub async fn serve(
        &self,
        name: &DatasetName,
        opened: TableSnapshot,
        state: &SessionState,
    ) -> TableSnapshot {
        let Some(identity) = opened.identity else {
            return opened;
        };
        if !self.wants(name) {
            return opened;
        }
        let current = self.held.lock().ok().and_then(|h| h.get(name).cloned());
        if let Some(held) = current.filter(|h| h.identity == identity) {
            return TableSnapshot {
                provider: Arc::clone(&held.provider),
                ..opened
            };
        }
        match self.load(name, &opened, identity, state).await {
            Ok(held) => TableSnapshot {
                provider: Arc::clone(&held.provider),
                ..opened
            },
            Err(e) => {
                tracing::warn!("`{name}` is read from storage, not memory: {e}");
                opened
            }
        }
    }

    /// Reads all of `opened` into memory and holds it in place of what `name` held before. The
    /// copy it replaces counts as free: during a refresh both are in memory for a moment.
    async fn load(
        &self,
        name: &DatasetName,
        opened: &TableSnapshot,
        identity: u64,
        state: &SessionState,
    ) -> Result<Arc<Held>> {
        let started = std::time::Instant::now();
        let previous = self
            .held
            .lock()
            .ok()
            .and_then(|h| h.get(name).map(|t| t.bytes))
            .unwrap_or(0);
        let loading = Loading {
            used: &self.used,
            bytes: AtomicUsize::new(0),
        };
        let limit = self.budget + previous;
        let plan = opened.provider.scan(state, None, &[], None).await?;
        let schema = plan.schema();
        let streams = execute_stream_partitioned(plan, state.task_ctx())?;
        // The partitions load side by side, as a scan of them would run.
        let partitions = futures::future::try_join_all(streams.into_iter().map(|stream| {
            let loading = &loading;
            async move {
                let mut batches = Vec::new();
                let mut stream = stream.map_err(Error::from);
                while let Some(batch) = stream.try_next().await? {
                    let batch = compacted(batch)?;
                    if !loading.take(batch.get_array_memory_size(), limit) {
                        return Err(Error::resource(format!(
                            "it needs more than the {} MiB of server.acceleration_mb left",
                            limit.saturating_sub(loading.used.load(Ordering::Relaxed)) >> 20
                        )));
                    }
                    batches.push(batch);
                }
                Ok::<_, Error>(batches)
            }
        }))
        .await?;
        let rows = partitions.iter().flatten().map(RecordBatch::num_rows).sum();
        // Every value is read once more, for the columns' bounds: off the serving threads.
        let table = tokio::task::spawn_blocking(move || HeldTable::new(schema, partitions))
            .await
            .map_err(|e| Error::internal(format!("computing a held copy's statistics: {e}")))?;
        let held = Arc::new(Held {
            identity,
            provider: Arc::new(table),
            bytes: loading.keep(),
            rows,
        });
        let replaced = self
            .held
            .lock()
            .ok()
            .and_then(|mut all| all.insert(name.clone(), Arc::clone(&held)));
        if let Some(old) = replaced {
            self.used.fetch_sub(old.bytes, Ordering::Relaxed);
        }
        tracing::info!(
            "`{name}` held in memory: {rows} rows, {}, loaded in {:.1} s",
            crate::human::bytes(held.bytes as u128),
            started.elapsed().as_secs_f64()
        );
        Ok(held)
    }
}

/// `batch` owning only the bytes its string and binary views use. Decoded views point into
/// data buffers shared by many batches; each batch would count, and keep alive, all of them —
/// for the budget here and for the memory pool of every operator that holds such batches.
fn compacted(batch: RecordBatch) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|column| -> ArrayRef {
            if let Some(views) = column.as_string_view_opt() {
                return Arc::new(views.gc());
            }
            if let Some(views) = column.as_binary_view_opt() {
                return Arc::new(views.gc());
            }
            Arc::clone(column)
        })
        .collect();
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// Bytes a load has taken from the budget; given back unless the load completes.
struct Loading<'a> {
    used: &'a AtomicUsize,
    bytes: AtomicUsize,
}

impl Loading<'_> {
    /// Takes `bytes` more unless that would put the total over `limit`.
    fn take(&self, bytes: usize, limit: usize) -> bool {
        let before = self.used.fetch_add(bytes, Ordering::Relaxed);
        if before + bytes > limit {
            self.used.fetch_sub(bytes, Ordering::Relaxed);
            return false;
        }
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        true
    }

    /// The load completed: its bytes stay taken.
    fn keep(self) -> usize {
        self.bytes.swap(0, Ordering::Relaxed)
    }
}

impl Drop for Loading<'_> {
    fn drop(&mut self) {
        self.used
            .fetch_sub(*self.bytes.get_mut(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::prelude::SessionContext;

    use super::*;

    /// A snapshot of `rows` Int64 values (8 bytes each) with `identity`.
    fn snapshot(rows: i64, identity: u64) -> TableSnapshot {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from_iter_values(0..rows))],
        )
        .unwrap();
        TableSnapshot {
            provider: Arc::new(
                datafusion::datasource::MemTable::try_new(schema, vec![vec![batch]]).unwrap(),
            ),
            version: Some(identity),
            last_modified: None,
            identity: Some(identity),
        }
    }

    fn accelerator(megabytes: u64) -> Accelerator {
        let a = Accelerator::new(vec![Pattern::dataset("shop.gold").unwrap()], megabytes);
        a.enable();
        a
    }

    #[tokio::test]
    async fn a_version_is_loaded_once_and_replaced_by_the_next() {
        let state = SessionContext::new().state();
        let a = accelerator(16);
        let name = DatasetName::new("shop", "gold", "items");
        let first = a.serve(&name, snapshot(1000, 1), &state).await;
        let again = a.serve(&name, snapshot(1000, 1), &state).await;
        assert!(
            Arc::ptr_eq(&first.provider, &again.provider),
            "the held copy"
        );
        assert_eq!(a.status(&name).map(|s| s.rows), Some(1000));
        let held = a.used();
        assert!(held >= 8000, "{held}");

        let next = a.serve(&name, snapshot(10, 2), &state).await;
        assert!(!Arc::ptr_eq(&first.provider, &next.provider));
        assert_eq!(a.status(&name).map(|s| s.rows), Some(10));
        assert!(a.used() < held, "the old copy is given back");

        // Not named by the patterns, or not enabled in this process: read from storage.
        let other = DatasetName::new("shop", "raw", "items");
        let opened = snapshot(10, 1);
        let provider = Arc::clone(&opened.provider);
        assert!(Arc::ptr_eq(
            &a.serve(&other, opened, &state).await.provider,
            &provider
        ));
        let off = Accelerator::new(vec![Pattern::dataset("shop").unwrap()], 16);
        let opened = snapshot(10, 1);
        let provider = Arc::clone(&opened.provider);
        assert!(Arc::ptr_eq(
            &off.serve(&name, opened, &state).await.provider,
            &provider
        ));
        assert!(off.configured(&name) && off.status(&name).is_none());
    }

    #[tokio::test]
    async fn a_dataset_over_the_budget_is_read_from_storage_and_takes_nothing() {
        let state = SessionContext::new().state();
        let a = accelerator(1);
        let name = DatasetName::new("shop", "gold", "big");
        // 2 MiB of values against a 1 MiB budget.
        let opened = snapshot(256 * 1024, 1);
        let provider = Arc::clone(&opened.provider);
        let served = a.serve(&name, opened, &state).await;
        assert!(Arc::ptr_eq(&served.provider, &provider));
        assert_eq!((a.status(&name), a.used()), (None, 0));
        // What fits is still held beside it.
        a.serve(
            &DatasetName::new("shop", "gold", "small"),
            snapshot(100, 1),
            &state,
        )
        .await;
        assert!(a.used() > 0 && a.used() < 1 << 20);
    }
}
