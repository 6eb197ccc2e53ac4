//! Apache Iceberg tables through iceberg-rust: warehouse tables in the warehouse's catalog
//! ([`IcebergCatalog`]: the embedded SQL catalog or a REST catalog), written with the same guarantees as Delta ([`write`]), and read-only
//! sources another engine writes (PyIceberg, Spark, Trino, Flink), found by their folder, by
//! one metadata file, or by their entry in that engine's catalog (SQL or REST).
//!
//! A source's folder is read at its newest metadata file: `metadata/version-hint.text` names it for
//! tables of Hadoop catalogs; otherwise the file with the highest version number
//! (`<NNNNN>-<uuid>.metadata.json` as catalogs write them, `v<N>.metadata.json` as Hadoop tables
//! do). Every open looks again, so a commit by the other engine is served within the catalog's
//! staleness without a restart.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use datafusion::arrow::datatypes::{DataType, Field, Schema as ArrowSchema};
use datafusion::catalog::TableProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use futures::TryStreamExt;
use iceberg::TableIdent;
use iceberg::arrow::{arrow_schema_to_schema_auto_assign_ids, schema_to_arrow_schema};
use iceberg::io::FileIO;
use iceberg::spec::Operation;
use iceberg::table::StaticTable;
use iceberg_datafusion::IcebergStaticTableProvider;
use url::Url;

mod catalog;
mod metadata;
mod rest;
mod write;

pub use catalog::{CATALOG_NAME, IcebergCatalog};

use super::{AsOf, CommitMetadata, Published, TableSnapshot, TableStore, VersionInfo, WriteMode};
use crate::error::{Error, Result};
use crate::spec::DatasetName;
pub use metadata::is_table_folder;
use metadata::{METADATA_SUFFIX, file_name, hinted_metadata, newest_metadata};

/// Merges started again after other writers' commits before one gives up.
const MERGE_ATTEMPTS: usize = 8;

/// What commit metadata keys are prefixed with in a snapshot's summary.
const METADATA_PREFIX: &str = "meshql.";

/// An Iceberg table: a warehouse table of the embedded catalog, or a source.
#[derive(Debug, Clone)]
pub struct IcebergStore {
    location: String,
    ident: TableIdent,
    place: Place,
}

#[derive(Debug, Clone)]
enum Place {
    /// Registered in the warehouse's catalog, created by its first publish.
    Warehouse { catalog: Arc<IcebergCatalog> },
    /// Read-only: the table's folder, or the one metadata file to read.
    Source { path: PathBuf },
    /// Read-only: a table of another engine's catalog, at the snapshot the catalog names.
    Entry { catalog: Arc<IcebergCatalog> },
}

impl IcebergStore {
    /// The warehouse table `name` at `location` (`<warehouse>/<domain>/<layer>/<dataset>`).
    pub fn warehouse(
        catalog: Arc<IcebergCatalog>,
        name: &DatasetName,
        location: &str,
    ) -> Result<Self> {
        Ok(Self {
            location: location.trim_end_matches('/').to_string(),
            ident: catalog::table_ident(name)?,
            place: Place::Warehouse { catalog },
        })
    }

    /// The source `name` over the table at `location` (a `file://` URL of its folder or of a
    /// metadata file).
    pub fn source(name: &DatasetName, location: &str) -> Result<Self> {
        let invalid =
            |why: &str| Error::user(format!("invalid Iceberg location `{location}`: {why}"));
        let url = Url::parse(location).map_err(|e| invalid(&e.to_string()))?;
        if url.scheme() != "file" {
            return Err(invalid(
                "only tables on the local file system (`file://`) can be read by this build",
            ));
        }
        let path = url
            .to_file_path()
            .map_err(|()| invalid("not a file path"))?;
        Ok(Self {
            location: location.to_string(),
            ident: catalog::table_ident(name)?,
            place: Place::Source { path },
        })
    }

