//! Prepared statements. Handles are stateless: the SQL (and, once bound, the parameter values)
//! travel inside a signed handle, so any replica can run them and no client can forge one.
//! `?` and `$n` placeholders are accepted; parameters are ordered numerically (`$2` before
//! `$10`); each row of a bound batch is one execution (one endpoint of the FlightInfo).

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::{ActionCreatePreparedStatementResult, DoPutPreparedStatementResult};
use arrow_flight::{FlightDescriptor, FlightInfo, IpcMessage, SchemaAsIpc};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::LogicalPlan;
use futures::TryStreamExt;
use tonic::{Response, Status};

use super::service::MeshFlightSql;
use super::statement::{self, decode_batch, encode_batch, wire_schema};
use super::ticket::{Purpose, SignedStatement};
use crate::engine::SearchPath;
use crate::error::{Error, Result};
use crate::governance::Principal;

pub async fn create(
    svc: &MeshFlightSql,
    principal: &Principal,
    path: &SearchPath,
    sql: &str,
) -> Result<ActionCreatePreparedStatementResult, Status> {
    let (governed, state) = svc.governed_plan(principal, path, sql).await?;
    let plan = governed.plan;
    let dataset = wire_schema(
        svc.engine.result_schema(&plan, &state).await?.as_ref(),
        svc.engine.mesh().server.view_types,
    );
    let parameters = parameter_schema(&plan)?;
    let handle =
        SignedStatement::new(sql, principal, path).sign(&svc.signer, Purpose::PreparedHandle)?;
    Ok(ActionCreatePreparedStatementResult {
        prepared_statement_handle: handle.into(),
        dataset_schema: ipc_schema(&dataset)?.into(),
        parameter_schema: ipc_schema(&parameters)?.into(),
    })
}

pub fn verify(
    svc: &MeshFlightSql,
    principal: &Principal,
    handle: &[u8],
) -> Result<SignedStatement, Status> {
    Ok(SignedStatement::verify(
        &svc.signer,
        Purpose::PreparedHandle,
        handle,
        principal,
    )?)
}

/// Binds parameter values (DoPut): answers a new handle carrying them.
pub async fn bind(
    svc: &MeshFlightSql,
    principal: &Principal,
    handle: &[u8],
    input: PeekableFlightDataStream,
) -> Result<DoPutPreparedStatementResult, Status> {
    let mut statement = verify(svc, principal, handle)?;
    let stream = FlightRecordBatchStream::new_from_flight_data(input.map_err(FlightError::from));
    let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(|e| match e {
        FlightError::Tonic(status) => *status,
        other => Status::from(Error::user(format!("invalid parameter data: {other}"))),
    })?;
    let Some(first) = batches.first() else {
        return Err(Error::user("no parameter values were sent").into());
    };
    let all = arrow::compute::concat_batches(&first.schema(), &batches)
        .map_err(|e| Status::from(Error::from(e)))?;
    statement.params = Some(encode_batch(&all)?);
    let handle = statement.sign(&svc.signer, Purpose::PreparedHandle)?;
    Ok(DoPutPreparedStatementResult {
        prepared_statement_handle: Some(handle.into()),
    })
}

pub async fn flight_info(
    svc: &MeshFlightSql,
    principal: &Principal,
    handle: &[u8],
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let statement = verify(svc, principal, handle)?;
    let params = statement.params.as_deref().map(decode_batch).transpose()?;
    let path = statement.search_path();
    statement::flight_info(svc, principal, &path, &statement.sql, params, descriptor).await
}

/// `$1`, `$2`, ... in numeric order, typed where the plan infers a type (`Null` otherwise).
fn parameter_schema(plan: &LogicalPlan) -> Result<Schema> {
    let mut params: Vec<(usize, String, Option<DataType>)> = plan
        .get_parameter_types()?
        .into_iter()
        .map(|(name, t)| {
            let n = name.trim_start_matches('$').parse::<usize>().map_err(|_| {
                Error::user(format!(
                    "named parameter `{name}` is not supported; use `?` or `$1, $2, ...`"
                ))
            })?;
            Ok((n, name, t))
        })
        .collect::<Result<_>>()?;
    params.sort_by_key(|(n, ..)| *n);
    let fields: Vec<Field> = params
        .into_iter()
        .map(|(_, name, t)| Field::new(name, t.unwrap_or(DataType::Null), true))
        .collect();
    Ok(Schema::new(fields))
}

fn ipc_schema(schema: &Schema) -> Result<Vec<u8>> {
    let message: IpcMessage = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: datafusion::arrow::error::ArrowError| {
            Error::internal(format!("encoding a schema: {e}"))
        })?;
    Ok(message.0.to_vec())
}
