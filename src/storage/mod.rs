//! The warehouse and the table formats behind one trait.
//!
//! [`TableStore`] is what the catalog and the pipeline see: open the latest committed version of a
//! dataset, or replace its contents in one atomic commit. Delta Lake tables ([`DeltaStore`]) live
//! under `<warehouse>/<domain>/<layer>/<dataset>/`; read-only sources are files registered in
//! place ([`FileStore`]) or tables other engines write: Delta ([`DeltaStore::source`]) and
//! Apache Iceberg ([`IcebergStore`]).

mod delta;
mod files;
mod iceberg;

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use datafusion::catalog::TableProvider;
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;

pub use delta::DeltaStore;
pub use files::FileStore;
pub use iceberg::{CATALOG_NAME as ICEBERG_CATALOG_NAME, IcebergCatalog, IcebergStore};

use crate::error::{Error, Result};
use crate::spec::{Dataset, DatasetKind, DatasetName, Mesh, SourceFormat, TableFormatName};

/// A committed version of a dataset, ready to scan.
#[derive(Debug, Clone)]
pub struct TableSnapshot {
    pub provider: Arc<dyn TableProvider>,
    /// Table version (Delta); `None` for formats without versions.
    pub version: Option<u64>,
    /// Time of the last commit, when the format records it.
    pub last_modified: Option<DateTime<Utc>>,
    /// What identifies this version's contents: a hash of the Delta version and its commit
    /// time, or for files of their names, sizes and modification times. `None` when nothing
    /// does (a view).
    pub identity: Option<u64>,
}

/// One committed version of a table, as its history lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// Delta's version; Iceberg's sequence number.
    pub version: u64,
    /// Iceberg's snapshot id (`VERSION AS OF` takes it too).
    pub snapshot_id: Option<i64>,
    pub committed_at: Option<DateTime<Utc>>,
    /// What the commit did (`WRITE`, `MERGE`, `overwrite`, `append`...), as the format names it.
    pub operation: Option<String>,
    /// Rows the commit added, when the format recorded them.
    pub rows_added: Option<u64>,
    /// The meshql run that wrote it, if one did.
    pub run_id: Option<String>,
}

/// Which version a time-travel read wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AsOf {
    /// `VERSION AS OF n`: a Delta version, an Iceberg sequence number or snapshot id.
    Version(i64),
    /// `TIMESTAMP AS OF t`: the version current at `t` (the last committed at or before it).
    Timestamp(DateTime<Utc>),
}

impl std::fmt::Display for AsOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AsOf::Version(v) => write!(f, "version {v}"),
            AsOf::Timestamp(t) => write!(f, "{}", t.format("%Y-%m-%d %H:%M:%S%.f UTC")),
        }
    }
}

/// The version of `versions` (oldest first) that `as_of` names, if one does.
pub fn pick_version<'a>(versions: &'a [VersionInfo], as_of: &AsOf) -> Option<&'a VersionInfo> {
    match as_of {
        AsOf::Version(v) => versions
            .iter()
            .find(|i| i.snapshot_id == Some(*v))
            .or_else(|| {
                let mut matching = versions.iter().filter(|i| i.version as i64 == *v);
                let first = matching.next();
                // Iceberg v1 tables number every snapshot 0: only their ids tell them apart.
                first.filter(|_| matching.next().is_none())
            }),
        AsOf::Timestamp(t) => versions
            .iter()
            .filter(|i| i.committed_at.is_some_and(|c| c <= *t))
            .max_by_key(|i| (i.committed_at, i.version)),
    }
}

/// The NotFound answer to a version `table` does not have, naming those it has.
pub fn missing_version(table: &str, versions: &[VersionInfo], as_of: &AsOf) -> Error {
    let wanted = match as_of {
        AsOf::Version(_) => as_of.to_string(),
        AsOf::Timestamp(_) => format!("version at or before {as_of}"),
    };
    Error::not_found(format!(
        "`{table}` has no {wanted}; {}",
        describe_versions(versions)
    ))
}

