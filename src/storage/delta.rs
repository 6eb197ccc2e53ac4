//! Delta Lake tables through delta-rs.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use datafusion::common::Column;
use datafusion::execution::SessionState;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::DataFrame;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use url::Url;

use super::{AsOf, CommitMetadata, Published, TableSnapshot, TableStore, VersionInfo, WriteMode};
use crate::error::{Error, Result};

/// A Delta table at a URL: a warehouse table, created by its first publish, or a read-only
/// source another engine writes.
#[derive(Debug, Clone)]
pub struct DeltaStore {
    url: Url,
    location: String,
    /// A source: never written, and a folder without a Delta log is an error, not "empty".
    source: bool,
}

impl DeltaStore {
    pub fn new(location: &str) -> Result<Self> {
        let url = Url::parse(location)
            .map_err(|e| Error::user(format!("invalid table location `{location}`: {e}")))?;
        Ok(Self {
            url,
            location: location.to_string(),
            source: false,
        })
    }

    /// A Delta table written elsewhere, served read-only (a `sources` entry of `format: delta`).
    pub fn source(location: &str) -> Result<Self> {
        Ok(Self {
            source: true,
            ..Self::new(location)?
        })
    }

    /// Loads the latest version; `None` if no version was ever committed.
    async fn load(&self) -> Result<Option<DeltaTable>> {
        let not_a_table = || -> Result<Option<DeltaTable>> {
            match self.source {
                true => Err(Error::not_found(format!(
                    "source `{}` is not a Delta table: it has no `_delta_log/`",
                    self.location
                ))),
                false => Ok(None),
            }
        };
        if self.url.scheme() == "file" {
            let Ok(path) = self.url.to_file_path() else {
                return Err(Error::user(format!("invalid file URL `{}`", self.url)));
            };
            if !path.join("_delta_log").exists() {
                return not_a_table();
            }
        }
        match deltalake::open_table(self.url.clone()).await {
            Ok(t) => Ok(Some(t)),
            Err(DeltaTableError::NotATable(_)) => not_a_table(),
            Err(e) => Err(Error::from(e).with_context("table", &self.location)),
        }
    }
}

impl DeltaStore {
    /// `table` (at the version it was loaded at) ready to scan.
    async fn snapshot_of(
        &self,
        table: DeltaTable,
        session: &SessionState,
    ) -> Result<TableSnapshot> {
        // Scans resolve the table's object store through the session's runtime.
        table
            .update_datafusion_session(session)
            .map_err(|e| Error::from(e).with_context("table", &self.location))?;
        let version = table.version();
        let last_modified = last_commit_time(&table).await;
        let provider = table
            .table_provider()
            .await
            .map_err(|e| Error::from(e).with_context("table", &self.location))?;
        // The version and its commit time: a table dropped and written anew starts again at
        // version 0, at another time.
        let identity = version.map(|v| {
            let mut hasher = std::hash::DefaultHasher::new();
            (v, last_modified.map(|t| t.timestamp_micros())).hash(&mut hasher);
            hasher.finish()
        });
        Ok(TableSnapshot {
            provider,
            version,
            last_modified,
            identity,
        })
    }
}

