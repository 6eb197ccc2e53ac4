//! The YAML files domain teams and the platform team write, exactly as they are on disk.
//!
//! These structs are the single source of truth for the file formats: serde reads them, schemars
//! turns them into the JSON Schema shipped in `schemas/`, and the README documents them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `catalog/mesh.yaml`: the mesh, its warehouse, its domains and server settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(deny_unknown_fields)]
#[schemars(title = "meshql mesh.yaml")]
pub struct MeshFile {
    /// Name of the mesh, shown by `meshql catalog` and the server banner.
    pub name: String,
    /// What this mesh is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Storage root: a folder (relative to the mesh folder) or a `file://` / `s3://` URL.
    /// Default: `./warehouse` under the mesh folder.
    #[serde(default)]
    pub warehouse: Option<String>,
    /// Table format for datasets that do not choose one.
    #[serde(default)]
    pub default_format: TableFormatName,
    /// The domains of the mesh.
    pub domains: Vec<DomainRef>,
    /// Users and services that may connect, with their groups and hashed secrets.
    #[serde(default)]
    pub principals: Vec<PrincipalFile>,
    /// Group whose members may do everything. Default `admins`.
    #[serde(default = "default_admin_group")]
    pub admin_group: String,
    /// Global policies: what principals may do, which columns are masked, which rows filtered.
    #[serde(default)]
    pub policies: Vec<PolicyFile>,
    /// Settings of `meshql serve`.
    #[serde(default)]
    pub server: ServerSettings,
    /// Where meshql sends events: failed runs, blocked publishes, stale products.
    #[serde(default)]
    pub notifications: NotificationSettings,
    /// Where OpenLineage events of runs go.
    #[serde(default)]
    pub lineage: LineageSettings,
    /// The Iceberg catalog the warehouse's Iceberg tables are registered in. Default: the
    /// embedded SQL catalog, `<warehouse>/_mesh/iceberg.db`.
    #[serde(default)]
    pub iceberg_catalog: IcebergCatalogSettings,
}

/// `iceberg_catalog:` of mesh.yaml.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(deny_unknown_fields)]
pub struct IcebergCatalogSettings {
    /// `sql`: the embedded SQLite catalog in the warehouse (what PyIceberg's `SqlCatalog` and
    /// Java's JDBC catalog read); `rest`: an Iceberg REST catalog (Polaris, Lakekeeper, Nessie,
    /// Gravitino, Unity Catalog, Apache Iceberg's REST server) at `uri`.
    #[serde(default, rename = "type")]
    pub kind: IcebergCatalogKind,
    /// The REST catalog's base URL, e.g. `http://127.0.0.1:8181` (its API is under `/v1/`); of
    /// a source's `sql` catalog, its SQLite file (relative to the domain folder, or absolute).
    #[serde(default)]
    pub uri: Option<String>,
    /// The warehouse to ask the REST catalog for (its `warehouse` parameter), when it serves
    /// several.
    #[serde(default)]
    pub warehouse: Option<String>,
    /// A bearer token sent to the REST catalog: `env:NAME` reads an environment variable (keep
    /// secrets out of the file).
    #[serde(default)]
    pub token: Option<String>,
    /// More HTTP headers sent with every request (values may be `env:NAME` too).
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Of a source's `sql` catalog: the catalog name its tables are registered under (the name
    /// given to PyIceberg's `SqlCatalog`).
    #[serde(default)]
    pub name: Option<String>,
}

/// Kinds of Iceberg catalog.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IcebergCatalogKind {
    #[default]
    Sql,
    Rest,
}

/// `notifications:` of mesh.yaml.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(deny_unknown_fields)]
pub struct NotificationSettings {
    /// URLs receiving each event as a JSON POST.
    #[serde(default)]
    pub webhooks: Vec<WebhookSettings>,
    /// How often `meshql serve` compares each product's age with its latency SLA, in seconds.
    /// Default 60.
    #[serde(default = "default_freshness_check")]
    pub freshness_check_secs: u64,
}