/// "its versions are 0 (2026-11-30 10:00:00 UTC) to 7 (...)", or every one when few.
fn describe_versions(versions: &[VersionInfo]) -> String {
    let one = |i: &VersionInfo| match (i.snapshot_id, i.committed_at) {
        (Some(id), Some(t)) => format!(
            "{} (snapshot {id}, {})",
            i.version,
            t.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        (None, Some(t)) => format!("{} ({})", i.version, t.format("%Y-%m-%d %H:%M:%S UTC")),
        (Some(id), None) => format!("{} (snapshot {id})", i.version),
        (None, None) => i.version.to_string(),
    };
    match versions {
        [] => "it has no committed version".to_string(),
        [only] => format!("its only version is {}", one(only)),
        few if few.len() <= 5 => format!(
            "its versions are {}",
            few.iter().map(one).collect::<Vec<_>>().join(", ")
        ),
        many => format!(
            "its {} versions run from {} to {}",
            many.len(),
            one(&many[0]),
            one(&many[many.len() - 1])
        ),
    }
}

/// The answer to time travel on what keeps no versions (files, views).
pub fn no_versions(location: &str, format: &str) -> Error {
    Error::user(format!(
        "`{location}` is {format} and keeps no versions; time travel (`VERSION AS OF`, \
         `TIMESTAMP AS OF`) reads Delta and Iceberg tables"
    ))
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

    /// Writes the rows of `plan` in one atomic commit — replacing the contents, appending to
    /// them or merging into them: readers see the previous version or the new one, never a mix.
    /// The plan is streamed, never collected. A table that does not exist yet is created.
    /// `metadata` is recorded in the commit (see [`TableStore::last_commit_metadata`]).
    async fn write(
        &self,
        plan: LogicalPlan,
        session: &SessionState,
        mode: &WriteMode,
        metadata: CommitMetadata,
    ) -> Result<Published>;

    /// What the latest commit recorded with [`TableStore::write`]; `None` when nothing was ever
    /// published (or the format keeps no commit metadata).
    async fn last_commit_metadata(&self) -> Result<Option<CommitMetadata>>;

    /// The table's committed versions that can still be read, oldest first (empty for formats
    /// without versions, and before a first publish).
    async fn versions(&self) -> Result<Vec<VersionInfo>> {
        Ok(Vec::new())
    }

    /// Opens the version `as_of` names: what was committed then, read like the latest version
    /// (the same provider kind, statistics and pushdown); `None` when the table has no such
    /// version (see [`missing_version`]).
    async fn open_as_of(
        &self,
        session: &SessionState,
        as_of: &AsOf,
    ) -> Result<Option<TableSnapshot>> {
        let _ = (session, as_of);
        Err(no_versions(
            self.location(),
            &format!("a {} source", self.format()),
        ))
    }
}

/// Key/values recorded in a commit beside the rows (in Delta's `commitInfo`): the run, the
/// versions of the inputs, the definition's fingerprint.
pub type CommitMetadata = std::collections::BTreeMap<String, serde_json::Value>;

/// How a write treats the rows already in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteMode {
    /// The new rows replace the table's contents (and schema).
    Replace,
    /// The new rows are added; their schema must match the table's.
    Append,
    /// Rows whose key matches a row of the table update it; the others are inserted. The key
    /// must be unique among the new rows (checked by the caller).
    Merge { keys: Vec<String> },
}

/// The answer to a write into a source.
fn read_only_source(location: &str) -> Error {
    Error::permission(format!(
        "`{location}` is a read-only source; only warehouse tables can be published"
    ))
}

/// The answer to a first write of `format` into a folder already holding a table of another
/// format (a dataset whose `@format` changed): neither table is touched.
fn other_format(location: &str, held: &str, format: &str) -> Error {
    Error::conflict(format!(
        "`{location}` already holds {held} table, and the dataset is now stored as {format}; \
         a table is not converted in place: keep its format, or remove the folder to rebuild \
         the dataset in the new one"
    ))
}

