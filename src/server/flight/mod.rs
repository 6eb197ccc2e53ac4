//! Arrow Flight SQL over the query service: a thin adapter.
//!
//! An interceptor authenticates every request once, before its handler runs; [`service`]
//! dispatches each Flight SQL command to a small file of its group — `statement` (queries,
//! tickets), `prepared` (prepared statements), `metadata` (listings), `sql_info` (GetSqlInfo,
//! GetXdbcTypeInfo), `session` (session options), `ingest` (bulk ingest) and `actions` (meshql's
//! custom actions, cancellation) — which translate between the protocol and [`QueryService`].
//! How results travel is in `wire`; signed tickets and handles in `ticket`; bytes that are not a
//! Flight SQL message are answered in `undecodable`.

mod actions;
mod ingest;
mod metadata;
mod prepared;
mod service;
mod session;
mod sql_info;
mod state;
mod statement;
mod status;
mod ticket;
mod undecodable;
mod wire;

pub use state::FlightSql;
pub use ticket::{Purpose, SignedStatement};
