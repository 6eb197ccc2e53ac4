//! Statement queries: GetFlightInfo plans (never executes) and hands out signed tickets; DoGet runs
//! the ticket's statement through the query service and streams batches as they are produced, in
//! the schema FlightInfo announced. A ticket names its query for CancelFlightInfo; a client that
//! disconnects drops the stream, which stops the query.

use std::sync::Arc;

use arrow_flight::sql::{ProstMessageExt, TicketStatementQuery};
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use datafusion::arrow::record_batch::RecordBatch;
use futures::StreamExt;
use prost::Message;

use super::state::FlightSql;
use super::ticket::{Purpose, SignedStatement};
use super::wire::DoGetStream;
use super::wire::{self, decode_batch, encode_batch, wire_schema};
use crate::engine::SearchPath;
use crate::error::{Error, Result};
use crate::service::{Call, QueryId, Statement};

/// FlightInfo for `sql`, with one endpoint per row of `params` (one when there are none).
pub async fn flight_info(
    flight: &FlightSql,
    call: &Call,
    path: &SearchPath,
    sql: &str,
    params: Option<RecordBatch>,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo> {
    if params.as_ref().is_some_and(|b| b.num_rows() == 0) {
        return Err(Error::user(
            "no parameter values were bound (the parameter batch is empty)",
        ));
    }
    let planned = flight
        .service
        .plan(call, path, sql, params.as_ref())
        .await?;
    let schema = wire_schema(&planned.schema, flight.keep_views);
    let mut info = FlightInfo::new()
        .try_with_schema(&schema)?
        .with_descriptor(descriptor)
        .with_ordered(true);
    let rows: Vec<Option<RecordBatch>> = match &params {
        None => vec![None],
        Some(batch) => (0..batch.num_rows())
            .map(|i| Some(batch.slice(i, 1)))
            .collect(),
    };
    // One endpoint runs the plan just made; more (a batch of parameter rows) plan their own.
    let parked = (rows.len() == 1).then(|| flight.service.park(call, path, sql, &planned));
    for row in rows {
        let mut statement = SignedStatement::new(sql, &call.principal, path);
        statement.params = row.as_ref().map(encode_batch).transpose()?;
        statement.plan = parked;
        let handle = statement.sign(flight.service.signer(), Purpose::Ticket)?;
        let ticket = TicketStatementQuery {
            statement_handle: handle.into(),
        };
        info = info.with_endpoint(
            FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec())),
        );
    }
    Ok(info)
}

/// DoGet of a statement ticket: the results, or a status.
pub async fn do_get(flight: &FlightSql, call: &Call, handle: &[u8]) -> Result<DoGetStream> {
    let statement = SignedStatement::verify(
        flight.service.signer(),
        Purpose::Ticket,
        handle,
        &call.principal,
    )?;
    let params = statement.params.as_deref().map(decode_batch).transpose()?;
    let stream = flight
        .service
        .execute(
            call,
            Statement::new(&statement.search_path(), &statement.sql)
                .with_params(params.as_ref())
                .with_cancel(Some(QueryId::of(handle)))
                .with_parked(statement.plan),
        )
        .await?;
    let keep_views = flight.keep_views;
    let wire = Arc::new(wire_schema(&stream.schema(), keep_views));
    let announced = Arc::clone(&wire);
    let batches =
        stream.map(move |batch| batch.and_then(|b| wire::to_wire(&b, &announced, keep_views)));
    Ok(wire::encode(wire, batches))
}
