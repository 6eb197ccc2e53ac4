//! The Flight SQL service: authentication, then a thin dispatch to the command groups.

use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::sql::metadata::{SqlInfoData, XdbcTypeInfoData};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionBeginSavepointRequest, ActionBeginSavepointResult, ActionBeginTransactionRequest,
    ActionBeginTransactionResult, ActionClosePreparedStatementRequest,
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult,
    ActionEndSavepointRequest, ActionEndTransactionRequest, CommandGetCatalogs,
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

use super::audit::{AuditLog, AuditRecord};
use super::limits::{Admission, StreamLimits};
use super::session::{self, Sessions};
use super::{actions, ingest, metadata, prepared, sql_info, statement};
use crate::engine::{Engine, SearchPath};
use crate::error::{Error, ErrorKind};
use crate::governance::{Access, Governed, plan_as};
use crate::governance::{Identity, Logins, Principal, Signer};
use crate::proto::session::SetSessionOptionsRequest;
use crate::spec::{Action as Operation, DatasetName};
use datafusion::execution::SessionState;

pub(super) type DoGetStream = <MeshFlightSql as FlightService>::DoGetStream;

/// The Flight SQL service of one mesh.
#[derive(Clone)]
pub struct MeshFlightSql {
    pub(super) engine: Arc<Engine>,
    pub(super) signer: Signer,
    pub(super) identity: Arc<Identity>,
    pub(super) logins: Arc<Logins>,
    pub(super) sql_info: Arc<SqlInfoData>,
    pub(super) xdbc: Arc<XdbcTypeInfoData>,
    pub(super) running: Arc<statement::Running>,
    pub(super) sessions: Arc<Sessions>,
    pub(super) admission: Arc<Admission>,
    pub(super) stream_limits: StreamLimits,
    pub(super) audit: AuditLog,
}

impl MeshFlightSql {
    pub fn new(
        engine: Arc<Engine>,
        signer: Signer,
        identity: Arc<Identity>,
    ) -> crate::Result<Self> {
        let settings = engine.mesh().server.clone();
        // Bulk ingest is supported (into raw layers).
        let sql_info = sql_info::sql_info(&engine.session(), settings.max_sql_bytes, true)?;
        Ok(Self {
            signer,
            logins: Arc::new(Logins::new(Arc::clone(&identity))),
            identity,
            sql_info: Arc::new(sql_info),
            xdbc: Arc::new(sql_info::xdbc_type_info()?),
            running: Arc::new(statement::Running::new()),
            sessions: Arc::new(Sessions::new()),
            admission: Arc::new(Admission::new(&settings)),
            stream_limits: StreamLimits::from_settings(&settings),
            audit: AuditLog::start(
                Arc::clone(&engine),
                settings.audit,
                std::time::Duration::from_secs(settings.audit_flush_secs),
            ),
            engine,
        })
    }

    /// The principal a request comes from; every RPC but the handshake calls this first.
    pub(super) fn principal<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        Ok(self.identity.authenticate(header)?)
    }
}

impl MeshFlightSql {
    /// What `principal` may do (everything on an open mesh without principals).
    pub(super) fn access(&self, principal: &Principal) -> Access {
        Access::new(
            Arc::clone(self.engine.mesh()),
            principal.clone(),
            !self.identity.required(),
        )
    }

    /// Records a finished request in the audit log and hands its result back.
    pub(super) fn audited<T>(
        &self,
        principal: &str,
        rpc: &'static str,
        sql: Option<&str>,
        started: AuditRecord,
        result: Result<T, Status>,
    ) -> Result<T, Status> {
        let mut record = started.outcome(&result);
        record.principal = principal.to_string();
        record.rpc = rpc;
        record.sql = sql.map(str::to_string);
        self.audit.record(record);
        result
    }

    /// Refuses `action` on `dataset` unless the policies allow it.
    pub(super) fn require(
        &self,
        principal: &Principal,
        action: Operation,
        dataset: &DatasetName,
    ) -> Result<(), Status> {
        let decision = self.access(principal).decide(action, dataset);
        if decision.allowed {
            return Ok(());
        }
        Err(Error::permission(format!(
            "`{}` may not {action} `{dataset}` ({})",
            principal.name, decision.reason
        ))
        .into())
    }

