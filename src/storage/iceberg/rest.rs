//! An Iceberg REST catalog (the Iceberg REST catalog API: Polaris, Lakekeeper, Nessie,
//! Gravitino, Unity Catalog, Apache Iceberg's own server) as the warehouse's catalog.
//!
//! Only what meshql's tables need: the catalog's configuration (its path prefix), loading,
//! creating and registering tables in namespaces `<domain>.<layer>`, and commits. A commit
//! sends the new snapshot (whose manifests meshql wrote beside the table) as table updates with
//! two requirements — the table is the one loaded, and its `main` branch is still at the
//! snapshot the commit was built on — so the catalog applies it atomically or answers 409, and
//! the writer tries again on the new metadata, as with the embedded catalog.
//!
//! iceberg-rust's REST client is not used: it commits only through iceberg-rust's own
//! transaction actions, which cannot express the overwrite snapshots meshql builds.

use std::time::Duration;

use iceberg::io::FileIO;
use iceberg::spec::{Schema, TableMetadata};
use iceberg::table::Table;
use iceberg::{TableIdent, TableRequirement, TableUpdate};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use url::Url;

use crate::error::{Error, ErrorKind, Result};
use crate::spec::IcebergCatalogSettings;
use crate::spec::settings::literal_or_env;

/// Longest wait for one answer of the catalog.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A REST catalog, by its base URL.
#[derive(Debug)]
pub struct RestCatalog {
    base: Url,
    warehouse: Option<String>,
    client: reqwest::Client,
    /// `v1/<prefix>/` as the catalog's configuration gives it, asked for once.
    prefix: OnceCell<Vec<String>>,
}

/// The answer to loading, creating or registering a table.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct LoadTable {
    metadata_location: Option<String>,
    metadata: TableMetadata,
}

impl RestCatalog {
    /// The catalog `settings` name; secrets given as `env:NAME` are read now.
    pub fn new(settings: &IcebergCatalogSettings) -> Result<Self> {
        let uri = settings
            .uri
            .as_deref()
            .ok_or_else(|| Error::user("an Iceberg REST catalog needs its `uri`"))?;
        let base = Url::parse(uri)
            .map_err(|e| Error::user(format!("invalid REST catalog URL `{uri}`: {e}")))?;
        let mut headers = HeaderMap::new();
        let secret =
            |value: &str, what: &str| literal_or_env(value, &format!("iceberg_catalog.{what}"));
        let invalid =
            |what: &str| Error::user(format!("iceberg_catalog.{what} is not a valid header"));
        if let Some(token) = &settings.token {
            let value = format!("Bearer {}", secret(token, "token")?);
            let mut value = HeaderValue::from_str(&value).map_err(|_| invalid("token"))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        for (name, value) in &settings.headers {
            let what = format!("headers.{name}");
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid(&what))?;
            let mut value =
                HeaderValue::from_str(&secret(value, &what)?).map_err(|_| invalid(&what))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| Error::internal(format!("cannot build an HTTP client: {e}")))?;
        Ok(Self {
            base,
            warehouse: settings.warehouse.clone(),
            client,
            prefix: OnceCell::new(),
        })
    }

    /// The catalog's base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The table `ident` as the catalog has it; `None` if it does not exist.
    pub async fn load(&self, ident: &TableIdent) -> Result<Option<Table>> {
        let url = self.table_url(ident).await?;
        match self.call(Method::GET, url, None).await? {
            (StatusCode::NOT_FOUND, _) => Ok(None),
            (status, body) if status.is_success() => self.table(ident, &body).map(Some),
            (status, body) => Err(self.refused(status, &body, &format!("load `{ident}`"))),
        }
    }

    /// Creates `ident` with `schema` and no snapshot at `location` (its namespace too, if new).
    /// Another writer creating it first is no error: its table is returned.
    pub async fn create(
        &self,
        ident: &TableIdent,
        schema: &Schema,
        location: &str,
    ) -> Result<Table> {
        self.ensure_namespace(ident).await?;
        let url = self.tables_url(ident, &[]).await?;
        let body = json!({"name": ident.name(), "location": location, "schema": schema});
        match self.call(Method::POST, url, Some(body)).await? {
            (status, body) if status.is_success() => self.table(ident, &body),
            (StatusCode::CONFLICT, _) => self.existing(ident).await,
            (status, body) => Err(self.refused(status, &body, &format!("create `{ident}`"))),
        }
    }

    /// Registers the existing table `ident` at its metadata file `metadata`.
    pub async fn register(&self, ident: &TableIdent, metadata: &str) -> Result<Table> {
        self.ensure_namespace(ident).await?;
        let url = self.namespace_url(ident, &["register"]).await?;
        let body = json!({"name": ident.name(), "metadata-location": metadata});
        match self.call(Method::POST, url, Some(body)).await? {
            (status, body) if status.is_success() => self.table(ident, &body),
            (StatusCode::CONFLICT, _) => self.existing(ident).await,
            (status, body) => Err(self.refused(status, &body, &format!("register `{ident}`"))),
        }
    }

    /// Applies `updates` to `ident` if `requirements` still hold; `false` when another commit
    /// got there first (409).
    pub async fn commit(
        &self,
        ident: &TableIdent,
        requirements: &[TableRequirement],
        updates: &[TableUpdate],
    ) -> Result<bool> {
        let url = self.table_url(ident).await?;
        let body = json!({"requirements": requirements, "updates": updates});
        match self.call(Method::POST, url, Some(body)).await? {
            (status, _) if status.is_success() => Ok(true),
            (StatusCode::CONFLICT, _) => Ok(false),
            (status, body) => Err(self.refused(status, &body, &format!("commit to `{ident}`"))),
        }
    }

