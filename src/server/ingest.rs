//! Bulk ingest (`CommandStatementIngest`, ADBC's `adbc_ingest`) into a raw-layer table of the
//! warehouse: create, append or replace, each as one atomic Delta commit. Until domain owners
//! get their raw layers through policies, only the admin group may ingest.

use std::sync::{Arc, Mutex};

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::sql::CommandStatementIngest;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::{TableExistsOption, TableNotExistOption};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::datasource::provider_as_source;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use futures::{StreamExt, TryStreamExt};
use tonic::Status;

use super::service::MeshFlightSql;
use crate::engine::SearchPath;
use crate::error::{Error, ErrorKind};
use crate::governance::Principal;
use crate::spec::{DatasetKind, DatasetName, is_valid_name};
use crate::storage::WriteMode;

/// The only layer clients ingest into.
const INGEST_LAYER: &str = "raw";

pub async fn ingest(
    svc: &MeshFlightSql,
    principal: &Principal,
    path: &SearchPath,
    command: CommandStatementIngest,
    input: PeekableFlightDataStream,
) -> Result<i64, Status> {
    if command.temporary {
        return Err(Error::user(
            "temporary tables are not supported; ingest into a raw-layer table",
        )
        .into());
    }
    if command.transaction_id.is_some() {
        return Err(Error::user(
            "transactions are not supported: each ingest is one atomic commit",
        )
        .into());
    }
    let domain = command
        .catalog
        .clone()
        .unwrap_or_else(|| path.domain.clone());
    let layer = command
        .schema
        .clone()
        .unwrap_or_else(|| INGEST_LAYER.to_string());
    let name = DatasetName::new(&domain, &layer, &command.table);
    svc.require(principal, crate::spec::Action::Ingest, &name)?;
    if layer != INGEST_LAYER {
        return Err(Error::permission(format!(
            "cannot ingest into `{name}`: clients ingest into a raw layer only (pipelines build the others)"
        ))
        .into());
    }
    if !is_valid_name(&command.table) {
        return Err(Error::user(format!(
            "invalid table name `{}`: use lower-case letters, digits and `_`, starting with a letter",
            command.table
        ))
        .into());
    }
    let catalog = svc.engine.catalog();
    match svc.engine.mesh().dataset(&name).map(|d| (&d.kind, &d.file)) {
        Some((DatasetKind::Source(_), _)) => {
            return Err(Error::permission(format!(
                "`{name}` is a read-only source declared in the mesh"
            ))
            .into());
        }
        Some((DatasetKind::Job(_), file)) => {
            return Err(Error::permission(format!(
                "`{name}` is written by the job {}; run that job instead of ingesting",
                file.display()
            ))
            .into());
        }
        _ => {}
    }

    let options = command.table_definition_options.unwrap_or_default();
    let if_missing = TableNotExistOption::try_from(options.if_not_exist)
        .unwrap_or(TableNotExistOption::Unspecified);
    let if_exists =
        TableExistsOption::try_from(options.if_exists).unwrap_or(TableExistsOption::Unspecified);
    let exists = catalog.has_version(&name).await?;
    // Creating a table is serialised per table: a second `create_append` waiting here appends
    // to the table the first created instead of racing it to version 0 (and losing).
    let (exists, _creating) = if exists {
        (true, None)
    } else {
        let guard = catalog.creation_lock(&name).await;
        (catalog.has_version(&name).await?, Some(guard))
    };
    let mode = match (exists, if_exists, if_missing) {
        (true, TableExistsOption::Append, _) => WriteMode::Append,
        (true, TableExistsOption::Replace, _) => WriteMode::Replace,
        (true, _, _) => {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("table `{name}` already exists; ingest with mode append or replace"),
            )
            .into());
        }
        (false, _, TableNotExistOption::Fail) => {
            return Err(Error::not_found(format!(
                "table `{name}` does not exist; ingest with mode create to create it"
            ))
            .into());
        }
        (false, _, _) => WriteMode::Replace,
    };

    // The upload streams into the write: rows are never all held in memory.
    let mut stream =
        FlightRecordBatchStream::new_from_flight_data(input.map_err(FlightError::from));
    let first = stream.next().await.transpose().map_err(flight_status)?;
    let schema = match (&first, stream.schema()) {
        (Some(b), _) => b.schema(),
        (None, Some(s)) => Arc::clone(s),
        (None, None) => {
            return Err(Error::user("the ingest stream carried no schema and no rows").into());
        }
    };
    let batches = futures::stream::iter(first.map(Ok))
        .chain(stream)
        .map_err(|e| {
            DataFusionError::External(Box::new(Error::user(format!("invalid ingest data: {e}"))))
        });
    let upload = Upload {
        schema: Arc::clone(&schema),
        stream: Mutex::new(Some(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&schema),
            batches,
        )))),
    };
    let table = StreamingTable::try_new(Arc::clone(&schema), vec![Arc::new(upload)])
        .map_err(Error::from)?;
    let plan = LogicalPlanBuilder::scan("ingest", provider_as_source(Arc::new(table)), None)
        .and_then(|b| b.build())
        .map_err(Error::from)?;

    let store = catalog.store_or_create(&name)?;
    let state = svc.engine.session();
    let published = store.write(plan, &state, &mode, Default::default()).await;
    catalog.invalidate(&name).await;
    let published = published?;
    tracing::info!(table = %name, rows = published.rows, version = published.version, principal = %principal.name, "ingested");
    Ok(published.rows as i64)
}

fn flight_status(e: FlightError) -> Status {
    match e {
        FlightError::Tonic(status) => *status,
        other => Status::from(Error::user(format!("invalid ingest data: {other}"))),
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
