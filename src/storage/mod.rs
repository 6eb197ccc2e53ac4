//! The warehouse and the table formats behind one trait.
//!
//! [`TableStore`] is what the catalog and the pipeline see: open the latest committed version of a
//! dataset, or replace its contents in one atomic commit. Delta Lake tables ([`DeltaStore`]) live
//! under `<warehouse>/<domain>/<layer>/<dataset>/`; read-only sources ([`FileStore`]) are files
//! registered in place. Iceberg plugs in as another implementation.

mod delta;
mod files;

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use datafusion::catalog::TableProvider;
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;

pub use delta::DeltaStore;
pub use files::FileStore;

use crate::error::{Error, Result};
use crate::spec::{Dataset, DatasetKind, DatasetName, Mesh};

/// A committed version of a dataset, ready to scan.
#[derive(Debug, Clone)]
pub struct TableSnapshot {
    pub provider: Arc<dyn TableProvider>,
    /// Table version (Delta); `None` for formats without versions.
    pub version: Option<u64>,
    /// Time of the last commit, when the format records it.
    pub last_modified: Option<DateTime<Utc>>,
}

/// The result of publishing a new version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub version: u64,
    pub rows: u64,
}

/// Storage of one dataset.
#[async_trait]
pub trait TableStore: Send + Sync + Debug {
    /// Format name shown to users (`delta`, `csv`, ...).
    fn format(&self) -> &'static str;

    /// Where the data lives, as a URL.
    fn location(&self) -> &str;

    /// Whether pipelines may publish into it.
    fn writable(&self) -> bool;

    /// Opens the latest committed version; `None` when nothing was ever published.
    async fn open(&self, session: &SessionState) -> Result<Option<TableSnapshot>>;

    /// Replaces the whole contents with the rows of `plan` in one atomic commit: readers see the
    /// previous version or the new one, never a mix. The plan is streamed, never collected.
    async fn replace(&self, plan: LogicalPlan, session: &SessionState) -> Result<Published>;
}

/// The storage root of a mesh and the layout of datasets in it.
#[derive(Debug, Clone)]
pub struct Warehouse {
    root: String,
}

impl Warehouse {
    pub fn new(root: impl Into<String>) -> Result<Self> {
        let root = root.into().trim_end_matches('/').to_string();
        let scheme = root.split_once("://").map(|(s, _)| s).unwrap_or("");
        match scheme {
            "file" => {}
            "s3" | "s3a" => {
                #[cfg(feature = "s3")]
                deltalake::aws::register_handlers(None);
                #[cfg(not(feature = "s3"))]
                return Err(Error::user(format!(
                    "warehouse `{root}` is on S3, but this meshql was built without S3 support; \
                     rebuild with `cargo build --release --features s3`"
                )));
            }
            other => {
                return Err(Error::user(format!(
                    "unsupported warehouse URL scheme `{other}`"
                )));
            }
        }
        Ok(Self { root })
    }

    pub fn for_mesh(mesh: &Mesh) -> Result<Self> {
        Self::new(mesh.warehouse.clone())
    }

    /// The warehouse URL.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// `<warehouse>/<domain>/<layer>/<dataset>/`.
    pub fn table_url(&self, name: &DatasetName) -> String {
        format!(
            "{}/{}/{}/{}/",
            self.root, name.domain, name.layer, name.dataset
        )
    }

    /// The store holding `dataset`: a Delta table for transforms, the files for sources.
    pub fn store_for(&self, dataset: &Dataset) -> Result<Arc<dyn TableStore>> {
        Ok(match &dataset.kind {
            DatasetKind::Transform(_) => Arc::new(DeltaStore::new(&self.table_url(&dataset.name))?),
            DatasetKind::Source(source) => Arc::new(FileStore::new(source.clone())?),
        })
    }
}