#[async_trait]
impl TableStore for DeltaStore {
    fn format(&self) -> &'static str {
        "delta"
    }

    fn location(&self) -> &str {
        &self.location
    }

    fn writable(&self) -> bool {
        !self.source
    }

    async fn open(&self, session: &SessionState) -> Result<Option<TableSnapshot>> {
        match self.load().await? {
            Some(table) => self.snapshot_of(table, session).await.map(Some),
            None => Ok(None),
        }
    }

    async fn versions(&self) -> Result<Vec<VersionInfo>> {
        let Some(table) = self.load().await? else {
            return Ok(Vec::new());
        };
        let Some(latest) = table.version() else {
            return Ok(Vec::new());
        };
        // Newest first; the log's cleanup removes the oldest commits only, so what is left runs
        // down from the latest version without gaps.
        let history = table
            .history(None)
            .await
            .map_err(|e| Error::from(e).with_context("table", &self.location))?;
        let mut versions: Vec<VersionInfo> = history
            .zip((0..=latest).rev())
            .map(|(info, version)| VersionInfo {
                version,
                snapshot_id: None,
                committed_at: info.timestamp.and_then(DateTime::from_timestamp_millis),
                rows_added: rows_added(&info),
                run_id: info
                    .info
                    .get(&format!("{METADATA_PREFIX}run_id"))
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
                operation: info.operation,
            })
            .collect();
        versions.reverse();
        Ok(versions)
    }

    async fn open_as_of(
        &self,
        session: &SessionState,
        as_of: &AsOf,
    ) -> Result<Option<TableSnapshot>> {
        let listed = || async {
            let versions = self.versions().await?;
            Ok::<_, Error>(super::pick_version(&versions, as_of).map(|i| i.version))
        };
        let version = match as_of {
            AsOf::Version(v) => match u64::try_from(*v) {
                Ok(v) => v,
                Err(_) => return Ok(None),
            },
            AsOf::Timestamp(_) => match listed().await? {
                Some(v) => v,
                None => return Ok(None),
            },
        };
        let loaded = DeltaTableBuilder::from_url(self.url.clone())
            .map_err(|e| Error::from(e).with_context("table", &self.location))?
            .with_version(version)
            .load()
            .await;
        match loaded {
            Ok(table) => self.snapshot_of(table, session).await.map(Some),
            // A version that is not (or no longer) in the log.
            Err(_) if listed().await?.is_none() => Ok(None),
            Err(e) => Err(Error::from(e).with_context("table", &self.location)),
        }
    }

    async fn last_commit_metadata(&self) -> Result<Option<CommitMetadata>> {
        let Some(table) = self.load().await? else {
            return Ok(None);
        };
        let Some(info) = last_commit(&table).await else {
            return Ok(None);
        };
        Ok(Some(
            info.info
                .into_iter()
                .filter(|(k, _)| k.starts_with(METADATA_PREFIX))
                .map(|(k, v)| (k[METADATA_PREFIX.len()..].to_string(), v))
                .collect(),
        ))
    }

    async fn write(
        &self,
        plan: LogicalPlan,
        session: &SessionState,
        mode: &WriteMode,
        metadata: CommitMetadata,
    ) -> Result<Published> {
        if self.source {
            return Err(super::read_only_source(&self.location));
        }
        if self.url.scheme() == "file"
            && let Ok(path) = self.url.to_file_path()
        {
            if !path.join("_delta_log").exists() && super::iceberg::is_table_folder(&path) {
                return Err(super::other_format(&self.location, "an Iceberg", "delta"));
            }
            std::fs::create_dir_all(&path).map_err(|e| {
                Error::new(
                    crate::error::ErrorKind::Unavailable,
                    format!("cannot create {}: {e}", path.display()),
                )
            })?;
        }
        // Concurrent appends (ingest batches, audit records) commit one after another: each lost
        // race re-reads the log and tries the next version, as long as nothing it read changed.
        let commit = CommitProperties::default()
            .with_max_retries(COMMIT_RETRIES)
            .with_metadata(
                metadata
                    .into_iter()
                    .map(|(k, v)| (format!("{METADATA_PREFIX}{k}"), v)),
            );
        let existing = self.load().await?;
        if let (WriteMode::Merge { keys }, Some(table)) = (mode, &existing) {
            return self.merge(table.clone(), plan, session, keys, commit).await;
        }
        let table = match existing {
            Some(table) => table,
            None => DeltaTableBuilder::from_url(self.url.clone())
                .and_then(|b| b.build())
                .map_err(|e| Error::from(e).with_context("table", &self.location))?,
        };
        // delta-rs 0.32 checks the rows of a replacing write against the NOT NULL columns of the
        // table it replaces, even where the new rows drop a column or let it hold nulls ("No field
        // named …"). Then the table's columns are replaced first (CREATE OR REPLACE, no rows) and
        // the rows appended: two commits.
        let (table, mode) = match mode {
            WriteMode::Replace if loosens_not_null(&table, &plan) => (
                self.replace_columns(table, &plan, commit.clone()).await?,
                &WriteMode::Append,
            ),
            _ => (table, mode),
        };
        let builder = table
            .write(Vec::new())
            .with_input_plan(plan)
            .with_session_state(Arc::new(session.clone()))
            .with_commit_properties(commit);
        let builder = match mode {
            // Merging into a table that does not exist yet creates it.
            WriteMode::Replace | WriteMode::Merge { .. } => builder
                .with_save_mode(SaveMode::Overwrite)
                .with_schema_mode(SchemaMode::Overwrite),
            WriteMode::Append => builder.with_save_mode(SaveMode::Append),
        };
        let table = builder
            .await
            .map_err(|e| Error::from(e).with_context("table", &self.location))?;
        let version = table.version().unwrap_or(0);
        let rows = added_rows(&table).await.unwrap_or_else(|| {
            tracing::warn!(table = %self.location, "the commit recorded no row count");
            0
        });
        Ok(Published { version, rows })
    }
}