fn default_freshness_check() -> u64 {
    60
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            webhooks: Vec::new(),
            freshness_check_secs: default_freshness_check(),
        }
    }
}

/// One webhook.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(deny_unknown_fields)]
pub struct WebhookSettings {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Events to send: `run_failed`, `publish_blocked`, `product_stale`. Default: all.
    #[serde(default)]
    pub events: Vec<EventKind>,
}

/// Events meshql sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A run ended with a failed or blocked node.
    RunFailed,
    /// A product's rows failed its contract and were not published.
    PublishBlocked,
    /// A product is older than its latency SLA.
    ProductStale,
}

/// `lineage:` of mesh.yaml.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(deny_unknown_fields)]
pub struct LineageSettings {
    /// OpenLineage RunEvents of every run: to a file (JSON lines, relative to the mesh folder)
    /// and/or an HTTP endpoint (e.g. Marquez's `http://host:5000/api/v1/lineage`).
    #[serde(default)]
    pub openlineage: Option<OpenLineageSettings>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(deny_unknown_fields)]
pub struct OpenLineageSettings {
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    /// OpenLineage namespace of the jobs and datasets. Default: the mesh name.
    #[serde(default)]
    pub namespace: Option<String>,
}

fn default_admin_group() -> String {
    "admins".into()
}

/// A user or service that may connect.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(deny_unknown_fields)]
pub struct PrincipalFile {
    /// Name used to log in (HTTP Basic user name).
    pub name: String,
    /// Groups of the principal: domain owner groups, the admin group, ...
    #[serde(default)]
    pub groups: Vec<String>,
    /// Argon2 hash of the password in PHC format (`meshql hash-password` makes one). Never the
    /// password itself. Omit it for principals that use tokens only.
    #[serde(default)]
    pub password_hash: Option<String>,
    /// Hashes (`sha256:<hex>`) of long-lived bearer tokens of this principal (`meshql token`
    /// makes a token and its hash).
    #[serde(default)]
    pub token_hashes: Vec<String>,
    /// Attributes row filters can use: `principal_attribute('region')`.
    #[serde(default)]
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// A policy: allows or denies actions, masks columns, or filters rows. In mesh.yaml policies are
/// global; in a domain.yaml they apply to that domain only. Denials always win over allows.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(deny_unknown_fields)]
pub struct PolicyFile {
    /// Shown in errors, `meshql policy explain` and the audit log.
    pub name: String,
    /// Actions allowed: `read`, `run`, `ingest`.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Actions denied: `read`, `run`, `ingest`.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Masks columns: `sha256`, `redact`, `null`, or a SQL expression over `{column}`.
    #[serde(default)]
    pub mask: Option<String>,
    /// Keeps only the rows where this SQL predicate holds; it may call
    /// `principal_attribute('name')` and `principal_name()`.
    #[serde(default)]
    pub row_filter: Option<String>,
    /// Datasets: `domain`, `domain.layer`, `domain.layer.dataset`, with `*` for any part.
    /// Default: everything (in a domain.yaml: the domain).
    #[serde(default)]
    pub on: Vec<String>,
    /// Masks: the columns, as `domain.layer.dataset.column` (with `*` for any part).
    #[serde(default)]
    pub columns: Vec<String>,
    /// Masks: every column whose contract classification is this (e.g. `pii`).
    #[serde(default)]
    pub classification: Option<String>,
    /// Who the policy applies to: members of these groups...
    #[serde(default)]
    pub groups: Vec<String>,
    /// ...and these principals. Both empty: everyone.
    #[serde(default)]
    pub principals: Vec<String>,
    /// Members of these groups are exempt.
    #[serde(default)]
    pub except_groups: Vec<String>,
    /// These principals are exempt.
    #[serde(default)]
    pub except_principals: Vec<String>,
}

/// One domain listed in mesh.yaml.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(deny_unknown_fields)]
pub struct DomainRef {
    /// Domain name: lower-case letters, digits and `_`, starting with a letter.
    pub name: String,
    /// Folder holding `domain.yaml`, relative to the mesh's `catalog/` folder (or absolute).
    /// Default: `catalog/<name>`. A domain may live in another repository.
    #[serde(default)]
    pub path: Option<String>,
    /// Folder holding the domain's transforms as `<layer>/<dataset>.sql`, relative to the mesh
    /// folder (or absolute). Default: `sql/<name>`.
    #[serde(default)]
    pub sql: Option<String>,
}

/// Table formats a dataset can be stored in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TableFormatName {
    /// Delta Lake (default).
    #[default]
    Delta,
    /// Apache Iceberg, in the warehouse's embedded SQL catalog.
    Iceberg,
}

