//! The front ends of `meshql serve`: thin adapters over the query service (`crate::service`),
//! which decides policies, limits and audit once for all of them. Today: Arrow Flight SQL
//! ([`flight`]).
//!
//! [`Server::bind`] takes the port (port 0 picks a free one) before [`Server::serve`] accepts
//! connections, so a caller knows the address as soon as the server is reachable. The transport
//! (TLS, connection limits, HTTP/2 settings) is here; the protocol in [`flight`].

mod connections;
pub mod flight;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::ServerTlsConfig;

pub use flight::{FlightSql, Purpose, SignedStatement};

use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::service::QueryService;
use crate::spec::TlsSettings;

/// Largest gRPC message accepted or sent (tonic's default is 4 MiB).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// Largest header block a client may send: room for a long JWT, so oversized credentials get a
/// clear answer from the service instead of a reset stream.
const MAX_HEADER_BYTES: u32 = 96 * 1024;

/// Requests one connection may have in flight.
const MAX_STREAMS_PER_CONNECTION: u32 = 256;

/// A Flight SQL server bound to an address, not yet serving.
pub struct Server {
    service: Arc<QueryService>,
    tls: Option<ServerTlsConfig>,
    listener: TcpListener,
    local_addr: SocketAddr,
    connections: connections::ConnectionLimits,
}

impl Server {
    /// Binds `addr`; connections queue until [`Server::serve`] runs.
    pub async fn bind(engine: Arc<Engine>, addr: SocketAddr) -> Result<Self> {
        let service = QueryService::new(engine)?;
        Self::bind_service(service, addr).await
    }

    /// Binds `addr` for a query service built by the caller.
    pub async fn bind_service(service: Arc<QueryService>, addr: SocketAddr) -> Result<Self> {
        if !service.requires_login() {
            tracing::warn!("the mesh declares no principals: every client is anonymous");
        }
        let settings = &service.engine().mesh().server;
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot listen on {addr}: {e}"),
            )
        })?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| Error::internal(format!("bound socket has no address: {e}")))?;
        let tls = settings.tls.as_ref().map(tls_config).transpose()?;
        let idle = (settings.idle_timeout_secs > 0)
            .then(|| std::time::Duration::from_secs(settings.idle_timeout_secs));
        let connections = connections::ConnectionLimits::new(settings.max_connections, idle);
        Ok(Self {
            connections,
            tls,
            service,
            listener,
            local_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether clients must connect with TLS.
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
        let svc = FlightSql::new(Arc::clone(&self.service))?.into_grpc(MAX_MESSAGE_BYTES);
        let mut builder = tonic::transport::Server::builder()
            .http2_max_header_list_size(MAX_HEADER_BYTES)
            .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
            // Peers that vanish without closing are found and their connections freed.
            .http2_keepalive_interval(Some(std::time::Duration::from_secs(60)))
            .http2_keepalive_timeout(Some(std::time::Duration::from_secs(20)));
        if let Some(tls) = self.tls {
            builder = builder
                .tls_config(tls)
                .map_err(|e| Error::user(format!("invalid TLS configuration: {e}")))?;
        }
        let served = builder
            .add_service(svc)
            .serve_with_incoming_shutdown(incoming(self.listener, self.connections), shutdown)
            .await
            .map_err(|e| Error::new(ErrorKind::Unavailable, format!("server stopped: {e}")));
        // The audit records of the last requests are written before the server is gone.
        self.service.flush_audit().await;
        served
    }
}

/// Accepted connections within the connection limits, with Nagle's algorithm off: small
/// responses (one batch, a listing) must not wait for delayed ACKs, which otherwise add tens of
/// milliseconds to every call.
fn incoming(
    listener: TcpListener,
    limits: connections::ConnectionLimits,
) -> impl futures::Stream<Item = std::io::Result<connections::Limited>> {
    use futures::StreamExt;
    TcpListenerStream::new(listener).filter_map(move |accepted| {
        let admitted = match accepted {
            Ok(stream) => {
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::warn!(error = %e, "cannot disable Nagle's algorithm on a connection");
                }
                limits.admit(stream).map(Ok)
            }
            // A failed accept (e.g. out of file descriptors) is logged; the server goes on.
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a connection");
                None
            }
        };
        futures::future::ready(admitted)
    })
}

/// The server's TLS identity and, for mTLS, the CA its clients' certificates must chain to.
fn tls_config(settings: &TlsSettings) -> Result<ServerTlsConfig> {
    crate::install_tls_provider();
    let read = |path: &str| {
        std::fs::read(path).map_err(|e| Error::user(format!("cannot read TLS file {path}: {e}")))
    };
    let identity =
        tonic::transport::Identity::from_pem(read(&settings.cert)?, read(&settings.key)?);
    let mut config = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &settings.client_ca {
        config = config.client_ca_root(tonic::transport::Certificate::from_pem(read(ca)?));
    }
    Ok(config)
}
