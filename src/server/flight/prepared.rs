//! Prepared statements. Handles are stateless: the SQL (and, once bound, the parameter values)
//! travel inside a signed handle, so any replica can run them and no client can forge one.
//! `?` and `$n` placeholders are accepted; parameters are ordered numerically (`$2` before
//! `$10`); each row of a bound batch is one execution (one endpoint of the FlightInfo).

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::{ActionCreatePreparedStatementResult, DoPutPreparedStatementResult};
use arrow_flight::{FlightDescriptor, FlightInfo};
use datafusion::arrow::record_batch::RecordBatch;
use futures::TryStreamExt;

use super::state::FlightSql;
use super::statement;
use super::ticket::{Purpose, SignedStatement};
use super::wire::{decode_batch, encode_batch, ipc_schema, wire_parameters, wire_schema};
use crate::engine::SearchPath;
use crate::error::{Error, Result};
use crate::service::Call;

pub async fn create(
    flight: &FlightSql,
    call: &Call,
    path: &SearchPath,
    sql: &str,
) -> Result<ActionCreatePreparedStatementResult> {
    let planned = flight.service.plan(call, path, sql, None).await?;
    let dataset = wire_schema(&planned.schema, flight.keep_views);
    let handle = SignedStatement::new(sql, &call.principal, path)
        .sign(flight.service.signer(), Purpose::PreparedHandle)?;
    Ok(ActionCreatePreparedStatementResult {
        prepared_statement_handle: handle.into(),
        dataset_schema: ipc_schema(&dataset)?.into(),
        parameter_schema: ipc_schema(&wire_parameters(&planned.parameters))?.into(),
    })
}

pub fn verify(flight: &FlightSql, call: &Call, handle: &[u8]) -> Result<SignedStatement> {
    SignedStatement::verify(
        flight.service.signer(),
        Purpose::PreparedHandle,
        handle,
        &call.principal,
    )
}

/// Binds parameter values (DoPut): answers a new handle carrying them.
pub async fn bind(
    flight: &FlightSql,
    call: &Call,
    handle: &[u8],
    input: PeekableFlightDataStream,
) -> Result<DoPutPreparedStatementResult> {
    let mut statement = verify(flight, call, handle)?;
    let stream = FlightRecordBatchStream::new_from_flight_data(input.map_err(FlightError::from));
    let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(|e| match e {
        FlightError::Tonic(status) => {
            Error::user(format!("invalid parameter data: {}", status.message()))
        }
        other => Error::user(format!("invalid parameter data: {other}")),
    })?;
    let Some(first) = batches.first() else {
        return Err(Error::user("no parameter values were sent"));
    };
    let all = arrow::compute::concat_batches(&first.schema(), &batches)?;
    statement.params = Some(encode_batch(&all)?);
    let handle = statement.sign(flight.service.signer(), Purpose::PreparedHandle)?;
    Ok(DoPutPreparedStatementResult {
        prepared_statement_handle: Some(handle.into()),
    })
}

pub async fn flight_info(
    flight: &FlightSql,
    call: &Call,
    handle: &[u8],
    descriptor: FlightDescriptor,
) -> Result<FlightInfo> {
    let statement = verify(flight, call, handle)?;
    let params = statement.params.as_deref().map(decode_batch).transpose()?;
    let path = statement.search_path();
    statement::flight_info(flight, call, &path, &statement.sql, params, descriptor).await
}