/// Whether `plan`'s rows lack a column the table declares NOT NULL, or may hold nulls in one.
fn loosens_not_null(table: &DeltaTable, plan: &LogicalPlan) -> bool {
    let Ok(snapshot) = table.snapshot() else {
        return false;
    };
    let rows = plan.schema();
    snapshot.schema().fields().any(|column| {
        !column.is_nullable()
            && rows
                .field_with_unqualified_name(column.name())
                .map_or(true, |f| f.is_nullable())
    })
}

impl DeltaStore {
    /// Replaces the columns of `table` with those of `plan`'s rows, keeping no rows.
    async fn replace_columns(
        &self,
        table: DeltaTable,
        plan: &LogicalPlan,
        commit: CommitProperties,
    ) -> Result<DeltaTable> {
        use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
        let arrow = deltalake::kernel::schema::normalize_for_delta(plan.schema().inner());
        let columns: deltalake::kernel::StructType = arrow
            .as_ref()
            .try_into_kernel()
            .map_err(|e| Error::from(DeltaTableError::from(e)))?;
        deltalake::operations::create::CreateBuilder::new()
            .with_log_store(table.log_store())
            .with_columns(columns.fields().cloned())
            .with_save_mode(SaveMode::Overwrite)
            .with_commit_properties(commit)
            .await
            .map_err(|e| Error::from(e).with_context("table", &self.location))
    }

    /// Delta MERGE on `keys`: matched rows take every column of the new row, the others are
    /// inserted.
    async fn merge(
        &self,
        table: DeltaTable,
        plan: LogicalPlan,
        session: &SessionState,
        keys: &[String],
        commit: CommitProperties,
    ) -> Result<Published> {
        let columns: Vec<String> = plan
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        for key in keys {
            if !columns.contains(key) {
                return Err(Error::user(format!(
                    "merge key `{key}` is not a column of the new rows (columns: {})",
                    columns.join(", ")
                ))
                .with_context("table", &self.location));
            }
        }
        let side = |alias: &str, c: &str| Expr::Column(Column::new(Some(alias), c));
        let predicate = keys
            .iter()
            .map(|k| side("target", k).eq(side("source", k)))
            .reduce(Expr::and)
            .ok_or_else(|| Error::user("a merge needs at least one key column"))?;
        let source = DataFrame::new(session.clone(), plan);
        let quoted = |c: &str| format!("`{c}`");
        let (table, metrics) = table
            .merge(source, predicate)
            .with_source_alias("source")
            .with_target_alias("target")
            .with_session_state(Arc::new(session.clone()))
            .with_commit_properties(commit)
            .when_matched_update(|mut u| {
                for c in &columns {
                    u = u.update(quoted(c).as_str(), side("source", c));
                }
                u
            })
            .and_then(|b| {
                b.when_not_matched_insert(|mut i| {
                    for c in &columns {
                        i = i.set(quoted(c).as_str(), side("source", c));
                    }
                    i
                })
            })
            .map_err(|e| Error::from(e).with_context("table", &self.location))?
            .await
            .map_err(|e| Error::from(e).with_context("table", &self.location))?;
        Ok(Published {
            version: table.version().unwrap_or(0),
            rows: (metrics.num_target_rows_inserted + metrics.num_target_rows_updated) as u64,
        })
    }
}

/// Commit attempts before a write gives up on concurrent writers (delta-rs's default is 15).
const COMMIT_RETRIES: usize = 100;

/// Prefix of meshql's keys in Delta commit metadata.
const METADATA_PREFIX: &str = "meshql.";

async fn last_commit(table: &DeltaTable) -> Option<deltalake::kernel::CommitInfo> {
    table.history(Some(1)).await.ok()?.next()
}

async fn last_commit_time(table: &DeltaTable) -> Option<DateTime<Utc>> {
    let ts = last_commit(table).await?.timestamp?;
    DateTime::from_timestamp_millis(ts)
}

/// Rows a commit added, from its operation metrics (a write's added rows, a merge's inserted
/// and updated ones).
fn rows_added(info: &deltalake::kernel::CommitInfo) -> Option<u64> {
    let metrics = info.info.get("operationMetrics")?;
    let number = |key: &str| {
        let v = metrics.get(key)?;
        v.as_u64().or_else(|| v.as_str()?.parse().ok())
    };
    number("num_added_rows").or_else(|| {
        Some(number("num_target_rows_inserted")? + number("num_target_rows_updated").unwrap_or(0))
    })
}

/// Rows written by the last commit, from its operation metrics.
async fn added_rows(table: &DeltaTable) -> Option<u64> {
    let info = last_commit(table).await?;
    let metrics = info.info.get("operationMetrics")?;
    let v = metrics.get("num_added_rows")?;
    v.as_u64().or_else(|| v.as_str()?.parse().ok())
}
