//! meshql: a company's data domains as one governed, queryable data mesh.
//!
//! Module map (imports flow downward only):
//! `server` → `pipeline` → `engine` → `catalog` → `storage` → `spec`; `error` is shared.

pub mod catalog;
pub mod client;
pub mod engine;
pub mod error;
pub mod output;
pub mod pipeline;
pub mod server;
pub mod spec;
pub mod storage;

pub use error::{Error, ErrorKind, Result};
