//! `CommandStatementIngest` (ADBC's `adbc_ingest`): the upload's Flight messages become a stream
//! of batches for the query service, which writes them into a raw-layer table.

use std::sync::Arc;

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::{CommandStatementIngest, TableExistsOption, TableNotExistOption};
use datafusion::error::DataFusionError;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{StreamExt, TryStreamExt};

use super::state::FlightSql;
use crate::engine::SearchPath;
use crate::error::{Error, Result};
use crate::service::{Call, IfExists, IfMissing, IngestTarget};

pub async fn ingest(
    flight: &FlightSql,
    call: &Call,
    path: &SearchPath,
    command: CommandStatementIngest,
    input: PeekableFlightDataStream,
) -> Result<u64> {
    if command.temporary {
        return Err(Error::user(
            "temporary tables are not supported; ingest into a raw-layer table",
        ));
    }
    if command.transaction_id.is_some() {
        return Err(Error::user(
            "transactions are not supported: each ingest is one atomic commit",
        ));
    }
    let options = command.table_definition_options.unwrap_or_default();
    let if_exists = match TableExistsOption::try_from(options.if_exists) {
        Ok(TableExistsOption::Append) => IfExists::Append,
        Ok(TableExistsOption::Replace) => IfExists::Replace,
        _ => IfExists::Fail,
    };
    let if_missing = match TableNotExistOption::try_from(options.if_not_exist) {
        Ok(TableNotExistOption::Fail) => IfMissing::Fail,
        _ => IfMissing::Create,
    };
    let target = IngestTarget {
        catalog: command.catalog,
        schema: command.schema,
        table: command.table,
        if_exists,
        if_missing,
    };
    // The upload streams into the write: rows are never all held in memory.
    let mut stream =
        FlightRecordBatchStream::new_from_flight_data(input.map_err(FlightError::from));
    let first = stream.next().await.transpose().map_err(invalid)?;
    let schema = match (&first, stream.schema()) {
        (Some(b), _) => b.schema(),
        (None, Some(s)) => Arc::clone(s),
        (None, None) => {
            return Err(Error::user(
                "the ingest stream carried no schema and no rows",
            ));
        }
    };
    let batches = futures::stream::iter(first.map(Ok))
        .chain(stream)
        .map_err(|e| DataFusionError::External(Box::new(invalid(e))));
    let upload = Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&schema), batches));
    flight
        .service
        .ingest(call, path, &target, schema, upload)
        .await
}

fn invalid(e: FlightError) -> Error {
    match e {
        FlightError::Tonic(status) => {
            Error::user(format!("invalid ingest data: {}", status.message()))
        }
        other => Error::user(format!("invalid ingest data: {other}")),
    }
}