impl TableFormatName {
    pub fn as_str(self) -> &'static str {
        match self {
            TableFormatName::Delta => "delta",
            TableFormatName::Iceberg => "iceberg",
        }
    }
}

/// Settings of `meshql serve`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case", default)]
#[schemars(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to listen on (`--addr` overrides it). Default `127.0.0.1:50051`.
    pub addr: String,
    /// Longest time, in seconds, a table version written by another process may stay unseen.
    /// Writes by this server's own runs are visible at once. Default 5.
    pub catalog_staleness_secs: u64,
    /// Largest SQL text accepted, in bytes. Default 1 MiB.
    pub max_sql_bytes: usize,
    /// Deepest expression or set-operation nesting accepted before planning. Default 500.
    pub max_expr_depth: usize,
    /// Key signing tickets, prepared-statement handles and bearer tokens, so any replica sharing
    /// it accepts them. Default: a random key per process. `env:NAME` reads an environment
    /// variable.
    pub signing_key: Option<String>,
    /// Keys being rotated out: what they signed is still accepted; nothing new is signed with
    /// them. Same forms as `signing_key`.
    pub previous_signing_keys: Vec<String>,
    /// Lifetime of bearer tokens issued by the handshake, in seconds. Default 12 hours.
    pub token_ttl_secs: u64,
    /// Send Utf8View/BinaryView columns as they are instead of as Utf8/Binary (which older
    /// drivers need). Default false.
    pub view_types: bool,
    /// Serve over TLS (and require client certificates with `client_ca`). Default: plaintext.
    pub tls: Option<TlsSettings>,
    /// Memory shared by all running queries, in MiB; operators that can spill to disk do so
    /// past it, others fail with ResourceExhausted. 0: unlimited. Default 4096.
    pub memory_limit_mb: u64,
    /// Longest time a query's result stream may take, in seconds (DeadlineExceeded past it).
    /// 0: none. Default 300.
    pub query_timeout_secs: u64,
    /// Longest time, in seconds, planning one query may take (DeadlineExceeded past it; never
    /// more than `query_timeout_secs`). 0: none. Default 30.
    pub planning_timeout_secs: u64,
    /// Threads planning queries (planning never runs on the threads serving requests). 0: twice
    /// the number of cores. Default 0.
    pub planner_threads: usize,
    /// Most rows one result may have (ResourceExhausted past it). 0: unlimited. Default 0.
    pub max_result_rows: u64,
    /// Client connections open at once; more are closed as they arrive. Default 1024.
    pub max_connections: usize,
    /// Seconds after which a connection on which nothing was sent or received is closed; keep
    /// it above `query_timeout_secs`. 0: never. Default 900.
    pub idle_timeout_secs: u64,
    /// Queries running at once. Default 16.
    pub max_concurrent_queries: usize,
    /// Queries waiting for a slot; more are refused with ResourceExhausted. Default 64.
    pub max_queued_queries: usize,
    /// Record every request in `mesh.ops.audit` (a log line is written either way).
    /// Default true.
    pub audit: bool,
    /// Longest time, in seconds, an audit record waits before it is written (records are
    /// appended in batches). Default 10.
    pub audit_flush_secs: u64,
    /// Memory one query may use, in MiB, within `memory_limit_mb` (ResourceExhausted past it).
    /// 0: no cap beyond the shared pool. Default 1024.
    pub query_memory_limit_mb: u64,
    /// Memory for answers of repeated queries, in MiB: a query planned identically for a
    /// principal over the same table versions is answered without running again (see the
    /// README). 0: off. Default 256.
    pub result_cache_mb: u64,
    /// Datasets held in memory as Arrow (acceleration), as `domain`, `domain.layer` or
    /// `domain.layer.dataset` patterns with `*` for any part; see the README. Default: none.
    pub accelerate: Vec<String>,
    /// Memory for the datasets of `accelerate`, in MiB, all together; a dataset that does not
    /// fit is read from storage. On top of `memory_limit_mb`. Default 1024.
    pub acceleration_mb: u64,
    /// Governed plans kept for statements a principal sends again (see the README), at most
    /// this many. 0: off. Default 1024.
    pub plan_cache_entries: u64,
    /// After Ctrl-C or SIGTERM, how long running requests may take to finish before the process
    /// exits anyway, in seconds. Default 30.
    pub shutdown_grace_secs: u64,
    /// Term of the lease on the warehouse's background work (schedules, freshness checks, the
    /// system catalog's description), in seconds: one `meshql serve` per warehouse holds it, and
    /// another takes it over when the holder has not renewed it for this long. Default 30.
    pub lease_secs: u64,
    /// Accept JWTs from a company identity provider as bearer tokens.
    pub jwt: Option<JwtSettings>,
}

