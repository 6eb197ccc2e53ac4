//! Custom Flight actions of `proto/meshql.proto`.

use arrow_flight::sql::TicketStatementQuery;
use arrow_flight::{
    Action, ActionType, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus,
};
use prost::Message;

use super::state::FlightSql;
use super::ticket::{Purpose, SignedStatement};
use crate::error::{Error, Result};
use crate::proto::{NodeResult, RUN_PIPELINE, RunPipelineRequest, RunPipelineResult};
use crate::service::{Call, QueryId};

/// The Flight protocol's CancelFlightInfo action.
pub const CANCEL_FLIGHT_INFO: &str = "CancelFlightInfo";

/// The custom actions, as ListActions shows them.
pub fn action_types() -> Vec<ActionType> {
    vec![
        ActionType {
            r#type: RUN_PIPELINE.to_string(),
            description:
                "Run transforms and jobs of the mesh (admins). Body: meshql.v1.RunPipelineRequest; \
                          result: meshql.v1.RunPipelineResult"
                    .to_string(),
        },
        ActionType {
            r#type: super::session::SET_SESSION_OPTIONS.to_string(),
            description:
                "Set session options: `catalog` (a domain) and `schema` (a layer) make unqualified \
                          names resolve there"
                    .to_string(),
        },
        ActionType {
            r#type: super::session::GET_SESSION_OPTIONS.to_string(),
            description: "The session's options".to_string(),
        },
        ActionType {
            r#type: super::session::CLOSE_SESSION.to_string(),
            description: "End the session".to_string(),
        },
        ActionType {
            r#type: CANCEL_FLIGHT_INFO.to_string(),
            description: "Stop the queries of a FlightInfo. Body: CancelFlightInfoRequest; \
                          result: CancelFlightInfoResult"
                .to_string(),
        },
    ]
}

/// Runs the selected transforms and jobs and answers once the run has ended.
pub async fn run_pipeline(
    flight: &FlightSql,
    call: &Call,
    action: &Action,
) -> Result<RunPipelineResult> {
    let request = RunPipelineRequest::decode(action.body.as_ref())
        .map_err(|e| Error::user(format!("invalid {RUN_PIPELINE} body: {e}")))?;
    let report = flight
        .service
        .run_pipeline(call, &request.select, request.force)
        .await?;
    let nodes = report
        .nodes
        .iter()
        .map(|n| NodeResult {
            dataset: n.name.to_string(),
            status: n.status.label().to_string(),
            message: n.status.detail().unwrap_or_default().to_string(),
            rows: n.rows,
            version: n.version,
            duration_seconds: n.duration.as_secs_f64(),
        })
        .collect();
    Ok(RunPipelineResult {
        nodes,
        succeeded: report.succeeded(),
        run_id: report.run_id.clone(),
    })
}

/// CancelFlightInfo: stops the running DoGets of every endpoint and refuses later ones.
pub fn cancel_flight_info(
    flight: &FlightSql,
    call: &Call,
    action: &Action,
) -> Result<CancelFlightInfoResult> {
    let request = CancelFlightInfoRequest::decode(action.body.as_ref())
        .map_err(|e| Error::user(format!("invalid {CANCEL_FLIGHT_INFO} body: {e}")))?;
    let info = request.info.ok_or_else(|| {
        Error::user(format!(
            "{CANCEL_FLIGHT_INFO} needs the FlightInfo to cancel"
        ))
    })?;
    let mut keys = Vec::new();
    for endpoint in &info.endpoint {
        let Some(ticket) = &endpoint.ticket else {
            continue;
        };
        let any = arrow_flight::sql::Any::decode(ticket.ticket.as_ref())
            .map_err(|_| Error::user("not a meshql ticket"))?;
        let statement = TicketStatementQuery::decode(any.value.as_ref())
            .map_err(|_| Error::user("not a meshql ticket"))?;
        // Only genuine tickets of this principal can be cancelled.
        SignedStatement::verify(
            flight.service.signer(),
            Purpose::Ticket,
            &statement.statement_handle,
            &call.principal,
        )?;
        keys.push(QueryId::of(&statement.statement_handle));
    }
    let status = if flight.service.cancel(call, &keys) {
        CancelStatus::Cancelled
    } else {
        CancelStatus::NotCancellable
    };
    Ok(CancelFlightInfoResult {
        status: status as i32,
    })
}
