//! Statement queries: GetFlightInfo plans (never executes) and hands out a signed ticket; DoGet
//! re-plans and streams the batches as they are produced.

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::{ProstMessageExt, TicketStatementQuery};
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use datafusion::arrow::record_batch::RecordBatch;
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use tonic::{Response, Status};

use super::service::MeshFlightSql;
use super::ticket::StatementTicket;
use crate::error::Error;

type DoGetStream =
    <MeshFlightSql as arrow_flight::flight_service_server::FlightService>::DoGetStream;

pub async fn flight_info(
    svc: &MeshFlightSql,
    sql: &str,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let state = svc.engine.session();
    let plan = svc.engine.plan(sql, &state).await?;
    let schema = plan.schema().as_arrow().clone();
    let handle = svc.signer.sign(&StatementTicket {
        sql: sql.to_string(),
    })?;
    let ticket = TicketStatementQuery {
        statement_handle: handle.into(),
    };
    let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec()));
    let info = FlightInfo::new()
        .try_with_schema(&schema)
        .map_err(|e| Status::from(Error::from(e)))?
        .with_endpoint(endpoint)
        .with_descriptor(descriptor)
        .with_ordered(true);
    Ok(Response::new(info))
}

pub async fn do_get(svc: &MeshFlightSql, handle: &[u8]) -> Result<Response<DoGetStream>, Status> {
    let ticket = svc.signer.verify(handle)?;
    let state = svc.engine.session();
    let (schema, stream) = svc.engine.execute(&ticket.sql, &state).await?;
    let announced = schema.clone();
    let batches = stream
        .map_err(|e| FlightError::from(Status::from(Error::from(e))))
        .and_then(move |batch| {
            // Relabel to the announced schema so FlightInfo and DoGet agree exactly.
            let relabelled = RecordBatch::try_new(announced.clone(), batch.columns().to_vec())
                .map_err(|e| FlightError::from(Status::from(Error::from(e))));
            futures::future::ready(relabelled)
        });
    let flight = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(batches)
        .map_err(|e| match e {
            FlightError::Tonic(status) => *status,
            other => Status::from(Error::internal(other.to_string())),
        });
    Ok(Response::new(Box::pin(flight.boxed())))
}
