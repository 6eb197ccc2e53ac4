//! Who asks for what, through which front end: the context every service call carries, in words
//! no protocol owns. The audit log records the [`Operation`], the [`Protocol`] and the outcome.

use chrono::{DateTime, Utc};

use crate::governance::Principal;

/// The front end a call came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Arrow Flight SQL (ADBC, the Flight SQL JDBC driver, `meshql query --url`).
    FlightSql,
    /// The `meshql` command line in this process (`meshql query`, `meshql history`).
    Cli,
}

impl Protocol {
    /// The name in `mesh.ops.audit.protocol` and the `meshql::audit` log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::FlightSql => "flight_sql",
            Protocol::Cli => "cli",
        }
    }
}

/// What a caller asks of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Credentials checked for a principal.
    Authenticate,
    /// A statement planned and its result schema described.
    Query,
    /// A planned statement run and its rows streamed.
    Fetch,
    /// A prepared statement created, or its parameters bound.
    Prepare,
    /// A prepared statement planned with its parameters.
    ExecutePrepared,
    /// A prepared statement released.
    ClosePrepared,
    ListCatalogs,
    ListSchemas,
    ListTables,
    ListTableTypes,
    ListPrimaryKeys,
    ListForeignKeys,
    /// What the server supports: SQL features, types.
    DescribeServer,
    /// A statement or transaction that would change data; clients are read-only, so refused.
    Modify,
    /// Rows appended to (or replacing) a raw-layer table by its domain's owners.
    Ingest,
    RunPipeline,
    /// A running query stopped.
    Cancel,
    SetOptions,
    GetOptions,
    CloseSession,
}

impl Operation {
    /// The name in `mesh.ops.audit.operation` and the `meshql::audit` log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Authenticate => "authenticate",
            Operation::Query => "query",
            Operation::Fetch => "fetch",
            Operation::Prepare => "prepare",
            Operation::ExecutePrepared => "execute_prepared",
            Operation::ClosePrepared => "close_prepared",
            Operation::ListCatalogs => "list_catalogs",
            Operation::ListSchemas => "list_schemas",
            Operation::ListTables => "list_tables",
            Operation::ListTableTypes => "list_table_types",
            Operation::ListPrimaryKeys => "list_primary_keys",
            Operation::ListForeignKeys => "list_foreign_keys",
            Operation::DescribeServer => "describe_server",
            Operation::Modify => "modify",
            Operation::Ingest => "ingest",
            Operation::RunPipeline => "run_pipeline",
            Operation::Cancel => "cancel",
            Operation::SetOptions => "set_options",
            Operation::GetOptions => "get_options",
            Operation::CloseSession => "close_session",
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request of an authenticated principal.
#[derive(Debug, Clone)]
pub struct Call {
    pub principal: Principal,
    pub operation: Operation,
    pub protocol: Protocol,
    pub started: DateTime<Utc>,
}

impl Call {
    pub fn new(principal: Principal, protocol: Protocol, operation: Operation) -> Self {
        Self {
            principal,
            operation,
            protocol,
            started: Utc::now(),
        }
    }
}
