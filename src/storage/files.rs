//! Read-only datasets over existing CSV, Parquet or JSON files (a file or a folder of files).

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use futures::TryStreamExt;

use super::{CommitMetadata, Published, TableSnapshot, TableStore, WriteMode};
use crate::error::{Error, Result};
use crate::spec::{Source, SourceFormat};

/// Files registered in place; never written by meshql.
#[derive(Debug, Clone)]
pub struct FileStore {
    source: Source,
    format: Arc<dyn FileFormat>,
}

impl FileStore {
    pub fn new(source: Source) -> Result<Self> {
        ListingTableUrl::parse(&source.location).map_err(|e| {
            Error::user(format!(
                "invalid source location `{}`: {e}",
                source.location
            ))
        })?;
        let format: Arc<dyn FileFormat> = match source.format {
            SourceFormat::Csv => Arc::new(
                CsvFormat::default()
                    .with_has_header(source.has_header)
                    .with_delimiter(source.delimiter),
            ),
            SourceFormat::Parquet => Arc::new(ParquetFormat::default()),
            SourceFormat::Json => Arc::new(JsonFormat::default()),
            table @ (SourceFormat::Delta | SourceFormat::Iceberg) => {
                return Err(Error::internal(format!(
                    "a {} table is not read as plain files",
                    table.as_str()
                )));
            }
        };
        Ok(Self { source, format })
    }

    fn listing_options(&self, session: &SessionState) -> ListingOptions {
        let format = Arc::clone(&self.format);
        // A folder holds files of the format's extension; a single file is taken as named.
        let extension = if self.source.location.ends_with('/') {
            format!(".{}", self.source.format.as_str())
        } else {
            String::new()
        };
        // The session's partitions and statistics: scans run in parallel, and the planner knows
        // row counts and column bounds (join order, build sides) as for any other table.
        ListingOptions::new(format)
            .with_file_extension(extension)
            .with_session_config_options(session.config())
    }

    /// A hash of the names, sizes and modification times of the files at `url` now.
    async fn identity(&self, session: &SessionState, url: &ListingTableUrl) -> Result<u64> {
        let store = session.runtime_env().object_store(url)?;
        let extension = self.listing_options(session).file_extension;
        let mut files: Vec<(String, u64, i64)> = url
            .list_all_files(session, store.as_ref(), &extension)
            .await?
            .map_ok(|m| {
                let modified = m.last_modified.timestamp_nanos_opt().unwrap_or_default();
                (m.location.to_string(), m.size, modified)
            })
            .try_collect()
            .await
            .map_err(|e| Error::from(e).with_context("source", &self.source.location))?;
        files.sort();
        let mut hasher = std::hash::DefaultHasher::new();
        files.hash(&mut hasher);
        Ok(hasher.finish())
    }
}

#[async_trait]
impl TableStore for FileStore {
    fn format(&self) -> &'static str {
        self.source.format.as_str()
    }

    fn location(&self) -> &str {
        &self.source.location
    }

    fn writable(&self) -> bool {
        false
    }

    async fn open(&self, session: &SessionState) -> Result<Option<TableSnapshot>> {
        let url = ListingTableUrl::parse(&self.source.location)?;
        let options = self.listing_options(session);
        let schema = options
            .infer_schema(session, &url)
            .await
            .map_err(|e| Error::from(e).with_context("source", &self.source.location))?;
        let identity = self.identity(session, &url).await?;
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(schema);
        let table = ListingTable::try_new(config)?;
        Ok(Some(TableSnapshot {
            provider: Arc::new(table),
            version: None,
            last_modified: None,
            identity: Some(identity),
        }))
    }

    async fn write(
        &self,
        _plan: LogicalPlan,
        _session: &SessionState,
        _mode: &WriteMode,
        _metadata: CommitMetadata,
    ) -> Result<Published> {
        Err(super::read_only_source(&self.source.location))
    }

    async fn last_commit_metadata(&self) -> Result<Option<CommitMetadata>> {
        Ok(None)
    }
}
