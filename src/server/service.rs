//! The Flight SQL service: a thin dispatcher to the command groups.

use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionBeginSavepointRequest, ActionBeginSavepointResult, ActionBeginTransactionRequest,
    ActionBeginTransactionResult, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, ActionEndSavepointRequest, ActionEndTransactionRequest,
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTableTypes,
    CommandGetTables, CommandPreparedStatementUpdate, CommandStatementIngest,
    CommandStatementQuery, CommandStatementSubstraitPlan, CommandStatementUpdate, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    Action, ActionType, FlightDescriptor, FlightInfo, HandshakeRequest, HandshakeResponse, Ticket,
    flight_service_server::FlightService,
};
use futures::Stream;
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use super::ticket::TicketSigner;
use super::{actions, metadata, statement};
use crate::engine::Engine;
use crate::error::Error;

type DoGetStream = <MeshFlightSql as FlightService>::DoGetStream;

/// The Flight SQL service of one mesh.
#[derive(Clone)]
pub struct MeshFlightSql {
    pub(super) engine: Arc<Engine>,
    pub(super) signer: TicketSigner,
}

impl MeshFlightSql {
    pub fn new(engine: Arc<Engine>, signer: TicketSigner) -> Self {
        Self { engine, signer }
    }
}

fn read_only(what: &str) -> Status {
    Status::from(Error::permission(format!(
        "{what} is not allowed: meshql clients are read-only (data changes through pipelines)"
    )))
}

#[tonic::async_trait]
impl FlightSqlService for MeshFlightSql {
    type FlightService = MeshFlightSql;

    async fn do_handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        // Authentication arrives with the identity work; until then the handshake accepts everyone.
        let out = futures::stream::iter([Ok(HandshakeResponse::default())]);
        Ok(Response::new(Box::pin(out)))
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        if query.transaction_id.is_some() {
            return Err(Status::invalid_argument(
                "transactions are not supported: meshql is read-only",
            ));
        }
        statement::flight_info(self, &query.query, request.into_inner()).await
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        statement::do_get(self, &ticket.statement_handle).await
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata::flight_info(
            &query,
            metadata::catalogs_schema(&query),
            request.into_inner(),
        )
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        metadata::do_get_catalogs(self, query)
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata::flight_info(
            &query,
            metadata::schemas_schema(&query),
            request.into_inner(),
        )
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        metadata::do_get_schemas(self, query)
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata::flight_info(
            &query,
            metadata::tables_schema(&query),
            request.into_inner(),
        )
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        metadata::do_get_tables(self, query).await
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata::flight_info(
            &query,
            metadata::table_types_schema(&query),
            request.into_inner(),
        )
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        metadata::do_get_table_types(query)
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata::flight_info(
            &query,
            metadata::sql_info_schema(&query),
            request.into_inner(),
        )
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        metadata::do_get_sql_info(query)
    }

    async fn get_flight_info_substrait_plan(
        &self,
        _query: CommandStatementSubstraitPlan,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Err(Status::invalid_argument(
            "Substrait plans are not supported; send SQL instead",
        ))
    }

    async fn do_put_statement_update(
        &self,
        _ticket: CommandStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(read_only("an update statement"))
    }

    async fn do_put_prepared_statement_update(
        &self,
        _query: CommandPreparedStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(read_only("a prepared update"))
    }

    async fn do_put_statement_ingest(
        &self,
        _ticket: CommandStatementIngest,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(read_only("ingest"))
    }

    async fn do_put_substrait_plan(
        &self,
        _ticket: CommandStatementSubstraitPlan,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(Status::invalid_argument(
            "Substrait plans are not supported; send SQL instead",
        ))
    }

    async fn do_action_create_prepared_statement(
        &self,
        _query: ActionCreatePreparedStatementRequest,
        _request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        Err(Status::unimplemented(
            "prepared statements are not supported yet; execute the SQL as a statement",
        ))
    }

    async fn do_action_begin_transaction(
        &self,
        _query: ActionBeginTransactionRequest,
        _request: Request<arrow_flight::Action>,
    ) -> Result<ActionBeginTransactionResult, Status> {
        Err(Status::invalid_argument(
            "transactions are not supported: meshql is read-only",
        ))
    }

    async fn do_action_end_transaction(
        &self,
        _query: ActionEndTransactionRequest,
        _request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        Err(Status::invalid_argument(
            "transactions are not supported: meshql is read-only",
        ))
    }

    async fn do_action_begin_savepoint(
        &self,
        _query: ActionBeginSavepointRequest,
        _request: Request<arrow_flight::Action>,
    ) -> Result<ActionBeginSavepointResult, Status> {
        Err(Status::invalid_argument(
            "savepoints are not supported: meshql is read-only",
        ))
    }

    async fn do_action_end_savepoint(
        &self,
        _query: ActionEndSavepointRequest,
        _request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        Err(Status::invalid_argument(
            "savepoints are not supported: meshql is read-only",
        ))
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        let action = request.into_inner();
        match action.r#type.as_str() {
            actions::RUN_PIPELINE => {
                let result = actions::run_pipeline(self, &action).await?;
                let body = arrow_flight::Result {
                    body: result.encode_to_vec().into(),
                };
                Ok(Response::new(Box::pin(futures::stream::iter([Ok(body)]))))
            }
            other => {
                let known: Vec<String> = actions::action_types()
                    .into_iter()
                    .map(|a| a.r#type)
                    .collect();
                Err(Status::invalid_argument(format!(
                    "unknown action `{other}`; meshql's custom actions: {}",
                    known.join(", ")
                )))
            }
        }
    }

    async fn list_custom_actions(&self) -> Option<Vec<Result<ActionType, Status>>> {
        Some(actions::action_types().into_iter().map(Ok).collect())
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
