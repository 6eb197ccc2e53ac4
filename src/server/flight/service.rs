//! The Flight SQL service: each command of the protocol, dispatched to the file of its group.

use std::pin::Pin;

use arrow_flight::sql::server::{DoPutError, FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionBeginSavepointRequest, ActionBeginSavepointResult, ActionBeginTransactionRequest,
    ActionBeginTransactionResult, ActionClosePreparedStatementRequest,
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult,
    ActionEndSavepointRequest, ActionEndTransactionRequest, Any, Command, CommandGetCatalogs,
    CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys,
    CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandGetXdbcTypeInfo, CommandPreparedStatementQuery, CommandPreparedStatementUpdate,
    CommandStatementIngest, CommandStatementQuery, CommandStatementSubstraitPlan,
    CommandStatementUpdate, DoPutPreparedStatementResult, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, ActionType, FlightDescriptor, FlightInfo, HandshakeRequest, HandshakeResponse, Ticket,
    flight_service_server::FlightService,
};
use futures::Stream;
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use super::session::{self, Sessions};
use super::state::FlightSql;
use super::wire::DoGetStream;
use super::{actions, ingest, metadata, prepared, statement};
use crate::error::Error;
use crate::proto::session::SetSessionOptionsRequest;
use crate::service::{Operation, Protocol};

type HandshakeStream = Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>;

fn read_only(what: &str) -> Error {
    Error::permission(format!(
        "{what} is not allowed: meshql clients are read-only (data changes through pipelines)"
    ))
}

fn no_transactions() -> Status {
    Status::from(Error::user(
        "transactions and savepoints are not supported: meshql is read-only",
    ))
}

fn substrait() -> Status {
    Status::from(Error::user(
        "Substrait plans are not supported; send SQL instead",
    ))
}

/// A listing's FlightInfo: the command is its own ticket.
fn listing<C: arrow_flight::sql::ProstMessageExt>(
    command: &C,
    schema: arrow::datatypes::SchemaRef,
    request: Request<FlightDescriptor>,
) -> Result<Response<FlightInfo>, Status> {
    Ok(Response::new(metadata::flight_info(
        command,
        schema,
        request.into_inner(),
    )?))
}

impl FlightSql {
    /// The FlightInfo of a foreign-key listing (meshql declares no foreign keys).
    fn foreign_keys_info<C: arrow_flight::sql::ProstMessageExt>(
        &self,
        command: &C,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.call(&request, Operation::ListForeignKeys)?;
        listing(command, metadata::foreign_keys_schema(), request)
    }

    /// A foreign-key listing: always empty.
    fn no_foreign_keys(&self, request: &Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.call(request, Operation::ListForeignKeys)?;
        Ok(Response::new(metadata::empty(
            metadata::foreign_keys_schema(),
        )?))
    }
}

#[tonic::async_trait]
impl FlightSqlService for FlightSql {
    type FlightService = FlightSql;