    /// Plans `sql` for `principal` and governs the plan: denials, row filters, masks. The
    /// session lists only what the principal may read.
    pub(super) async fn governed_plan(
        &self,
        principal: &Principal,
        path: &SearchPath,
        sql: &str,
    ) -> Result<(Governed, SessionState), Status> {
        let access = self.access(principal);
        Ok(plan_as(&self.engine, &access, path, sql).await?)
    }
}

fn read_only(what: &str) -> Status {
    Status::from(Error::permission(format!(
        "{what} is not allowed: meshql clients are read-only (data changes through pipelines)"
    )))
}

fn no_transactions() -> Status {
    Status::invalid_argument("transactions and savepoints are not supported: meshql is read-only")
}

#[tonic::async_trait]
impl FlightSqlService for MeshFlightSql {
    type FlightService = MeshFlightSql;

    /// HTTP Basic credentials (or a bearer token) in, a bearer token out: in the `authorization`
    /// response header and as the payload.
    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let peer = request.remote_addr().map(|a| a.ip());
        let started = AuditRecord::new("", "Handshake");
        let login = match header {
            Some(h) if h.starts_with("Basic ") => self.logins.login_basic(&h, peer).await,
            other => self.identity.authenticate(other.as_deref()),
        }
        .map_err(Status::from);
        let who = login
            .as_ref()
            .map(|p| p.name.clone())
            .unwrap_or_else(|_| "(unauthenticated)".into());
        let principal = self.audited(&who, "Handshake", None, started, login)?;
        let token = self.identity.issue(&principal);
        let response = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into_bytes().into(),
        };
        let mut out: Response<
            Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>,
        > = Response::new(Box::pin(futures::stream::iter([Ok(response)])));
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
        let principal = self.principal(&request)?;
        if query.transaction_id.is_some() {
            return Err(no_transactions());
        }
        let path = self
            .sessions
            .search_path(&self.engine, &request, &principal);
        let started = AuditRecord::new(&principal.name, "GetFlightInfo");
        let result = statement::flight_info(
            self,
            &principal,
            &path,
            &query.query,
            None,
            request.into_inner(),
        )
        .await;
        self.audited(
            &principal.name,
            "GetFlightInfo",
            Some(&query.query),
            started,
            result,
        )
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let principal = self.principal(&request)?;
        statement::do_get(self, &principal, &ticket.statement_handle).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let principal = self.principal(&request)?;
        if query.transaction_id.is_some() {
            return Err(no_transactions());
        }
        let path = self
            .sessions
            .search_path(&self.engine, &request, &principal);
        let started = AuditRecord::new(&principal.name, "CreatePreparedStatement");
        let result = prepared::create(self, &principal, &path, &query.query).await;
        self.audited(
            &principal.name,
            "CreatePreparedStatement",
            Some(&query.query),
            started,
            result,
        )
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let principal = self.principal(&request)?;
        prepared::bind(
            self,
            &principal,
            &query.prepared_statement_handle,
            request.into_inner(),
        )
        .await
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let principal = self.principal(&request)?;
        let started = AuditRecord::new(&principal.name, "GetFlightInfoPrepared");
        let result = prepared::flight_info(
            self,
            &principal,
            &query.prepared_statement_handle,
            request.into_inner(),
        )
        .await;
        self.audited(
            &principal.name,
            "GetFlightInfoPrepared",
            None,
            started,
            result,
        )
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        let principal = self.principal(&request)?;
        // Handles are stateless: closing only checks that the handle is genuine.
        prepared::verify(self, &principal, &query.prepared_statement_handle).map(|_| ())
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request)?;
        metadata::flight_info(
            &query,
            metadata::catalogs_schema(&query),
            request.into_inner(),
        )
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let principal = self.principal(&request)?;
        let started = AuditRecord::new(&principal.name, "GetCatalogs");
        let result = metadata::do_get_catalogs(self, &principal, query);
        self.audited(&principal.name, "GetCatalogs", None, started, result)
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request)?;
        metadata::flight_info(
            &query,
            metadata::schemas_schema(&query),
            request.into_inner(),
        )
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let principal = self.principal(&request)?;
        let started = AuditRecord::new(&principal.name, "GetDbSchemas");
        let result = metadata::do_get_schemas(self, &principal, query);
        self.audited(&principal.name, "GetDbSchemas", None, started, result)
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request)?;
        metadata::flight_info(
            &query,
            metadata::tables_schema(&query),
            request.into_inner(),
        )
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let principal = self.principal(&request)?;
        let started = AuditRecord::new(&principal.name, "GetTables");
        let result = metadata::do_get_tables(self, &principal, query).await;
        self.audited(&principal.name, "GetTables", None, started, result)
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request)?;
        metadata::flight_info(
            &query,
            metadata::table_types_schema(&query),
            request.into_inner(),
        )
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request)?;
        metadata::do_get_table_types(query)
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request)?;
        let schema = query.clone().into_builder(&self.sql_info).schema();
        metadata::flight_info(&query, schema, request.into_inner())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request)?;
        metadata::one_batch(query.into_builder(&self.sql_info).build())
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request)?;
        let schema = query.into_builder(&self.xdbc).schema();
        metadata::flight_info(&query, schema, request.into_inner())
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request)?;
        metadata::one_batch(query.into_builder(&self.xdbc).build())
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request)?;
        metadata::flight_info(
            &query,
            metadata::primary_keys_schema(),
            request.into_inner(),
        )
    }

    async fn do_get_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let principal = self.principal(&request)?;
        let started = AuditRecord::new(&principal.name, "GetPrimaryKeys");
        let result = metadata::do_get_primary_keys(self, &principal, query);
        self.audited(&principal.name, "GetPrimaryKeys", None, started, result)
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request)?;
        metadata::flight_info(
            &query,
            metadata::foreign_keys_schema(),
            request.into_inner(),
        )
    }

    async fn do_get_exported_keys(
        &self,
        _query: CommandGetExportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request)?;
        metadata::empty(metadata::foreign_keys_schema())
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request)?;
        metadata::flight_info(
            &query,
            metadata::foreign_keys_schema(),
            request.into_inner(),
        )
    }

    async fn do_get_imported_keys(
        &self,
        _query: CommandGetImportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request)?;
        metadata::empty(metadata::foreign_keys_schema())
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request)?;
        metadata::flight_info(
            &query,
            metadata::foreign_keys_schema(),
            request.into_inner(),
        )
    }

    async fn do_get_cross_reference(
        &self,
        _query: CommandGetCrossReference,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request)?;
        metadata::empty(metadata::foreign_keys_schema())
    }

    async fn get_flight_info_substrait_plan(
        &self,
        _query: CommandStatementSubstraitPlan,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request)?;
        Err(Status::invalid_argument(
            "Substrait plans are not supported; send SQL instead",
        ))
    }

    async fn do_put_statement_update(
        &self,
        _ticket: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let principal = self.principal(&request)?;
        let started = AuditRecord::new(&principal.name, "StatementUpdate");
        self.audited(
            &principal.name,
            "StatementUpdate",
            Some(&_ticket.query),
            started,
            Err(read_only("an update statement")),
        )
    }

    async fn do_put_prepared_statement_update(
        &self,
        _query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let principal = self.principal(&request)?;
        let started = AuditRecord::new(&principal.name, "PreparedStatementUpdate");
        self.audited(
            &principal.name,
            "PreparedStatementUpdate",
            None,
            started,
            Err(read_only("a prepared update")),
        )
    }

    async fn do_put_statement_ingest(
        &self,
        command: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let principal = self.principal(&request)?;
        let path = self
            .sessions
            .search_path(&self.engine, &request, &principal);
        let mut started = AuditRecord::new(&principal.name, "StatementIngest");
        started.tables = vec![format!(
            "{}.{}.{}",
            command
                .catalog
                .clone()
                .unwrap_or_else(|| path.domain.clone()),
            command.schema.clone().unwrap_or_else(|| "raw".into()),
            command.table
        )];
        let result = ingest::ingest(self, &principal, &path, command, request.into_inner()).await;
        let mut record = started.outcome(&result);
        record.rows = result.as_ref().ok().map(|n| *n as u64);
        self.audit.record(record);
        result
    }

    async fn do_put_substrait_plan(
        &self,
        _ticket: CommandStatementSubstraitPlan,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.principal(&request)?;
        Err(Status::invalid_argument(
            "Substrait plans are not supported; send SQL instead",
        ))
    }

    async fn do_action_begin_transaction(
        &self,
        _query: ActionBeginTransactionRequest,
        request: Request<Action>,
    ) -> Result<ActionBeginTransactionResult, Status> {
        self.principal(&request)?;
        Err(no_transactions())
    }

    async fn do_action_end_transaction(
        &self,
        _query: ActionEndTransactionRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        self.principal(&request)?;
        Err(no_transactions())
    }

    async fn do_action_begin_savepoint(
        &self,
        _query: ActionBeginSavepointRequest,
        request: Request<Action>,
    ) -> Result<ActionBeginSavepointResult, Status> {
        self.principal(&request)?;
        Err(no_transactions())
    }

    async fn do_action_end_savepoint(
        &self,
        _query: ActionEndSavepointRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        self.principal(&request)?;
        Err(no_transactions())
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        let principal = self.principal(&request)?;
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
                        .set(&self.engine, &principal, session_id, options);
                new_session = created;
                result.encode_to_vec()
            }
            session::GET_SESSION_OPTIONS => self
                .sessions
                .options(session_id.as_deref(), &principal)
                .encode_to_vec(),
            session::CLOSE_SESSION => self
                .sessions
                .close(session_id.as_deref(), &principal)
                .encode_to_vec(),
            actions::RUN_PIPELINE => {
                let started = AuditRecord::new(&principal.name, "RunPipeline");
                let result = actions::run_pipeline(self, &principal, &action).await;
                self.audited(&principal.name, "RunPipeline", None, started, result)?
                    .encode_to_vec()
            }
            actions::CANCEL_FLIGHT_INFO => {
                let started = AuditRecord::new(&principal.name, "CancelFlightInfo");
                let result = actions::cancel_flight_info(self, &principal, &action);
                self.audited(&principal.name, "CancelFlightInfo", None, started, result)?
                    .encode_to_vec()
            }
            other => {
                let known: Vec<String> = actions::action_types()
                    .into_iter()
                    .map(|a| a.r#type)
                    .collect();
                return Err(Status::from(Error::new(
                    ErrorKind::UserInput,
                    format!(
                        "unknown action `{other}`; meshql's custom actions: {}",
                        known.join(", ")
                    ),
                )));
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

    async fn do_get_fallback(
        &self,
        request: Request<Ticket>,
        message: arrow_flight::sql::Any,
    ) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request)?;
        Err(Error::user(format!(
            "not a ticket of this server (message type `{}`); tickets come from GetFlightInfo",
            message.type_url
        ))
        .into())
    }

    async fn get_flight_info_fallback(
        &self,
        command: arrow_flight::sql::Command,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request)?;
        Err(Error::user(format!(
            "not a Flight SQL command this server answers (message type `{}`)",
            command.type_url()
        ))
        .into())
    }

    async fn do_put_fallback(
        &self,
        request: Request<PeekableFlightDataStream>,
        message: arrow_flight::sql::Any,
    ) -> Result<Response<<Self as FlightService>::DoPutStream>, Status> {
        self.principal(&request)?;
        Err(Error::user(format!(
            "not a Flight SQL command this server accepts in DoPut (message type `{}`)",
            message.type_url
        ))
        .into())
    }

    async fn do_put_error_callback(
        &self,
        request: Request<PeekableFlightDataStream>,
        error: arrow_flight::sql::server::DoPutError,
    ) -> Result<Response<<Self as FlightService>::DoPutStream>, Status> {
        self.principal(&request)?;
        let why = match error {
            arrow_flight::sql::server::DoPutError::MissingCommand => {
                "the upload is empty: no message arrived, so there is no command and no table \
                 (clients uploading zero rows may send nothing; send the schema at least)"
            }
            arrow_flight::sql::server::DoPutError::MissingFlightDescriptor => {
                "the first message of a DoPut must carry the FlightDescriptor naming its command \
                 (ingest, bound parameters)"
            }
        };
        Err(Error::user(why).into())
    }

    async fn list_custom_actions(&self) -> Option<Vec<Result<ActionType, Status>>> {
        Some(actions::action_types().into_iter().map(Ok).collect())
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
