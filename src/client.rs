//! A small Flight SQL client over arrow-flight's `FlightSqlServiceClient`, used by
//! `meshql query --server`.

use arrow_flight::Action;
use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use prost::Message;
use tonic::transport::{Channel, Endpoint};

use crate::error::{Error, ErrorKind, Result};
use crate::proto::{RUN_PIPELINE, RunPipelineRequest, RunPipelineResult};

/// A connection to a meshql (or any Flight SQL) server.
pub struct Client {
    inner: FlightSqlServiceClient<Channel>,
    channel: Channel,
}

/// TLS settings of a client: the CA to trust and, for mTLS, the client's certificate and key
/// (PEM files).
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    pub ca: Option<std::path::PathBuf>,
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
}

impl Client {
    /// Connects to `url`: `grpc://host:port` (or `http://`, or bare `host:port`) in plaintext,
    /// `grpc+tls://host:port` (or `https://`) with TLS.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, &ClientTls::default()).await
    }

    /// Connects with TLS settings (used for `grpc+tls://` URLs).
    pub async fn connect_with(url: &str, tls: &ClientTls) -> Result<Self> {
        let (secure, rest) = if let Some(r) = url
            .strip_prefix("grpc+tls://")
            .or_else(|| url.strip_prefix("https://"))
        {
            (true, r)
        } else {
            let r = url
                .strip_prefix("grpc://")
                .or_else(|| url.strip_prefix("grpc+tcp://"))
                .or_else(|| url.strip_prefix("http://"))
                .unwrap_or(url);
            (false, r)
        };
        let scheme = if secure { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{rest}"))
            .map_err(|e| Error::user(format!("invalid server URL `{url}`: {e}")))?;
        if secure {
            crate::install_tls_provider();
            let read = |p: &std::path::Path| {
                std::fs::read(p)
                    .map_err(|e| Error::user(format!("cannot read {}: {e}", p.display())))
            };
            let mut config = tonic::transport::ClientTlsConfig::new();
            if let Some(ca) = &tls.ca {
                config = config.ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?));
            }
            if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
                config = config.identity(tonic::transport::Identity::from_pem(
                    read(cert)?,
                    read(key)?,
                ));
            }
            endpoint = endpoint
                .tls_config(config)
                .map_err(|e| Error::user(format!("invalid TLS settings: {e}")))?;
        }
        let channel = endpoint.connect().await.map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot connect to {url}: {e}"),
            )
        })?;
        Ok(Self {
            inner: FlightSqlServiceClient::new(channel.clone()),
            channel,
        })
    }

    /// Logs in with a user name and password (the Flight handshake); later calls carry the
    /// bearer token the server answers.
    pub async fn login(&mut self, user: &str, password: &str) -> Result<()> {
        // The handshake is sent directly rather than through FlightSqlServiceClient::handshake,
        // which turns the server's status into a string and loses its code.
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let mut request = tonic::Request::new(futures::stream::iter([
            arrow_flight::HandshakeRequest::default(),
        ]));
        let header = format!("Basic {basic}")
            .parse()
            .map_err(|_| Error::user("the user name or password cannot be sent in a header"))?;
        request.metadata_mut().insert("authorization", header);
        let response =
            arrow_flight::flight_service_client::FlightServiceClient::new(self.channel.clone())
                .handshake(request)
                .await
                .map_err(|s| from_status(&s))?;
        let token = response
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Unauthenticated,
                    "the server answered the login without a token",
                )
            })?;
        self.inner.set_token(token.to_string());
        Ok(())
    }

    /// Authenticates later calls with a bearer token (a long-lived token, or one issued earlier).
    pub fn set_token(&mut self, token: &str) {
        self.inner.set_token(token.to_string());
    }

    /// Runs `sql` and collects every batch of every endpoint.
    pub async fn query(&mut self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let info = self
            .inner
            .execute(sql.to_string(), None)
            .await
            .map_err(from_flight)?;
        let schema = std::sync::Arc::new(
            info.clone()
                .try_decode_schema()
                .map_err(|e| Error::internal(format!("server sent an invalid schema: {e}")))?,
        );
        let mut batches = Vec::new();
        for endpoint in info.endpoint {
            let ticket = endpoint
                .ticket
                .ok_or_else(|| Error::internal("server sent an endpoint without a ticket"))?;
            let stream = self.inner.do_get(ticket).await.map_err(from_flight)?;
            let mut part: Vec<RecordBatch> = stream.try_collect().await.map_err(from_flight)?;
            batches.append(&mut part);
        }
        Ok((schema, batches))
    }
}

impl Client {
    /// Runs transforms on the server (the `meshql.RunPipeline` action) and waits for the result.
    pub async fn run_pipeline(
        &mut self,
        select: &[String],
        force: bool,
    ) -> Result<RunPipelineResult> {
        let request = RunPipelineRequest {
            select: select.to_vec(),
            force,
        };
        let action = Action::new(RUN_PIPELINE, request.encode_to_vec());
        let mut results = self.inner.do_action(action).await.map_err(from_flight)?;
        let first = results
            .message()
            .await
            .map_err(|s| from_status(&s))?
            .ok_or_else(|| Error::internal("the server answered the run with no result"))?;
        RunPipelineResult::decode(first.body.as_ref())
            .map_err(|e| Error::internal(format!("invalid run result from the server: {e}")))
    }
}

/// Recovers the server's error kind from the gRPC status code.
pub fn from_flight(e: FlightError) -> Error {
    match e {
        FlightError::Tonic(status) => from_status(&status),
        other => Error::new(ErrorKind::Unavailable, other.to_string()),
    }
}

pub fn from_status(status: &tonic::Status) -> Error {
    use tonic::Code;
    let kind = match status.code() {
        Code::InvalidArgument | Code::OutOfRange => ErrorKind::UserInput,
        Code::NotFound => ErrorKind::NotFound,
        Code::PermissionDenied => ErrorKind::PermissionDenied,
        Code::Unauthenticated => ErrorKind::Unauthenticated,
        Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => ErrorKind::Conflict,
        Code::ResourceExhausted | Code::DeadlineExceeded => ErrorKind::ResourceExhausted,
        // meshql's server never answers Unknown: it comes from the transport (a dropped
        // connection), not from a bug.
        Code::Unavailable | Code::Unknown => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    };
    Error::new(kind, status.message().to_string())
}