    /// HTTP Basic credentials (or a bearer token) in, a bearer token out: in the `authorization`
    /// response header and as the payload.
    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<HandshakeStream>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let peer = request.remote_addr().map(|a| a.ip());
        let (_, token) = self
            .service
            .login(Protocol::FlightSql, header, peer)
            .await?;
        let response = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into_bytes().into(),
        };
        let mut out: Response<HandshakeStream> =
            Response::new(Box::pin(futures::stream::iter([Ok(response)])));
        let value = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|e| Error::internal(format!("token is not a header value: {e}")))?;
        out.metadata_mut().insert("authorization", value);
        Ok(out)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let call = self.call(&request, Operation::Query)?;
        if query.transaction_id.is_some() {
            return Err(no_transactions());
        }
        let path = self
            .sessions
            .search_path(&self.service, &request, &call.principal)?;
        let info =
            statement::flight_info(self, &call, &path, &query.query, None, request.into_inner())
                .await?;
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let call = self.call(&request, Operation::Fetch)?;
        Ok(Response::new(
            statement::do_get(self, &call, &ticket.statement_handle).await?,
        ))
    }

    async fn do_get_fallback(
        &self,
        request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<DoGetStream>, Status> {
        self.call(&request, Operation::Fetch)?;
        Err(Error::user(format!(
            "not a ticket of this server (message type `{}`); tickets come from GetFlightInfo",
            message.type_url
        ))
        .into())
    }

    async fn get_flight_info_fallback(
        &self,
        command: Command,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.call(&request, Operation::Query)?;
        Err(Error::user(format!(
            "not a Flight SQL command this server answers (message type `{}`)",
            command.type_url()
        ))
        .into())
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let call = self.call(&request, Operation::Prepare)?;
        if query.transaction_id.is_some() {
            return Err(no_transactions());
        }
        let path = self
            .sessions
            .search_path(&self.service, &request, &call.principal)?;
        Ok(prepared::create(self, &call, &path, &query.query).await?)
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let call = self.call(&request, Operation::Prepare)?;
        let handle = query.prepared_statement_handle;
        Ok(prepared::bind(self, &call, &handle, request.into_inner()).await?)
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let call = self.call(&request, Operation::ExecutePrepared)?;
        let handle = query.prepared_statement_handle;
        let info = prepared::flight_info(self, &call, &handle, request.into_inner()).await?;
        Ok(Response::new(info))
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        let call = self.call(&request, Operation::ClosePrepared)?;
        // Handles are stateless: closing only checks that the handle is genuine.
        prepared::verify(self, &call, &query.prepared_statement_handle)?;
        Ok(())
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.call(&request, Operation::ListCatalogs)?;
        listing(&query, query.into_builder().schema(), request)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let call = self.call(&request, Operation::ListCatalogs)?;
        Ok(Response::new(metadata::catalogs(self, &call, query)?))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.call(&request, Operation::ListSchemas)?;
        listing(&query, query.clone().into_builder().schema(), request)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let call = self.call(&request, Operation::ListSchemas)?;
        Ok(Response::new(metadata::schemas(self, &call, query)?))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.call(&request, Operation::ListTables)?;
        listing(&query, query.clone().into_builder().schema(), request)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let call = self.call(&request, Operation::ListTables)?;
        Ok(Response::new(metadata::tables(self, &call, query).await?))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.call(&request, Operation::ListTableTypes)?;
        listing(&query, query.into_builder().schema(), request)
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.call(&request, Operation::ListTableTypes)?;
        Ok(Response::new(metadata::table_types(query)?))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.call(&request, Operation::DescribeServer)?;
        let schema = query.clone().into_builder(&self.sql_info).schema();
        listing(&query, schema, request)
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.call(&request, Operation::DescribeServer)?;
        Ok(Response::new(super::wire::one_batch(
            query.into_builder(&self.sql_info).build(),
        )?))
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.call(&request, Operation::DescribeServer)?;
        let schema = query.into_builder(&self.xdbc).schema();
        listing(&query, schema, request)
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.call(&request, Operation::DescribeServer)?;
        Ok(Response::new(super::wire::one_batch(
            query.into_builder(&self.xdbc).build(),
        )?))
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.call(&request, Operation::ListPrimaryKeys)?;
        listing(&query, metadata::primary_keys_schema(), request)
    }

    async fn do_get_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let call = self.call(&request, Operation::ListPrimaryKeys)?;
        Ok(Response::new(metadata::primary_keys(self, &call, query)?))
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.foreign_keys_info(&query, request)
    }

    async fn do_get_exported_keys(
        &self,
        _query: CommandGetExportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.no_foreign_keys(&request)
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.foreign_keys_info(&query, request)
    }

    async fn do_get_imported_keys(
        &self,
        _query: CommandGetImportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.no_foreign_keys(&request)
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.foreign_keys_info(&query, request)
    }

    async fn do_get_cross_reference(
        &self,
        _query: CommandGetCrossReference,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.no_foreign_keys(&request)
    }

    async fn get_flight_info_substrait_plan(
        &self,
        _query: CommandStatementSubstraitPlan,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.call(&request, Operation::Query)?;
        Err(substrait())
    }

    async fn do_put_statement_update(
        &self,
        ticket: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let call = self.call(&request, Operation::Modify)?;
        let refused = read_only("an update statement");
        Ok(self.service.refuse(&call, Some(&ticket.query), refused)?)
    }

    async fn do_put_prepared_statement_update(
        &self,
        _query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let call = self.call(&request, Operation::Modify)?;
        Ok(self
            .service
            .refuse(&call, None, read_only("a prepared update"))?)
    }

    async fn do_put_statement_ingest(
        &self,
        command: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let call = self.call(&request, Operation::Ingest)?;
        let path = self
            .sessions
            .search_path(&self.service, &request, &call.principal)?;
        let rows = ingest::ingest(self, &call, &path, command, request.into_inner()).await?;
        Ok(rows as i64)
    }

    async fn do_put_substrait_plan(
        &self,
        _ticket: CommandStatementSubstraitPlan,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.call(&request, Operation::Modify)?;
        Err(substrait())
    }

    async fn do_put_fallback(
        &self,
        request: Request<PeekableFlightDataStream>,
        message: Any,
    ) -> Result<Response<<Self as FlightService>::DoPutStream>, Status> {
        self.call(&request, Operation::Modify)?;
        Err(Error::user(format!(
            "not a Flight SQL command this server accepts in DoPut (message type `{}`)",
            message.type_url
        ))
        .into())
    }

    async fn do_put_error_callback(
        &self,
        request: Request<PeekableFlightDataStream>,
        error: DoPutError,
    ) -> Result<Response<<Self as FlightService>::DoPutStream>, Status> {
        self.call(&request, Operation::Modify)?;
        let why = match error {
            DoPutError::MissingCommand => {
                "the upload is empty: no message arrived, so there is no command and no table \
                 (clients uploading zero rows may send nothing; send the schema at least)"
            }
            DoPutError::MissingFlightDescriptor => {
                "the first message of a DoPut must carry the FlightDescriptor naming its command \
                 (ingest, bound parameters)"
            }
        };
        Err(Error::user(why).into())
    }

    async fn do_action_begin_transaction(
        &self,
        _query: ActionBeginTransactionRequest,
        request: Request<Action>,
    ) -> Result<ActionBeginTransactionResult, Status> {
        self.call(&request, Operation::Modify)?;
        Err(no_transactions())
    }

    async fn do_action_end_transaction(
        &self,
        _query: ActionEndTransactionRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        self.call(&request, Operation::Modify)?;
        Err(no_transactions())
    }

    async fn do_action_begin_savepoint(
        &self,
        _query: ActionBeginSavepointRequest,
        request: Request<Action>,
    ) -> Result<ActionBeginSavepointResult, Status> {
        self.call(&request, Operation::Modify)?;
        Err(no_transactions())
    }

    async fn do_action_end_savepoint(
        &self,
        _query: ActionEndSavepointRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        self.call(&request, Operation::Modify)?;
        Err(no_transactions())
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        let operation = match request.get_ref().r#type.as_str() {
            session::SET_SESSION_OPTIONS => Operation::SetOptions,
            session::GET_SESSION_OPTIONS => Operation::GetOptions,
            session::CLOSE_SESSION => Operation::CloseSession,
            actions::CANCEL_FLIGHT_INFO => Operation::Cancel,
            _ => Operation::RunPipeline,
        };
        let call = self.call(&request, operation)?;
        let session_id = Sessions::id_of(&request);
        let action = request.into_inner();
        let mut new_session = None;
        let body = match action.r#type.as_str() {
            session::SET_SESSION_OPTIONS => {
                let options =
                    SetSessionOptionsRequest::decode(action.body.as_ref()).map_err(|e| {
                        Error::user(format!(
                            "invalid {} body: {e}",
                            session::SET_SESSION_OPTIONS
                        ))
                    })?;
                let (result, created) =
                    self.sessions
                        .set(&self.service, &call.principal, session_id, options);
                new_session = created;
                result.encode_to_vec()
            }
            session::GET_SESSION_OPTIONS => self
                .sessions
                .options(&self.service, session_id.as_deref(), &call.principal)
                .encode_to_vec(),
            session::CLOSE_SESSION => self
                .sessions
                .close(session_id.as_deref(), &call.principal)
                .encode_to_vec(),
            crate::proto::RUN_PIPELINE => actions::run_pipeline(self, &call, &action)
                .await?
                .encode_to_vec(),
            actions::CANCEL_FLIGHT_INFO => {
                actions::cancel_flight_info(self, &call, &action)?.encode_to_vec()
            }
            other => {
                let known: Vec<String> = actions::action_types()
                    .into_iter()
                    .map(|a| a.r#type)
                    .collect();
                return Err(Error::user(format!(
                    "unknown action `{other}`; meshql's custom actions: {}",
                    known.join(", ")
                ))
                .into());
            }
        };
        let result = arrow_flight::Result { body: body.into() };
        let mut response: Response<<Self as FlightService>::DoActionStream> =
            Response::new(Box::pin(futures::stream::iter([Ok(result)])));
        if let Some(id) = new_session {
            let cookie = MetadataValue::try_from(format!("{}={id}", session::SESSION_COOKIE))
                .map_err(|e| Error::internal(format!("session cookie: {e}")))?;
            response.metadata_mut().insert("set-cookie", cookie);
        }
        Ok(response)
    }

    async fn list_custom_actions(&self) -> Option<Vec<Result<ActionType, Status>>> {
        Some(actions::action_types().into_iter().map(Ok).collect())
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
