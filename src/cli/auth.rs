//! How the client commands (`--server`) authenticate.

use std::path::PathBuf;

use meshql::Result;
use meshql::client::{Client, ClientTls};

/// How to authenticate against a server (`--server`).
#[derive(Debug, Clone, clap::Args)]
pub struct Auth {
    /// User name for the server's handshake.
    #[arg(long, env = "MESHQL_USER")]
    user: Option<String>,
    /// Password for `--user` (prefer the environment variable).
    #[arg(long, env = "MESHQL_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// A bearer token instead of a user name and password.
    #[arg(long, env = "MESHQL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// CA certificate (PEM) to trust for `grpc+tls://` servers.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for servers that require one (mTLS).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) of `--tls-cert`.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl Auth {
    /// A client connected to `url`, logged in as these options say.
    pub async fn connect(&self, url: &str) -> Result<Client> {
        let tls = ClientTls {
            ca: self.tls_ca.clone(),
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
        };
        let mut client = Client::connect_with(url, &tls).await?;
        match (&self.user, &self.token) {
            (Some(user), _) => {
                let password = self.password.clone().unwrap_or_default();
                client.login(user, &password).await?;
            }
            (None, Some(token)) => client.set_token(token),
            (None, None) => {}
        }
        Ok(client)
    }
}
