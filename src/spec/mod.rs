//! The mesh folder: parse and validate `catalog/mesh.yaml`, `catalog/<domain>/domain.yaml` and
//! `sql/<domain>/<layer>/<dataset>.sql` into one [`Mesh`].
//!
//! Loading never stops at the first problem: it returns every [`Diagnostic`] it can find, each
//! with `file:line:column` and what was expected. This module imports nothing else of meshql.

pub mod contract;
mod diagnostic;
mod files;
pub mod job;
mod load;
mod paths;
pub mod policy;
mod rules;
pub mod settings;
pub mod transform;
mod yaml;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

pub use contract::Contract;
pub use diagnostic::{Diagnostic, Diagnostics, did_you_mean};
pub use files::{
    DomainFile, DomainRef, EventKind, IcebergCatalogKind, IcebergCatalogSettings, JwtSettings,
    LineageSettings, MeshFile, NotificationSettings, OpenLineageSettings, PolicyFile,
    PrincipalFile, ServerSettings, SourceFile, SourceFormat, TableFormatName, TlsSettings,
    WebhookSettings, json_schemas,
};
pub use job::Job;
pub use policy::{Action, Policy};
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
    pub notifications: NotificationSettings,
    pub lineage: LineageSettings,
    /// Where the warehouse's Iceberg tables are registered.
    pub iceberg_catalog: IcebergCatalogSettings,
    /// Global policies (mesh.yaml).
    pub policies: Vec<Policy>,
    /// Where each dataset is in `domains`, built on the first lookup (the mesh is not changed
    /// once loaded).
    pub(crate) index: OnceLock<HashMap<DatasetName, (usize, usize)>>,
}

/// A business unit owning data: a catalog of the federated catalog.
#[derive(Debug, Clone)]
pub struct Domain {
    pub name: String,
    pub owner: String,
    pub description: Option<String>,
    /// Layers in order; each is a schema.
    pub layers: Vec<String>,
    /// Table format of the domain's warehouse tables, when it chooses one.
    pub format: Option<TableFormatName>,
    /// Formats of single layers, over `format`.
    pub layer_formats: BTreeMap<String, TableFormatName>,
    /// Folder holding `domain.yaml`.
    pub folder: PathBuf,
    pub datasets: Vec<Dataset>,
    /// The domain's own policies (domain.yaml).
    pub policies: Vec<Policy>,
}

/// A table in a layer.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: DatasetName,
    /// File declaring the dataset (the transform's SQL, or the domain.yaml of a source).
    pub file: PathBuf,
    pub description: Option<String>,
    pub kind: DatasetKind,
    /// The data contract making the dataset a product, if any.
    pub contract: Option<Arc<Contract>>,
}

/// Where a dataset's rows come from.
#[derive(Debug, Clone)]
pub enum DatasetKind {
    /// Produced by a SQL transform, stored in the warehouse.
    Transform(Transform),
    /// Written by a mu-pipelines job item (which may write several datasets).
    Job(Arc<Job>),
    /// Read-only files registered in place.
    Source(Source),
}

impl DatasetKind {
    /// How a dataset is produced, in listings and the system catalog: `transform`, `job` or
    /// `source` (a table only the warehouse knows is [`INGESTED`]).
    pub fn label(&self) -> &'static str {
        match self {
            DatasetKind::Transform(_) => "transform",
            DatasetKind::Job(_) => "job",
            DatasetKind::Source(_) => "source",
        }
    }

    /// The label of an optional dataset: [`INGESTED`] when the mesh does not declare it.
    pub fn label_of(dataset: Option<&Dataset>) -> &'static str {
        dataset.map_or(INGESTED, |d| d.kind.label())
    }
}

/// The kind of a table the warehouse holds but no mesh file declares (created by ingest).
pub const INGESTED: &str = "ingested";

/// A read-only dataset over existing files.
#[derive(Debug, Clone)]
pub struct Source {
    pub format: SourceFormat,
    /// A URL (`file:///...` for local files); a trailing `/` marks a folder. With `catalog`,
    /// the table's name in it.
    pub location: String,
    /// The Iceberg catalog holding the table (a `sql` catalog's `uri` resolved to a path).
    pub catalog: Option<IcebergCatalogSettings>,
    pub has_header: bool,
    pub delimiter: u8,
}

impl Mesh {
    /// How a file of the mesh is named to a client: relative to the mesh folder (a client has
    /// no business knowing where the server keeps it), or by its name alone when it lies
    /// elsewhere (a domain listed by path from another repository).
    pub fn shown(&self, file: &Path) -> String {
        match file.strip_prefix(&self.root) {
            Ok(relative) => relative.display().to_string(),
            Err(_) => file
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        }
    }

    /// Loads and validates the mesh in `dir` (the folder holding `catalog/mesh.yaml`).
    pub fn load(dir: impl AsRef<Path>) -> Result<Mesh, Diagnostics> {
        load::load(dir.as_ref())
    }