    /// The source table `table` (`namespace.table`) of `catalog`.
    pub fn entry(table: &str, catalog: Arc<IcebergCatalog>) -> Result<Self> {
        let parts: Vec<&str> = table.split('.').collect();
        let Some((name, namespace)) = parts.split_last().filter(|(_, ns)| !ns.is_empty()) else {
            return Err(Error::user(format!(
                "`{table}` is not an Iceberg table name (`namespace.table`)"
            )));
        };
        Ok(Self {
            location: format!("{}#{table}", catalog.describe()),
            ident: TableIdent::new(
                iceberg::NamespaceIdent::from_strs(namespace)?,
                name.to_string(),
            ),
            place: Place::Entry { catalog },
        })
    }

    /// The metadata file describing the source table at `path` as it is now.
    fn current_metadata(&self, path: &Path) -> Result<PathBuf> {
        if path.is_file() {
            return match file_name(path).ends_with(METADATA_SUFFIX) {
                true => Ok(path.to_path_buf()),
                false => Err(Error::user(format!(
                    "source `{}` is not an Iceberg metadata file (`*{METADATA_SUFFIX}`)",
                    self.location
                ))),
            };
        }
        let folder = path.join("metadata");
        if !folder.is_dir() {
            return Err(Error::not_found(format!(
                "source `{}` is not an Iceberg table: it has no `metadata/` folder",
                self.location
            )));
        }
        if let Some(hinted) = hinted_metadata(&folder) {
            return Ok(hinted);
        }
        newest_metadata(&folder)?.ok_or_else(|| {
            Error::not_found(format!(
                "source `{}` is not an Iceberg table: `{}` holds no `*{METADATA_SUFFIX}` file",
                self.location,
                folder.display()
            ))
        })
    }

    /// One of meshql's own tables as the catalog has it. A table folder the catalog does not
    /// know — the catalog file was lost or replaced — is registered again at its newest metadata
    /// file, so nothing published is lost (a write killed between its metadata file and its
    /// commit becomes visible then: the one case a recovery can surface rows never committed).
    async fn load_own(&self, catalog: &IcebergCatalog) -> Result<Option<iceberg::table::Table>> {
        if let Some(table) = catalog.load(&self.ident).await? {
            return Ok(Some(table));
        }
        let Some(folder) = self
            .location
            .strip_prefix("file://")
            .map(|p| Path::new(p).join("metadata"))
        else {
            return Ok(None);
        };
        if !folder.is_dir() {
            return Ok(None);
        }
        let Some(newest) = newest_metadata(&folder)? else {
            return Ok(None);
        };
        let newest = format!("file://{}", newest.display());
        tracing::warn!(table = %self.ident, metadata = %newest,
            "the Iceberg catalog has no entry for a table in the warehouse; registering it again");
        catalog.register(&self.ident, &newest).await.map(Some)
    }
}

impl IcebergStore {
    /// The table as its catalog (or, for a source, its newest metadata file) has it now; `None`
    /// for a warehouse table not created yet.
    async fn table(&self) -> Result<Option<iceberg::table::Table>> {
        match &self.place {
            Place::Warehouse { catalog } => self.load_own(catalog).await,
            Place::Source { path } => {
                let file = self.current_metadata(path)?.display().to_string();
                let table = StaticTable::from_metadata_file(
                    &file,
                    self.ident.clone(),
                    FileIO::new_with_fs(),
                )
                .await
                .map_err(|e| Error::from(e).with_context("metadata", &file))?
                .into_table();
                Ok(Some(table))
            }
            Place::Entry { catalog } => match catalog.load(&self.ident).await? {
                Some(table) => Ok(Some(table)),
                None => Err(Error::not_found(format!(
                    "the Iceberg catalog `{}` has no table `{}`",
                    catalog.describe(),
                    self.ident
                ))),
            },
        }
    }