/// External JWT validation: signature (keys from a JWKS file), issuer, audience, expiry.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(deny_unknown_fields)]
pub struct JwtSettings {
    /// Required `iss` claim.
    pub issuer: String,
    /// Required `aud` claim, when set.
    #[serde(default)]
    pub audience: Option<String>,
    /// JWKS file (the identity provider's public keys), relative to the mesh folder.
    pub jwks: String,
    /// Claim holding the principal's name. Default `sub`.
    #[serde(default = "default_name_claim")]
    pub name_claim: String,
    /// Claim holding the principal's groups (a list, or a space-separated string). Default
    /// `groups`.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
}

fn default_name_claim() -> String {
    "sub".into()
}

fn default_groups_claim() -> String {
    "groups".into()
}

/// TLS certificates of the server; paths are relative to the mesh folder.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain of the server.
    pub cert: String,
    /// PEM private key of the server.
    pub key: String,
    /// PEM CA certificates: when set, clients must present a certificate signed by one (mTLS).
    #[serde(default)]
    pub client_ca: Option<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:50051".to_string(),
            catalog_staleness_secs: 5,
            max_sql_bytes: 1 << 20,
            max_expr_depth: 500,
            signing_key: None,
            previous_signing_keys: Vec::new(),
            token_ttl_secs: 12 * 3600,
            view_types: false,
            tls: None,
            memory_limit_mb: 4096,
            query_timeout_secs: 300,
            planning_timeout_secs: 30,
            planner_threads: 0,
            max_result_rows: 0,
            max_connections: 1024,
            idle_timeout_secs: 900,
            max_concurrent_queries: 16,
            max_queued_queries: 64,
            audit: true,
            audit_flush_secs: 10,
            query_memory_limit_mb: 1024,
            result_cache_mb: 256,
            plan_cache_entries: 1024,
            accelerate: Vec::new(),
            acceleration_mb: 1024,
            shutdown_grace_secs: 30,
            lease_secs: 30,
            jwt: None,
        }
    }
}

