//! Arrow Flight SQL over the mesh: `meshql serve`.
//!
//! [`Server::bind`] takes the port (port 0 picks a free one) before [`Server::serve`] accepts
//! connections, so a caller knows the address as soon as the server is reachable. The service
//! is split by command group: statements, metadata listings, and refusals of write paths.

mod actions;
mod ingest;
mod metadata;
mod prepared;
mod service;
mod session;
mod sql_info;
mod statement;
mod ticket;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

pub use actions::RUN_PIPELINE;
pub use service::MeshFlightSql;
pub use ticket::{Purpose, SignedStatement};

use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::governance::{Identity, Signer};

/// Largest gRPC message accepted or sent (tonic's default is 4 MiB).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// A Flight SQL server bound to an address, not yet serving.
pub struct Server {
    service: MeshFlightSql,
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl Server {
    /// Binds `addr`; connections queue until [`Server::serve`] runs.
    pub async fn bind(engine: Arc<Engine>, addr: SocketAddr) -> Result<Self> {
        let signer = Signer::from_setting(engine.mesh().server.signing_key.as_deref())?;
        let identity = Arc::new(Identity::new(engine.mesh(), signer.clone()));
        if !identity.required() {
            tracing::warn!("the mesh declares no principals: every client is anonymous");
        }
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot listen on {addr}: {e}"),
            )
        })?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| Error::internal(format!("bound socket has no address: {e}")))?;
        Ok(Self {
            service: MeshFlightSql::new(engine, signer, identity)?,
            listener,
            local_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
        let svc = FlightServiceServer::new(self.service)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(TcpListenerStream::new(self.listener), shutdown)
            .await
            .map_err(|e| Error::new(ErrorKind::Unavailable, format!("server stopped: {e}")))
    }
}