    /// Merges the new rows in `files` (written, not committed) into `table` on `keys`: one
    /// `overwrite` snapshot holding the current rows no new row shares a key with, rewritten,
    /// and the new files. Copy-on-write: the whole table is rewritten, and a concurrent commit
    /// makes it start again from that commit (the new rows are written once).
    async fn merge(
        &self,
        catalog: &IcebergCatalog,
        mut table: iceberg::table::Table,
        files: Vec<iceberg::spec::DataFile>,
        keys: &[String],
        properties: std::collections::HashMap<String, String>,
        session: &SessionState,
    ) -> Result<i64> {
        use datafusion::datasource::provider_as_source;
        use datafusion::logical_expr::{JoinType, LogicalPlanBuilder};
        for _ in 0..MERGE_ATTEMPTS {
            let base = table.metadata().current_snapshot().cloned();
            let schema = table.metadata().current_schema().clone();
            let arrow = write::without_field_ids(&schema_to_arrow_schema(&schema)?);
            let incoming: Vec<&str> = files.iter().map(|f| f.file_path()).collect();
            let incoming = listing(&incoming, &arrow, session)?;
            let mut kept = Vec::new();
            if let Some(base) = &base
                && let Some(current) = data_files_of(&table, base, session).await?
            {
                // Current rows whose key no new row has.
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                let plan = LogicalPlanBuilder::scan(
                    "target",
                    provider_as_source(Arc::new(current)),
                    None,
                )?
                .join(
                    LogicalPlanBuilder::scan(
                        "source",
                        provider_as_source(Arc::new(incoming)),
                        None,
                    )?
                    .build()?,
                    JoinType::LeftAnti,
                    (
                        keys.iter()
                            .map(|k| format!("target.{}", quoted(k)))
                            .collect::<Vec<_>>(),
                        keys.iter()
                            .map(|k| format!("source.{}", quoted(k)))
                            .collect::<Vec<_>>(),
                    ),
                    None,
                )?
                .build()?;
                kept = write::write_files(&table, &schema, plan, session).await?.0;
            }
            let commit = write::Commit {
                operation: Operation::Overwrite,
                files: kept.into_iter().chain(files.iter().cloned()).collect(),
                based_on: Some(base.map(|b| b.snapshot_id())),
                schema: None,
                properties: properties.clone(),
            };
            if let Some(sequence) = write::commit(catalog, &self.ident, table, &commit).await? {
                return Ok(sequence);
            }
            tracing::debug!(table = %self.ident, "another commit landed during a merge; merging again");
            table = catalog.load(&self.ident).await?.ok_or_else(|| {
                Error::conflict(format!(
                    "table `{}` was dropped during the merge",
                    self.ident
                ))
            })?;
        }
        Err(Error::conflict(format!(
            "table `{}` kept changing under {MERGE_ATTEMPTS} merges; try again",
            self.ident
        )))
    }

    /// The snapshot `id` of `table`, ready to scan.
    async fn snapshot_of(
        &self,
        table: iceberg::table::Table,
        id: i64,
        session: &SessionState,
    ) -> Result<TableSnapshot> {
        let shown = table.metadata_location().unwrap_or_default().to_string();
        let metadata = table.metadata();
        let snapshot = metadata.snapshot_by_id(id).ok_or_else(|| {
            Error::not_found(format!(
                "`{}` has no snapshot {id} ({shown})",
                self.location
            ))
        })?;
        let current = metadata.current_snapshot_id() == Some(id);
        let last_modified = match current {
            true => DateTime::<Utc>::from_timestamp_millis(metadata.last_updated_ms()),
            false => DateTime::<Utc>::from_timestamp_millis(snapshot.timestamp_ms()),
        };
        // The metadata file and the snapshot read: each commit writes a new file.
        let identity = {
            let mut hasher = std::hash::DefaultHasher::new();
            (&shown, id).hash(&mut hasher);
            hasher.finish()
        };
        let version = Some(snapshot.sequence_number().max(0) as u64);
        let own = matches!(self.place, Place::Warehouse { .. });
        let listing = match own {
            true => data_files_of(&table, snapshot, session).await?,
            false => None,
        };
        let provider: Arc<dyn TableProvider> = match listing {
            Some(listing) => Arc::new(listing),
            None => Arc::new(
                IcebergStaticTableProvider::try_new_from_table_snapshot(table, id)
                    .await
                    .map_err(|e| Error::from(e).with_context("metadata", &shown))?,
            ),
        };
        Ok(TableSnapshot {
            provider,
            version,
            last_modified,
            identity: Some(identity),
        })
    }
}

