//! meshql: a company's data domains as one governed, queryable data mesh.
//!
//! Module map (imports flow downward only): `server` (front ends) and `client` → `service` (the
//! query service) → `pipeline`, `governance` → `quality` → `engine` → `catalog` → `storage` →
//! `spec`; `error`, `human` (sizes and durations for people) and `proto` are shared by all. No two
//! files of one folder import each other in a circle. `tests/it/layering.rs` keeps this true.

pub mod catalog;
pub mod client;
pub mod engine;
pub mod error;
pub mod governance;
pub mod human;
pub mod pipeline;
pub mod quality;

/// Messages of `proto/meshql.proto`: the bodies of meshql's custom Flight actions.
pub mod proto {
    /// `Action.type` of the run-pipeline action.
    pub const RUN_PIPELINE: &str = "meshql.RunPipeline";

    include!(concat!(env!("OUT_DIR"), "/meshql.v1.rs"));

    /// The Flight protocol's session-option messages (`proto/flight_session.proto`).
    pub mod session {
        include!(concat!(env!("OUT_DIR"), "/meshql.flight.rs"));
    }
}

pub mod server;
pub mod service;
pub mod spec;
pub mod storage;

pub use error::{Error, ErrorKind, Result};

/// Selects rustls's crypto provider for TLS (several are linked in; rustls cannot choose alone).
pub(crate) fn install_tls_provider() {
    // Fails only when a provider is already installed, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