    /// A mesh for a folder without `catalog/mesh.yaml`: its warehouse is `<dir>/warehouse`, and
    /// its domains and layers are those of `tables` (found in the warehouse, or about to be
    /// written by a job). Nothing is declared, so every table is served as it is found.
    pub fn standalone(dir: impl AsRef<Path>, tables: &[DatasetName]) -> Mesh {
        let root = paths::normalize(
            &std::env::current_dir()
                .unwrap_or_default()
                .join(dir.as_ref()),
        );
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "local".into());
        let mut domains: Vec<Domain> = Vec::new();
        for t in tables {
            let i = match domains.iter().position(|d| d.name == t.domain) {
                Some(i) => i,
                None => {
                    domains.push(Domain {
                        name: t.domain.clone(),
                        owner: String::new(),
                        description: None,
                        layers: Vec::new(),
                        format: None,
                        layer_formats: BTreeMap::new(),
                        folder: root.clone(),
                        datasets: Vec::new(),
                        policies: Vec::new(),
                    });
                    domains.len() - 1
                }
            };
            if !domains[i].layers.contains(&t.layer) {
                domains[i].layers.push(t.layer.clone());
            }
        }
        // raw, silver, gold first, then any other layer by name.
        let rank = |l: &String| {
            (
                files::default_layers()
                    .iter()
                    .position(|d| d == l)
                    .unwrap_or(3),
                l.clone(),
            )
        };
        for d in &mut domains {
            d.layers.sort_by_key(rank);
        }
        domains.sort_by(|a, b| a.name.cmp(&b.name));
        Mesh {
            warehouse: format!("file://{}", root.join("warehouse").display()),
            root,
            name,
            description: None,
            default_format: TableFormatName::Delta,
            server: ServerSettings::default(),
            domains,
            principals: Vec::new(),
            admin_group: "admins".into(),
            notifications: NotificationSettings::default(),
            lineage: LineageSettings::default(),
            iceberg_catalog: IcebergCatalogSettings::default(),
            policies: Vec::new(),
            index: OnceLock::new(),
        }
    }

    pub fn domain(&self, name: &str) -> Option<&Domain> {
        self.domains.iter().find(|d| d.name == name)
    }

    /// Every dataset of every domain, in declaration order.
    pub fn datasets(&self) -> impl Iterator<Item = &Dataset> {
        self.domains.iter().flat_map(|d| d.datasets.iter())
    }

    /// The table format of a warehouse dataset: its transform's `-- @format:`, else its
    /// domain's `format`, else the mesh's `default_format` (the most specific wins).
    pub fn format_of(&self, dataset: &Dataset) -> TableFormatName {
        let own = match &dataset.kind {
            DatasetKind::Transform(t) => t.options.format,
            _ => None,
        };
        own.unwrap_or_else(|| self.format_in(&dataset.name))
    }

    /// The format of a new table `name` that does not choose one (a job's, an ingested one): its
    /// layer's in its domain, else its domain's, else the mesh's `default_format`.
    pub fn format_in(&self, name: &DatasetName) -> TableFormatName {
        let domain = self.domain(&name.domain);
        domain
            .and_then(|d| d.layer_formats.get(&name.layer).copied())
            .or_else(|| domain.and_then(|d| d.format))
            .unwrap_or(self.default_format)
    }

    pub fn dataset(&self, name: &DatasetName) -> Option<&Dataset> {
        let index = self.index.get_or_init(|| {
            let mut index = HashMap::new();
            for (i, domain) in self.domains.iter().enumerate() {
                for (j, dataset) in domain.datasets.iter().enumerate() {
                    index.entry(dataset.name.clone()).or_insert((i, j));
                }
            }
            index
        });
        let &(i, j) = index.get(name)?;
        self.domains.get(i)?.datasets.get(j)
    }

    /// Datasets produced by transforms.
    pub fn transforms(&self) -> impl Iterator<Item = (&Dataset, &Transform)> {
        self.datasets().filter_map(|d| match &d.kind {
            DatasetKind::Transform(t) => Some((d, t)),
            _ => None,
        })
    }

    /// The nodes of the pipeline DAG: every transform, and every job item (named by the first
    /// table it writes).
    pub fn nodes(&self) -> impl Iterator<Item = &Dataset> {
        self.datasets()
            .filter(|d| self.node_of(&d.name).as_ref() == Some(&d.name))
    }

    /// The DAG node producing `name`: itself for a transform, the job's first output for a job;
    /// `None` for sources and unknown names.
    pub fn node_of(&self, name: &DatasetName) -> Option<DatasetName> {
        match &self.dataset(name)?.kind {
            DatasetKind::Transform(_) => Some(name.clone()),
            DatasetKind::Job(job) => job.outputs().next().cloned(),
            DatasetKind::Source(_) => None,
        }
    }

    /// Tables a node reads.
    pub fn node_dependencies<'a>(&self, node: &'a Dataset) -> Vec<&'a Dependency> {
        match &node.kind {
            DatasetKind::Transform(t) => t.dependencies.iter().collect(),
            DatasetKind::Job(j) => j.dependencies().collect(),
            DatasetKind::Source(_) => Vec::new(),
        }
    }

    /// Every policy: global ones, then each domain's.
    pub fn all_policies(&self) -> impl Iterator<Item = &Policy> {
        self.policies
            .iter()
            .chain(self.domains.iter().flat_map(|d| d.policies.iter()))
    }

    /// Every data product (dataset with a contract), in declaration order.
    pub fn products(&self) -> impl Iterator<Item = (&Dataset, &Arc<Contract>)> {
        self.datasets()
            .filter_map(|d| d.contract.as_ref().map(|c| (d, c)))
    }

    /// The closest dataset name to `wanted`, for "did you mean" hints.
    pub fn suggest(&self, wanted: &str) -> Option<String> {
        let names: Vec<String> = self.datasets().map(|d| d.name.to_string()).collect();
        did_you_mean(wanted, names.iter().map(String::as_str)).map(str::to_string)
    }
}

/// Parses a cron schedule: five fields (minute hour day month weekday), or six with seconds.
pub fn parse_schedule(s: &str) -> Result<croner::Cron, String> {
    croner::Cron::new(s)
        .with_seconds_optional()
        .parse()
        .map_err(|e| {
            format!("invalid cron schedule `{s}` ({e}); expected five fields, e.g. `0 6 * * *`")
        })
}

/// Whether `name` is a valid domain, layer or dataset name: `[a-z][a-z0-9_]*`, at most 63 bytes.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}