/// The storage root of a mesh and the layout of datasets in it.
#[derive(Debug, Clone)]
pub struct Warehouse {
    root: String,
    /// The embedded Iceberg catalog, opened when a first Iceberg table is.
    iceberg: Arc<IcebergCatalog>,
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
        let iceberg = Arc::new(IcebergCatalog::new(&root));
        Ok(Self { root, iceberg })
    }

    /// The warehouse of `mesh`, with the Iceberg catalog it configures.
    pub fn for_mesh(mesh: &Mesh) -> Result<Self> {
        let mut warehouse = Self::new(mesh.warehouse.clone())?;
        warehouse.iceberg = Arc::new(IcebergCatalog::for_settings(
            &warehouse.root,
            &mesh.iceberg_catalog,
        )?);
        Ok(warehouse)
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

    /// `<warehouse>/<domain>/<layer>/<dataset>/` as a Delta store.
    pub fn delta_store(&self, name: &DatasetName) -> Result<Arc<dyn TableStore>> {
        Ok(Arc::new(DeltaStore::new(&self.table_url(name))?))
    }

    /// `<warehouse>/<domain>/<layer>/<dataset>/` as a table of `format`.
    pub fn table_store(
        &self,
        name: &DatasetName,
        format: TableFormatName,
    ) -> Result<Arc<dyn TableStore>> {
        match format {
            TableFormatName::Delta => self.delta_store(name),
            TableFormatName::Iceberg => Ok(Arc::new(IcebergStore::warehouse(
                Arc::clone(&self.iceberg),
                name,
                &self.table_url(name),
            )?)),
        }
    }

    /// `<warehouse>/_mesh/<schema>/<table>/`: a table of the `mesh` system catalog.
    pub fn system_store(&self, name: &DatasetName) -> Result<Arc<dyn TableStore>> {
        let url = format!("{}/_mesh/{}/{}/", self.root, name.layer, name.dataset);
        Ok(Arc::new(DeltaStore::new(&url)?))
    }

    /// `<warehouse>/_mesh/staging/<domain>/<layer>/<dataset>/<run>/`: where a product's new
    /// rows wait for their audit, invisible to readers. Each run stages apart, so concurrent
    /// runs of one product never share (or delete) each other's staged rows.
    pub fn staging_store(&self, name: &DatasetName, run: &str) -> Result<Arc<dyn TableStore>> {
        Ok(Arc::new(DeltaStore::new(&self.staging_url(name, run))?))
    }

    pub fn staging_url(&self, name: &DatasetName, run: &str) -> String {
        format!("{}{run}/", self.staging_root(name))
    }

    /// The folder holding the staging tables of every run of `name`.
    pub fn staging_root(&self, name: &DatasetName) -> String {
        format!(
            "{}/_mesh/staging/{}/{}/{}/",
            self.root, name.domain, name.layer, name.dataset
        )
    }

    /// Tables found in the warehouse folder of a local warehouse, with their format:
    /// `<domain>/<layer>/<name>/` holding a `_delta_log/` (Delta: e.g. raw tables created by
    /// ingest) or a `metadata/` folder with an Iceberg metadata file (tables a job wrote as
    /// Iceberg outside a mesh). Object-store warehouses list nothing here.
    pub fn discover(&self) -> Vec<(DatasetName, TableFormatName)> {
        let Some(root) = self.root.strip_prefix("file://") else {
            return Vec::new();
        };
        let mut found = Vec::new();
        let dirs = |p: &std::path::Path| -> Vec<std::path::PathBuf> {
            let mut v: Vec<_> = std::fs::read_dir(p)
                .map(|rd| {
                    rd.filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.is_dir())
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        };
        let name_of = |p: &std::path::Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        for domain in dirs(std::path::Path::new(root)) {
            for layer in dirs(&domain) {
                for table in dirs(&layer) {
                    let name = DatasetName::new(name_of(&domain), name_of(&layer), name_of(&table));
                    let valid = [&name.domain, &name.layer, &name.dataset]
                        .iter()
                        .all(|n| crate::spec::is_valid_name(n));
                    // `_mesh/` (system tables) and stray folders are not datasets.
                    if !valid {
                        continue;
                    }
                    if table.join("_delta_log").is_dir() {
                        found.push((name, TableFormatName::Delta));
                    } else if iceberg::is_table_folder(&table) {
                        found.push((name, TableFormatName::Iceberg));
                    }
                }
            }
        }
        found
    }

    /// The store holding `dataset`: a table of `format` in the warehouse for transforms and
    /// jobs, the files or the other engine's table for sources.
    pub fn store_for(
        &self,
        dataset: &Dataset,
        format: TableFormatName,
    ) -> Result<Arc<dyn TableStore>> {
        Ok(match &dataset.kind {
            DatasetKind::Transform(_) | DatasetKind::Job(_) => {
                self.table_store(&dataset.name, format)?
            }
            DatasetKind::Source(source) => match source.format {
                SourceFormat::Delta => Arc::new(DeltaStore::source(&source.location)?),
                SourceFormat::Iceberg => match &source.catalog {
                    Some(catalog) => Arc::new(IcebergStore::entry(
                        &source.location,
                        Arc::new(IcebergCatalog::of_source(catalog)?),
                    )?),
                    None => Arc::new(IcebergStore::source(&dataset.name, &source.location)?),
                },
                _ => Arc::new(FileStore::new(source.clone())?),
            },
        })
    }
}