/// The current snapshot of one of meshql's own tables as a DataFusion listing of its data files:
/// scanned in parallel partitions, with Parquet statistics for the planner, page-index and
/// row-group pruning — what the Iceberg scan of iceberg-datafusion 0.10 (one partition, no
/// statistics) does not do. Valid because meshql's tables have no delete files, no partitions
/// and, per snapshot, files written with that snapshot's schema (a full refresh and a merge
/// rewrite every file; an append keeps the columns). `None` (read through iceberg-datafusion instead) when
/// the snapshot has no data files or holds delete files another engine wrote.
async fn data_files_of(
    table: &iceberg::table::Table,
    snapshot: &iceberg::spec::SnapshotRef,
    session: &SessionState,
) -> Result<Option<ListingTable>> {
    let tasks: Vec<_> = table
        .scan()
        .snapshot_id(snapshot.snapshot_id())
        .build()?
        .plan_files()
        .await?
        .try_collect()
        .await?;
    if tasks.is_empty() || tasks.iter().any(|t| !t.deletes.is_empty()) {
        return Ok(None);
    }
    let mut paths: Vec<&str> = tasks.iter().map(|t| t.data_file_path.as_str()).collect();
    paths.sort_unstable();
    paths.dedup();
    let schema = match snapshot.schema_id() {
        Some(id) => table.metadata().schema_by_id(id).ok_or_else(|| {
            Error::not_found(format!(
                "the Iceberg table `{}` has no schema {id}, which its snapshot {} was written with",
                table.identifier(),
                snapshot.snapshot_id()
            ))
        })?,
        None => table.metadata().current_schema(),
    };
    let arrow = write::without_field_ids(&schema_to_arrow_schema(schema)?);
    listing(&paths, &arrow, session).map(Some)
}

/// The Parquet data files at `paths` as one DataFusion table of `schema`, text and binary read
/// as views (as the Parquet and Delta scans read them: no copy).
fn listing(paths: &[&str], schema: &ArrowSchema, session: &SessionState) -> Result<ListingTable> {
    let urls = paths
        .iter()
        .map(ListingTableUrl::parse)
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Utf8View),
            DataType::LargeBinary => f.as_ref().clone().with_data_type(DataType::BinaryView),
            _ => f.as_ref().clone(),
        })
        .collect();
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension("")
        .with_session_config_options(session.config());
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(Arc::new(ArrowSchema::new(fields)));
    Ok(ListingTable::try_new(config)?)
}

