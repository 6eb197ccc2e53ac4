//! What every Flight SQL command file shares: the query service, sessions, the server's SQL
//! info, and the principal each request was authenticated as (once, by an interceptor).

use std::sync::Arc;

use arrow_flight::flight_service_server::FlightServiceServer;
use arrow_flight::sql::metadata::{SqlInfoData, XdbcTypeInfoData};
use tonic::service::interceptor::{InterceptedService, Interceptor};
use tonic::{Request, Status};

use super::undecodable::Undecodable;
use super::{session, sql_info};
use crate::error::{Error, Result};
use crate::governance::Principal;
use crate::service::{Call, Operation, Protocol, QueryService};

/// The Flight SQL front end of one mesh.
#[derive(Clone)]
pub struct FlightSql {
    pub(super) service: Arc<QueryService>,
    pub(super) sessions: Arc<session::Sessions>,
    pub(super) sql_info: Arc<SqlInfoData>,
    pub(super) xdbc: Arc<XdbcTypeInfoData>,
    /// Send Utf8View/BinaryView as they are (`server.view_types`).
    pub(super) keep_views: bool,
}

/// The principal an interceptor resolved for a request (or why it could not).
#[derive(Clone)]
struct Authenticated(std::result::Result<Principal, Arc<Error>>);

/// Resolves the principal of every request before its handler runs (the handshake, which logs
/// in, ignores what it finds).
#[derive(Clone)]
pub struct Authenticate(Arc<QueryService>);

impl Interceptor for Authenticate {
    fn call(&mut self, mut request: Request<()>) -> std::result::Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let who = self.0.authenticate(header).map_err(Arc::new);
        request.extensions_mut().insert(Authenticated(who));
        Ok(request)
    }
}

impl FlightSql {
    pub fn new(service: Arc<QueryService>) -> Result<Self> {
        let engine = service.engine();
        let settings = &engine.mesh().server;
        // Bulk ingest is supported (into raw layers).
        let sql_info = sql_info::sql_info(&engine.session(), settings.max_sql_bytes, true)?;
        Ok(Self {
            keep_views: settings.view_types,
            sql_info: Arc::new(sql_info),
            xdbc: Arc::new(sql_info::xdbc_type_info()?),
            sessions: Arc::new(session::Sessions::new()),
            service,
        })
    }

    /// The gRPC service, with authentication resolved once per request by an interceptor.
    pub fn into_grpc(
        self,
        max_message_bytes: usize,
    ) -> InterceptedService<FlightServiceServer<Undecodable>, Authenticate> {
        let authenticate = Authenticate(Arc::clone(&self.service));
        let grpc = FlightServiceServer::new(Undecodable(self))
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes);
        InterceptedService::new(grpc, authenticate)
    }

    /// The call a request makes: its principal (resolved by the interceptor) and RPC.
    pub(super) fn call<T>(
        &self,
        request: &Request<T>,
        operation: Operation,
    ) -> std::result::Result<Call, Status> {
        let principal = match request.extensions().get::<Authenticated>() {
            Some(Authenticated(Ok(p))) => p.clone(),
            Some(Authenticated(Err(e))) => return Err(Status::from(e.duplicate())),
            // Not through the interceptor (a test calling the service directly).
            None => {
                let header = request
                    .metadata()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok());
                self.service.authenticate(header)?
            }
        };
        Ok(Call::new(principal, Protocol::FlightSql, operation))
    }
}