/// `catalog/<domain>/domain.yaml`: who owns a domain and what it holds.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(deny_unknown_fields)]
#[schemars(title = "meshql domain.yaml")]
pub struct DomainFile {
    /// Group of principals owning the domain.
    pub owner: String,
    /// What the domain is about.
    #[serde(default)]
    pub description: Option<String>,
    /// Layers of the domain, in order. Default: raw, silver, gold.
    #[serde(default = "default_layers")]
    pub layers: Vec<String>,
    /// Table format of the domain's transforms and job tables; default: the mesh's
    /// `default_format`. A transform's `-- @format:` line chooses for itself.
    #[serde(default)]
    pub format: Option<TableFormatName>,
    /// Table formats of single layers, over `format` (e.g. `{raw: delta}` in an Iceberg
    /// domain).
    #[serde(default)]
    pub layer_formats: std::collections::BTreeMap<String, TableFormatName>,
    /// Read-only datasets registered from existing files (CSV, Parquet, JSON).
    #[serde(default)]
    pub sources: Vec<SourceFile>,
    /// The domain's own policies (they apply to its datasets only and cannot lift a global
    /// denial).
    #[serde(default)]
    pub policies: Vec<PolicyFile>,
}

pub fn default_layers() -> Vec<String> {
    vec!["raw".into(), "silver".into(), "gold".into()]
}

/// A read-only dataset over existing files.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(deny_unknown_fields)]
pub struct SourceFile {
    /// Dataset name inside its layer.
    pub name: String,
    /// Layer the dataset belongs to (usually `raw`).
    pub layer: String,
    /// File or table format.
    pub format: SourceFormat,
    /// A file or a folder of files; for `delta` the table's folder; for `iceberg` the table's
    /// folder (its newest `metadata/*.metadata.json` is read), one metadata file, or with
    /// `catalog` the table's name in that catalog (`namespace.table`). Relative to the domain
    /// folder, absolute, or a URL.
    pub location: String,
    /// `iceberg`: the Iceberg catalog the table is registered in — `type: sql` with `uri` the
    /// SQLite file of an Iceberg SQL catalog (PyIceberg's `SqlCatalog`, Java's JDBC catalog) and
    /// `name` its catalog name, or `type: rest` with the REST catalog's settings. The table is
    /// read at the snapshot the catalog names now.
    #[serde(default)]
    pub catalog: Option<IcebergCatalogSettings>,
    /// What the dataset holds.
    #[serde(default)]
    pub description: Option<String>,
    /// CSV: whether the first line holds column names. Default true.
    #[serde(default = "yes")]
    pub has_header: bool,
    /// CSV: field delimiter, one character. Default `,`.
    #[serde(default = "comma")]
    pub delimiter: String,
}

fn yes() -> bool {
    true
}

fn comma() -> String {
    ",".into()
}

/// Formats a read-only source can be read from: files, or a table another engine writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    Csv,
    Parquet,
    Json,
    /// A Delta Lake table (its folder holds `_delta_log/`).
    Delta,
    /// An Apache Iceberg table (its folder holds `metadata/`), or one of its metadata files.
    Iceberg,
}

impl SourceFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceFormat::Csv => "csv",
            SourceFormat::Parquet => "parquet",
            SourceFormat::Json => "json",
            SourceFormat::Delta => "delta",
            SourceFormat::Iceberg => "iceberg",
        }
    }

    /// Whether the source is a table of a table format rather than plain files.
    pub fn is_table(self) -> bool {
        matches!(self, SourceFormat::Delta | SourceFormat::Iceberg)
    }
}

/// JSON Schemas of the mesh files, as shipped in `schemas/`.
pub fn json_schemas() -> Vec<(&'static str, String)> {
    let render = |schema: schemars::Schema| {
        let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
        text.push('\n');
        text
    };
    vec![
        ("mesh.schema.json", render(schemars::schema_for!(MeshFile))),
        (
            "domain.schema.json",
            render(schemars::schema_for!(DomainFile)),
        ),
        (
            "contract.schema.json",
            render(schemars::schema_for!(super::contract::ContractFile)),
        ),
    ]
}