/// `name` as a SQL identifier (quoted: column names keep their case).
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[async_trait]
impl TableStore for IcebergStore {
    fn format(&self) -> &'static str {
        "iceberg"
    }

    fn location(&self) -> &str {
        &self.location
    }

    fn writable(&self) -> bool {
        matches!(self.place, Place::Warehouse { .. })
    }

    async fn open(&self, session: &SessionState) -> Result<Option<TableSnapshot>> {
        let Some(table) = self.table().await? else {
            return Ok(None);
        };
        let current = table.metadata().current_snapshot().map(|s| s.snapshot_id());
        match (current, &self.place) {
            (Some(id), _) => self.snapshot_of(table, id, session).await.map(Some),
            // Created by a first publish that has not committed yet: nothing to read.
            (None, Place::Warehouse { .. }) => Ok(None),
            // A table another engine created without rows yet reads as empty.
            (None, Place::Source { .. } | Place::Entry { .. }) => {
                let shown = table.metadata_location().unwrap_or_default().to_string();
                let provider = IcebergStaticTableProvider::try_new_from_table(table)
                    .await
                    .map_err(|e| Error::from(e).with_context("metadata", &shown))?;
                Ok(Some(TableSnapshot {
                    provider: Arc::new(provider),
                    version: None,
                    last_modified: None,
                    identity: None,
                }))
            }
        }
    }

    async fn versions(&self) -> Result<Vec<VersionInfo>> {
        let Some(table) = self.table().await? else {
            return Ok(Vec::new());
        };
        let mut versions: Vec<VersionInfo> = table
            .metadata()
            .snapshots()
            .map(|s| {
                let summary = s.summary();
                let property = |key: &str| summary.additional_properties.get(key);
                VersionInfo {
                    version: s.sequence_number().max(0) as u64,
                    snapshot_id: Some(s.snapshot_id()),
                    committed_at: DateTime::<Utc>::from_timestamp_millis(s.timestamp_ms()),
                    operation: Some(summary.operation.as_str().to_string()),
                    rows_added: property("added-records").and_then(|v| v.parse().ok()),
                    run_id: property(&format!("{METADATA_PREFIX}run_id"))
                        .map(|v| serde_json::from_str::<String>(v).unwrap_or_else(|_| v.clone())),
                }
            })
            .collect();
        versions.sort_by_key(|v| (v.version, v.committed_at, v.snapshot_id));
        Ok(versions)
    }

    async fn open_as_of(
        &self,
        session: &SessionState,
        as_of: &AsOf,
    ) -> Result<Option<TableSnapshot>> {
        let versions = self.versions().await?;
        let Some(id) = super::pick_version(&versions, as_of).and_then(|v| v.snapshot_id) else {
            return Ok(None);
        };
        match self.table().await? {
            Some(table) => self.snapshot_of(table, id, session).await.map(Some),
            None => Ok(None),
        }
    }

    async fn write(
        &self,
        plan: LogicalPlan,
        session: &SessionState,
        mode: &WriteMode,
        metadata: CommitMetadata,
    ) -> Result<Published> {
        let Place::Warehouse { catalog } = &self.place else {
            return Err(super::read_only_source(&self.location));
        };
        let operation = match mode {
            WriteMode::Replace => Operation::Overwrite,
            WriteMode::Append | WriteMode::Merge { .. } => Operation::Append,
        };
        let storable = write::storable_schema(plan.schema().as_arrow())?;
        let table = match self.load_own(catalog).await? {
            Some(table) => table,
            None => {
                let folder = self.location.strip_prefix("file://").map(Path::new);
                if folder.is_some_and(|f| f.join("_delta_log").is_dir()) {
                    return Err(super::other_format(&self.location, "a Delta", "iceberg"));
                }
                let schema = arrow_schema_to_schema_auto_assign_ids(&storable)?;
                catalog.create(&self.ident, schema, &self.location).await?
            }
        };
        let current = table.metadata().current_schema().clone();
        let new_schema = if write::same_columns(&storable, &schema_to_arrow_schema(&current)?) {
            None
        } else if operation == Operation::Overwrite {
            Some(write::fresh_schema(
                &storable,
                table.metadata().last_column_id(),
            )?)
        } else {
            return Err(Error::user(format!(
                "the new rows' columns differ from those of `{}`; an append or a merge keeps the \
                 table's columns (a full refresh replaces them)",
                self.ident
            )));
        };
        let layout = new_schema.clone().map_or(current, Arc::new);
        let (files, rows) = write::write_files(&table, &layout, plan, session).await?;
        let properties = metadata
            .into_iter()
            .map(|(k, v)| (format!("{METADATA_PREFIX}{k}"), v.to_string()))
            .collect();
        let sequence = match mode {
            WriteMode::Merge { keys } if table.metadata().current_snapshot().is_some() => {
                self.merge(catalog, table, files, keys, properties, session)
                    .await?
            }
            // A first merge only inserts.
            _ => {
                let commit = write::Commit {
                    operation,
                    files,
                    based_on: None,
                    schema: new_schema,
                    properties,
                };
                write::commit(catalog, &self.ident, table, &commit)
                    .await?
                    .ok_or_else(|| {
                        Error::internal("an Iceberg commit without a base was refused")
                    })?
            }
        };
        Ok(Published {
            version: sequence.max(0) as u64,
            rows,
        })
    }

    async fn last_commit_metadata(&self) -> Result<Option<CommitMetadata>> {
        let Place::Warehouse { catalog } = &self.place else {
            return Ok(None);
        };
        let Some(table) = self.load_own(catalog).await? else {
            return Ok(None);
        };
        let Some(snapshot) = table.metadata().current_snapshot() else {
            return Ok(None);
        };
        Ok(Some(
            snapshot
                .summary()
                .additional_properties
                .iter()
                .filter_map(|(k, v)| {
                    let key = k.strip_prefix(METADATA_PREFIX)?;
                    let value =
                        serde_json::from_str(v).unwrap_or(serde_json::Value::String(v.clone()));
                    Some((key.to_string(), value))
                })
                .collect(),
        ))
    }
}
