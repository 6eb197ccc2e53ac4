//! Who is calling and with which request: the context every service call carries, and the
//! names the audit log records.

use chrono::{DateTime, Utc};

use crate::governance::Principal;

/// The requests of the front ends, as the audit log names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rpc {
    Handshake,
    GetFlightInfo,
    DoGet,
    CreatePreparedStatement,
    GetFlightInfoPrepared,
    GetCatalogs,
    GetDbSchemas,
    GetTables,
    GetPrimaryKeys,
    StatementUpdate,
    PreparedStatementUpdate,
    StatementIngest,
    RunPipeline,
    CancelFlightInfo,
}

impl Rpc {
    /// The name in `mesh.ops.audit.rpc` and the `meshql::audit` log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Rpc::Handshake => "Handshake",
            Rpc::GetFlightInfo => "GetFlightInfo",
            Rpc::DoGet => "DoGet",
            Rpc::CreatePreparedStatement => "CreatePreparedStatement",
            Rpc::GetFlightInfoPrepared => "GetFlightInfoPrepared",
            Rpc::GetCatalogs => "GetCatalogs",
            Rpc::GetDbSchemas => "GetDbSchemas",
            Rpc::GetTables => "GetTables",
            Rpc::GetPrimaryKeys => "GetPrimaryKeys",
            Rpc::StatementUpdate => "StatementUpdate",
            Rpc::PreparedStatementUpdate => "PreparedStatementUpdate",
            Rpc::StatementIngest => "StatementIngest",
            Rpc::RunPipeline => "RunPipeline",
            Rpc::CancelFlightInfo => "CancelFlightInfo",
        }
    }
}

impl std::fmt::Display for Rpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request of an authenticated principal.
#[derive(Debug, Clone)]
pub struct Call {
    pub principal: Principal,
    pub rpc: Rpc,
    pub started: DateTime<Utc>,
}

impl Call {
    pub fn new(principal: Principal, rpc: Rpc) -> Self {
        Self {
            principal,
            rpc,
            started: Utc::now(),
        }
    }
}
