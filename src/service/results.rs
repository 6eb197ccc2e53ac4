//! The result cache: answers of repeated queries without running them again.
//!
//! A result is keyed by the *governed* plan with its parameters bound — which already holds the
//! principal's row filters and masks, so two principals share an entry only when their policies
//! shape the query identically — and by the contents of every table it reads (a Delta version,
//! a source's files; see [`MeshCatalog::contents_read`]). A publish makes a new version, and a
//! source's changed files are seen within `catalog_staleness_secs`, so later queries miss and
//! the old entries age out; nothing is ever served from contents the query would not have read
//! itself.
//!
//! Only answers that depend on nothing else are kept: every table scanned is a published mesh
//! dataset or a declared source (not a view planned afresh, the system catalog or a table
//! function), and no function is volatile or stable (`random()`, `now()`). Entries are bounded
//! in bytes (`server.result_cache_mb`); a result larger than a sixteenth of the cache is
//! streamed but not kept.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::memory::MemoryStream;

use crate::catalog::MeshCatalog;
use crate::engine::SearchPath;
use crate::error::Result;

/// What identifies one answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResultKey {
    plan: LogicalPlan,
    /// Every dataset read, with the identity of the contents the plan reads, in name order.
    contents: Vec<(String, u64)>,
}

/// One kept answer.
struct Kept {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

/// What the cache did since the server started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Queries answered from the cache.
    pub hits: u64,
    /// Queries whose answer could be kept but was not there (answers that may never be kept
    /// are not looked up).
    pub misses: u64,
    /// Answers kept, and their bytes.
    pub entries: u64,
    pub bytes: u64,
}

/// The bounded cache of answers. Cheap to clone.
#[derive(Clone)]
pub struct ResultCache {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    entries: moka::sync::Cache<ResultKey, Arc<Kept>>,
    max_entry_bytes: u64,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for ResultCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultCache")
            .field("stats", &self.stats())
            .finish()
    }
}

impl ResultCache {
    /// A cache of at most `megabytes` MiB of results; 0 turns it off.
    pub fn new(megabytes: u64) -> Self {
        if megabytes == 0 {
            return Self { inner: None };
        }
        let capacity = megabytes.saturating_mul(1 << 20);
        let entries = moka::sync::Cache::builder()
            .max_capacity(capacity)
            .weigher(|_key: &ResultKey, kept: &Arc<Kept>| {
                u32::try_from(kept_bytes(&kept.batches)).unwrap_or(u32::MAX)
            })
            .build();
        Self {
            inner: Some(Arc::new(Inner {
                entries,
                max_entry_bytes: (capacity / 16).min(u32::MAX as u64),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
            })),
        }
    }

    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The key of `plan` (governed, parameters bound, planned in `path`), or `None` when its
    /// answer may not be kept.
    pub async fn key(
        &self,
        catalog: &MeshCatalog,
        path: &SearchPath,
        plan: &LogicalPlan,
    ) -> Result<Option<ResultKey>> {
        if self.inner.is_none() || !cacheable_shape(plan) {
            return Ok(None);
        }
        let Some(contents) = catalog
            .contents_read(plan, &path.domain, &path.layer)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(ResultKey {
            plan: plan.clone(),
            contents,
        }))
    }

    /// The kept answer of `key`, as a stream.
    pub fn get(&self, key: &ResultKey) -> Option<SendableRecordBatchStream> {
        let inner = self.inner.as_ref()?;
        let Some(kept) = inner.entries.get(key) else {
            inner.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        inner.hits.fetch_add(1, Ordering::Relaxed);
        let stream =
            MemoryStream::try_new(kept.batches.clone(), Arc::clone(&kept.schema), None).ok()?;
        Some(Box::pin(stream))
    }

    /// Starts recording the answer of `key` as it streams.
    pub fn fill(&self, key: ResultKey, schema: SchemaRef) -> Option<ResultFill> {
        let inner = Arc::clone(self.inner.as_ref()?);
        Some(ResultFill {
            inner,
            key,
            schema,
            batches: Vec::new(),
            bytes: 0,
        })
    }

    pub fn stats(&self) -> CacheStats {
        let Some(inner) = &self.inner else {
            return CacheStats::default();
        };
        inner.entries.run_pending_tasks();
        CacheStats {
            hits: inner.hits.load(Ordering::Relaxed),
            misses: inner.misses.load(Ordering::Relaxed),
            entries: inner.entries.entry_count(),
            bytes: inner.entries.weighted_size(),
        }
    }
}

/// An answer being recorded: kept only if the stream ends cleanly and stays small enough.
pub struct ResultFill {
    inner: Arc<Inner>,
    key: ResultKey,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    bytes: u64,
}

impl ResultFill {
    /// Records `batch`; false once the answer is too large to keep (the caller drops the fill).
    pub fn offer(&mut self, batch: &RecordBatch) -> bool {
        self.bytes += batch.get_array_memory_size() as u64;
        if self.bytes > self.inner.max_entry_bytes {
            return false;
        }
        self.batches.push(batch.clone());
        true
    }

    /// The stream ended cleanly: keep the answer.
    pub fn complete(self) {
        let kept = Kept {
            schema: self.schema,
            batches: self.batches,
        };
        self.inner.entries.insert(self.key, Arc::new(kept));
    }
}

fn kept_bytes(batches: &[RecordBatch]) -> u64 {
    batches
        .iter()
        .map(|b| b.get_array_memory_size() as u64)
        .sum()
}

/// A query whose answer depends only on the tables it reads: no EXPLAIN (its text shows
/// timings and plans), no statement, no extension node, no volatile or stable function.
pub(super) fn cacheable_shape(plan: &LogicalPlan) -> bool {
    let mut ok = true;
    let walked = plan.apply_with_subqueries(|node| {
        let node_ok = !matches!(
            node,
            LogicalPlan::Explain(_)
                | LogicalPlan::Analyze(_)
                | LogicalPlan::Dml(_)
                | LogicalPlan::Ddl(_)
                | LogicalPlan::Statement(_)
                | LogicalPlan::Copy(_)
                | LogicalPlan::Extension(_)
                | LogicalPlan::DescribeTable(_)
        );
        if !node_ok {
            ok = false;
            return Ok(TreeNodeRecursion::Stop);
        }
        node.apply_expressions(|e| {
            e.apply(|e| {
                let immutable = match e {
                    Expr::ScalarFunction(f) => {
                        f.func.signature().volatility == Volatility::Immutable
                    }
                    Expr::AggregateFunction(f) => {
                        f.func.signature().volatility == Volatility::Immutable
                    }
                    Expr::WindowFunction(w) => {
                        w.fun.signature().volatility == Volatility::Immutable
                    }
                    _ => true,
                };
                if immutable {
                    Ok(TreeNodeRecursion::Continue)
                } else {
                    ok = false;
                    Ok(TreeNodeRecursion::Stop)
                }
            })
        })?;
        Ok(if ok {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    walked.is_ok() && ok
}
