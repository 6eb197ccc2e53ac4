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
    /// Settings of `meshql serve`.
    #[serde(default)]
    pub server: ServerSettings,
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
    /// Secret used to sign tickets, so any replica sharing it can serve them. Default: a random
    /// secret per process. Use `env:NAME` to read it from an environment variable.
    pub ticket_secret: Option<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:50051".to_string(),
            catalog_staleness_secs: 5,
            max_sql_bytes: 1 << 20,
            max_expr_depth: 500,
            ticket_secret: None,
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
    /// Read-only datasets registered from existing files (CSV, Parquet, JSON).
    #[serde(default)]
    pub sources: Vec<SourceFile>,
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
    /// File format.
    pub format: SourceFormat,
    /// A file or a folder of files: relative to the domain folder, absolute, or a URL.
    pub location: String,
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

/// Formats a read-only source can be read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    Csv,
    Parquet,
    Json,
}

impl SourceFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceFormat::Csv => "csv",
            SourceFormat::Parquet => "parquet",
            SourceFormat::Json => "json",
        }
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
    ]
}
