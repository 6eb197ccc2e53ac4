//! Ingest into a raw-layer table of the warehouse: create, append or replace, each as one
//! atomic Delta commit, with the upload streamed into the write (never held whole in memory).
//! A domain's owners (and the admin group) may ingest into its raw layer.

use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::datasource::provider_as_source;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;

use super::api::QueryService;
use super::audit::AuditRecord;
use super::operation::Call;
use crate::engine::SearchPath;
use crate::error::{Error, Result};
use crate::spec::{DatasetKind, DatasetName, is_valid_name};
use crate::storage::WriteMode;

/// The only layer clients ingest into.
const INGEST_LAYER: &str = "raw";

/// What to do when the table exists or does not (Flight SQL's table-definition options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfExists {
    Fail,
    Append,
    Replace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMissing {
    Fail,
    Create,
}

/// Where an upload goes.
#[derive(Debug, Clone)]
pub struct IngestTarget {
    /// Domain (default: the session's) and layer (default: raw).
    pub catalog: Option<String>,
    pub schema: Option<String>,
    pub table: String,
    pub if_exists: IfExists,
    pub if_missing: IfMissing,
}

impl IngestTarget {
    /// The dataset the upload names, resolved against `path`.
    pub fn dataset(&self, path: &SearchPath) -> DatasetName {
        DatasetName::new(
            self.catalog.clone().unwrap_or_else(|| path.domain.clone()),
            self.schema
                .clone()
                .unwrap_or_else(|| INGEST_LAYER.to_string()),
            &self.table,
        )
    }
}

impl QueryService {
    /// Writes the `upload` (in `schema`) into `target` in one commit; answers the rows written.
    /// Audited (the target and the rows).
    pub async fn ingest(
        &self,
        call: &Call,
        path: &SearchPath,
        target: &IngestTarget,
        schema: SchemaRef,
        upload: SendableRecordBatchStream,
    ) -> Result<u64> {
        let name = target.dataset(path);
        let result = self.write_upload(call, &name, target, schema, upload).await;
        let mut record = AuditRecord::of(call);
        record.tables = vec![name.to_string()];
        record.rows = result.as_ref().ok().copied();
        self.audit.record(record.outcome(&result));
        result
    }

    async fn write_upload(
        &self,
        call: &Call,
        name: &DatasetName,
        target: &IngestTarget,
        schema: SchemaRef,
        upload: SendableRecordBatchStream,
    ) -> Result<u64> {
        self.require(&call.principal, crate::spec::Action::Ingest, name)?;
        if name.layer != INGEST_LAYER {
            return Err(Error::permission(format!(
                "cannot ingest into `{name}`: clients ingest into a raw layer only (pipelines build the others)"
            )));
        }
        if !is_valid_name(&name.dataset) {
            return Err(Error::user(format!(
                "invalid table name `{}`: use lower-case letters, digits and `_`, starting with a letter",
                name.dataset
            )));
        }
        match self.engine.mesh().dataset(name).map(|d| (&d.kind, &d.file)) {
            Some((DatasetKind::Source(_), _)) => {
                return Err(Error::permission(format!(
                    "`{name}` is a read-only source declared in the mesh"
                )));
            }
            Some((DatasetKind::Job(_), file)) => {
                return Err(Error::permission(format!(
                    "`{name}` is written by the job {}; run that job instead of ingesting",
                    self.engine.mesh().shown(file)
                )));
            }
            _ => {}
        }
        let catalog = self.engine.catalog();
        let exists = catalog.has_version(name).await?;
        // Creating a table is serialised per table: a second `create_append` waiting here
        // appends to the table the first created instead of racing it to version 0 (and losing).
        let (exists, _creating) = if exists {
            (true, None)
        } else {
            let guard = catalog.creation_lock(name).await;
            (catalog.has_version(name).await?, Some(guard))
        };
        let mode = match (exists, target.if_exists, target.if_missing) {
            (true, IfExists::Append, _) => WriteMode::Append,
            (true, IfExists::Replace, _) => WriteMode::Replace,
            (true, IfExists::Fail, _) => {
                return Err(Error::conflict(format!(
                    "table `{name}` already exists; ingest with mode append or replace"
                )));
            }
            (false, _, IfMissing::Fail) => {
                return Err(Error::not_found(format!(
                    "table `{name}` does not exist; ingest with mode create to create it"
                )));
            }
            (false, _, IfMissing::Create) => WriteMode::Replace,
        };
        let stream = Upload {
            schema: Arc::clone(&schema),
            stream: Mutex::new(Some(upload)),
        };
        let table = StreamingTable::try_new(Arc::clone(&schema), vec![Arc::new(stream)])?;
        let plan = LogicalPlanBuilder::scan("ingest", provider_as_source(Arc::new(table)), None)?
            .build()?;
        let state = self.engine.session();
        let published = catalog
            .publish(name, plan, &state, &mode, Default::default())
            .await?;
        tracing::info!(table = %name, rows = published.rows, version = published.version, principal = %call.principal.name, "ingested");
        Ok(published.rows)
    }
}

/// The uploaded batches as a partition that can be read once.
struct Upload {
    schema: SchemaRef,
    stream: Mutex<Option<SendableRecordBatchStream>>,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Upload")
    }
}

impl PartitionStream for Upload {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        match self.stream.lock().ok().and_then(|mut s| s.take()) {
            Some(stream) => stream,
            None => {
                let again = DataFusionError::Internal("an upload can be read once".into());
                Box::pin(RecordBatchStreamAdapter::new(
                    Arc::clone(&self.schema),
                    futures::stream::once(async move { Err(again) }),
                ))
            }
        }
    }
}
