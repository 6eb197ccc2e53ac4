//! The mesh folder: parse and validate `catalog/mesh.yaml`, `catalog/<domain>/domain.yaml` and
//! `sql/<domain>/<layer>/<dataset>.sql` into one [`Mesh`].
//!
//! Loading never stops at the first problem: it returns every [`Diagnostic`] it can find, each
//! with `file:line:column` and what was expected. This module imports nothing else of meshql.

mod diagnostic;
mod files;
mod load;
mod rules;
mod settings;
pub mod transform;
mod yaml;

use std::path::{Path, PathBuf};

pub use diagnostic::{Diagnostic, Diagnostics, did_you_mean};
pub use files::{
    DomainFile, DomainRef, MeshFile, PrincipalFile, ServerSettings, SourceFile, SourceFormat,
    TableFormatName, TlsSettings, json_schemas,
};
pub use transform::{DatasetName, Dependency, Materialization, Transform, TransformOptions};

/// A validated mesh: every domain, layer and dataset, ready to plan and serve.
#[derive(Debug, Clone)]
pub struct Mesh {
    /// The mesh folder.
    pub root: PathBuf,
    pub name: String,
    pub description: Option<String>,
    /// Storage root as a URL (`file:///abs/path`, `s3://bucket/prefix`).
    pub warehouse: String,
    pub default_format: TableFormatName,
    pub server: ServerSettings,
    pub domains: Vec<Domain>,
    /// Who may connect.
    pub principals: Vec<PrincipalFile>,
    /// Group whose members may do everything.
    pub admin_group: String,
}

/// A business unit owning data: a catalog of the federated catalog.
#[derive(Debug, Clone)]
pub struct Domain {
    pub name: String,
    pub owner: String,
    pub description: Option<String>,
    /// Layers in order; each is a schema.
    pub layers: Vec<String>,
    /// Folder holding `domain.yaml`.
    pub folder: PathBuf,
    pub datasets: Vec<Dataset>,
}

/// A table in a layer.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: DatasetName,
    /// File declaring the dataset (the transform's SQL, or the domain.yaml of a source).
    pub file: PathBuf,
    pub description: Option<String>,
    pub kind: DatasetKind,
}

/// Where a dataset's rows come from.
#[derive(Debug, Clone)]
pub enum DatasetKind {
    /// Produced by a SQL transform, stored in the warehouse.
    Transform(Transform),
    /// Read-only files registered in place.
    Source(Source),
}

/// A read-only dataset over existing files.
#[derive(Debug, Clone)]
pub struct Source {
    pub format: SourceFormat,
    /// A URL (`file:///...` for local files); a trailing `/` marks a folder.
    pub location: String,
    pub has_header: bool,
    pub delimiter: u8,
}

impl Mesh {
    /// Loads and validates the mesh in `dir` (the folder holding `catalog/mesh.yaml`).
    pub fn load(dir: impl AsRef<Path>) -> Result<Mesh, Diagnostics> {
        load::load(dir.as_ref())
    }

    pub fn domain(&self, name: &str) -> Option<&Domain> {
        self.domains.iter().find(|d| d.name == name)
    }

    /// Every dataset of every domain, in declaration order.
    pub fn datasets(&self) -> impl Iterator<Item = &Dataset> {
        self.domains.iter().flat_map(|d| d.datasets.iter())
    }

    pub fn dataset(&self, name: &DatasetName) -> Option<&Dataset> {
        self.domain(&name.domain)?
            .datasets
            .iter()
            .find(|d| d.name == *name)
    }

    /// Datasets produced by transforms (the nodes of the pipeline DAG).
    pub fn transforms(&self) -> impl Iterator<Item = (&Dataset, &Transform)> {
        self.datasets().filter_map(|d| match &d.kind {
            DatasetKind::Transform(t) => Some((d, t)),
            DatasetKind::Source(_) => None,
        })
    }

    /// The closest dataset name to `wanted`, for "did you mean" hints.
    pub fn suggest(&self, wanted: &str) -> Option<String> {
        let names: Vec<String> = self.datasets().map(|d| d.name.to_string()).collect();
        did_you_mean(wanted, names.iter().map(String::as_str)).map(str::to_string)
    }
}

/// Whether `name` is a valid domain, layer or dataset name: `[a-z][a-z0-9_]*`, at most 63 bytes.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}
