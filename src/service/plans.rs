//! Plans kept across statements: a dashboard that sends the same SQL again is not parsed,
//! planned and governed again while the tables it reads are unchanged.
//!
//! A plan is kept for one principal (name, groups and attributes, which decide its row filters
//! and masks), one search path and one SQL text, and only when it could be answered from the
//! result cache too ([`cacheable_shape`], every scan a published mesh dataset or a declared
//! source). It is handed out again only while every table it scans is still at the snapshot it
//! was planned over: a publish (or another process's commit, or new files of a source, once
//! seen) makes the next statement plan afresh, and that plan replaces the old one. Statements
//! with parameters bound at planning are not kept, nor are plans made to announce a schema for
//! parameter values (their schema depends on the values).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::results::cacheable_shape;
use super::statement::Planned;
use crate::catalog::MeshCatalog;
use crate::engine::SearchPath;
use crate::governance::Principal;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PlanKey {
    principal: Principal,
    path: SearchPath,
    sql: String,
}

/// What the plan cache did since the server started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanStats {
    /// Statements that took a kept plan.
    pub hits: u64,
    /// Statements planned although a plan was kept for them (a table had a new version).
    pub stale: u64,
    /// Plans kept now.
    pub entries: u64,
}

/// The bounded cache of governed plans. Cheap to clone.
#[derive(Clone)]
pub struct PlanCache {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    plans: moka::sync::Cache<PlanKey, Arc<Planned>>,
    hits: AtomicU64,
    stale: AtomicU64,
}

impl PlanCache {
    /// A cache of at most `entries` plans; 0 turns it off.
    pub fn new(entries: u64) -> Self {
        if entries == 0 {
            return Self { inner: None };
        }
        Self {
            inner: Some(Arc::new(Inner {
                plans: moka::sync::Cache::new(entries),
                hits: AtomicU64::new(0),
                stale: AtomicU64::new(0),
            })),
        }
    }

    /// The plan kept for `sql` in `path` as `principal`, if every table it scans is still at
    /// the version it was planned over.
    pub async fn get(
        &self,
        catalog: &MeshCatalog,
        principal: &Principal,
        path: &SearchPath,
        sql: &str,
    ) -> Option<Arc<Planned>> {
        let inner = self.inner.as_ref()?;
        let key = PlanKey {
            principal: principal.clone(),
            path: path.clone(),
            sql: sql.to_string(),
        };
        let planned = inner.plans.get(&key)?;
        match catalog
            .contents_read(&planned.plan, &path.domain, &path.layer)
            .await
        {
            Ok(Some(_)) => {
                inner.hits.fetch_add(1, Ordering::Relaxed);
                Some(planned)
            }
            _ => {
                inner.stale.fetch_add(1, Ordering::Relaxed);
                inner.plans.invalidate(&key);
                None
            }
        }
    }

    /// Keeps `planned` (of `sql` in `path` as `principal`) if it may be handed out again.
    pub async fn keep(
        &self,
        catalog: &MeshCatalog,
        principal: &Principal,
        path: &SearchPath,
        sql: &str,
        planned: &Arc<Planned>,
    ) {
        let Some(inner) = &self.inner else {
            return;
        };
        if !cacheable_shape(&planned.plan) {
            return;
        }
        let current = catalog
            .contents_read(&planned.plan, &path.domain, &path.layer)
            .await;
        if !matches!(current, Ok(Some(_))) {
            return;
        }
        let key = PlanKey {
            principal: principal.clone(),
            path: path.clone(),
            sql: sql.to_string(),
        };
        inner.plans.insert(key, Arc::clone(planned));
    }

    pub fn stats(&self) -> PlanStats {
        let Some(inner) = &self.inner else {
            return PlanStats::default();
        };
        inner.plans.run_pending_tasks();
        PlanStats {
            hits: inner.hits.load(Ordering::Relaxed),
            stale: inner.stale.load(Ordering::Relaxed),
            entries: inner.plans.entry_count(),
        }
    }
}