    async fn existing(&self, ident: &TableIdent) -> Result<Table> {
        self.load(ident).await?.ok_or_else(|| {
            Error::conflict(format!(
                "the Iceberg REST catalog `{}` says `{ident}` exists, then that it does not",
                self.base
            ))
        })
    }

    async fn ensure_namespace(&self, ident: &TableIdent) -> Result<()> {
        let namespace: Vec<&str> = ident.namespace().iter().map(String::as_str).collect();
        let url = self.url(&["namespaces"]).await?;
        let body = json!({"namespace": namespace});
        match self.call(Method::POST, url, Some(body)).await? {
            (status, _) if status.is_success() || status == StatusCode::CONFLICT => Ok(()),
            (status, body) => Err(self.refused(
                status,
                &body,
                &format!("create namespace `{}`", namespace.join(".")),
            )),
        }
    }

    /// A table of a load, create or register answer. Its files are on the local file system
    /// (this release reads no object store through Iceberg).
    fn table(&self, ident: &TableIdent, body: &[u8]) -> Result<Table> {
        let loaded: LoadTable = serde_json::from_slice(body).map_err(|e| {
            Error::unavailable(format!(
                "the Iceberg REST catalog `{}` answered `{ident}` with something that is not a \
                 table: {e}",
                self.base
            ))
        })?;
        let location = loaded.metadata.location().to_string();
        if !location.starts_with("file:/") && !location.starts_with('/') {
            return Err(Error::user(format!(
                "`{ident}` is at `{location}`; this build reads and writes Iceberg tables on the \
                 local file system only"
            )));
        }
        let mut builder = Table::builder()
            .file_io(FileIO::new_with_fs())
            .runtime(iceberg::Runtime::current())
            .metadata(loaded.metadata)
            .identifier(ident.clone());
        if let Some(at) = loaded.metadata_location {
            builder = builder.metadata_location(at);
        }
        Ok(builder.build()?)
    }

    /// `v1/<prefix>/<parts>`.
    async fn url(&self, parts: &[&str]) -> Result<Url> {
        let prefix = self.prefix.get_or_try_init(|| self.config()).await?;
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| Error::user(format!("`{}` cannot be a base URL", self.base)))?
            .pop_if_empty()
            .push("v1")
            .extend(prefix)
            .extend(parts);
        Ok(url)
    }

    /// `.../namespaces/<domain>\u{1f}<layer>/<parts>`.
    async fn namespace_url(&self, ident: &TableIdent, parts: &[&str]) -> Result<Url> {
        let namespace = ident.namespace().join("\u{1f}");
        let mut all = vec!["namespaces", namespace.as_str()];
        all.extend_from_slice(parts);
        self.url(&all).await
    }

    async fn tables_url(&self, ident: &TableIdent, parts: &[&str]) -> Result<Url> {
        let mut all = vec!["tables"];
        all.extend_from_slice(parts);
        self.namespace_url(ident, &all).await
    }

    async fn table_url(&self, ident: &TableIdent) -> Result<Url> {
        self.tables_url(ident, &[ident.name()]).await
    }

    /// The path prefix the catalog's configuration sets (`overrides.prefix`), split.
    async fn config(&self) -> Result<Vec<String>> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| Error::user(format!("`{}` cannot be a base URL", self.base)))?
            .pop_if_empty()
            .extend(["v1", "config"]);
        if let Some(warehouse) = &self.warehouse {
            url.query_pairs_mut().append_pair("warehouse", warehouse);
        }
        let (status, body) = self.call(Method::GET, url, None).await?;
        if !status.is_success() {
            return Err(self.refused(status, &body, "read its configuration"));
        }
        let config: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let prefix = ["overrides", "defaults"]
            .iter()
            .find_map(|k| config.get(k)?.get("prefix")?.as_str())
            .unwrap_or_default();
        Ok(prefix
            .split('/')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect())
    }

    async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<Value>,
    ) -> Result<(StatusCode, Vec<u8>)> {
        let mut request = self.client.request(method, url);
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(&body).map_err(|e| Error::internal(e.to_string()))?);
        }
        let unreachable = |e: reqwest::Error| {
            Error::unavailable(format!(
                "the Iceberg REST catalog `{}` cannot be reached: {}",
                self.base,
                causes(&e)
            ))
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?;
        Ok((status, body.to_vec()))
    }

    /// The error for an answer other than the ones expected, with the catalog's message.
    fn refused(&self, status: StatusCode, body: &[u8], doing: &str) -> Error {
        let said = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| Some(v.get("error")?.get("message")?.as_str()?.to_string()))
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned());
        let message = format!(
            "the Iceberg REST catalog `{}` refused to {doing} ({status}): {said}",
            self.base
        );
        match status {
            StatusCode::UNAUTHORIZED => Error::new(
                ErrorKind::Unauthenticated,
                format!("{message}; check iceberg_catalog.token"),
            ),
            StatusCode::FORBIDDEN => Error::permission(message),
            StatusCode::NOT_FOUND => Error::not_found(message),
            StatusCode::CONFLICT => Error::conflict(message),
            s if s.is_server_error() => Error::unavailable(message),
            _ => Error::user(message),
        }
    }
}

/// `e` and its sources, `: `-separated (reqwest's own message leaves out why a connection failed).
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let more = cause.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        next = cause.source();
    }
    text
}
