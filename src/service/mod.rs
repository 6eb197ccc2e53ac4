//! The query service: the one API every front end uses (Flight SQL today; the PostgreSQL wire and
//! HTTP next), so that policies, limits and audit are decided once, never per protocol.
//!
//! [`QueryService`] authenticates credentials into principals, plans statements as a principal
//! (guard, read-only check, governance rewrite: [`QueryService::plan`]), runs them as streams with
//! the memory cap, deadline, row cap, cancellation and audit attached
//! ([`QueryService::execute`]), keeps the plans of repeated statements ([`PlanCache`]) and their
//! answers ([`ResultCache`]), answers governed listings, ingests into raw layers and runs
//! pipelines. Every call carries a [`Call`]: who asks, with which request. [`serving`] holds what
//! `meshql serve` does around requests.

mod admission;
mod api;
mod audit;
mod cancel;
mod ingest;
mod lease;
mod listings;
mod operation;
mod parked;
mod plans;
mod query;
mod results;
mod runs;
pub mod serving;
mod statement;
mod stream;

pub use admission::StreamLimits;
pub use api::QueryService;
pub use audit::{AuditLog, AuditRecord};
pub use cancel::QueryId;
pub use ingest::{IfExists, IfMissing, IngestTarget};
pub use lease::{Always, Lease, LeaseFile};
pub use listings::{DESCRIPTION, KeyColumn, ListedTable, TableFilter, like};
pub use operation::{Call, Operation, Protocol};
pub use plans::{PlanCache, PlanStats};
pub use results::{CacheStats, ResultCache};
pub use statement::{Planned, Statement, bind};
pub use stream::QueryStream;
