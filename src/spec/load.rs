//! Reading the mesh folder into a [`Mesh`], collecting every problem on the way.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use super::contract::{self, ContractFile};
use super::diagnostic::did_you_mean;
use super::diagnostic::{Diagnostic, Diagnostics};
use super::files::{DomainFile, MeshFile, SourceFile};
use super::job::{self, DestinationKind};
use super::policy;
use super::settings;
use super::yaml::{self, Positions};
use super::{
    Dataset, DatasetKind, DatasetName, Domain, Mesh, Source, is_valid_name, rules, transform,
};

const NAME_RULE: &str =
    "lower-case letters, digits and `_`, starting with a letter, at most 63 characters";

pub fn load(dir: &Path) -> Result<Mesh, Diagnostics> {
    let root = absolute(dir);
    let mesh_file = root.join("catalog").join("mesh.yaml");
    let mut diags = Vec::new();

    let text = match std::fs::read_to_string(&mesh_file) {
        Ok(t) => t,
        Err(e) => {
            diags.push(Diagnostic::new(
                &mesh_file,
                1,
                1,
                format!(
                    "cannot read the mesh file ({e}); a mesh folder holds catalog/mesh.yaml \
                     (run meshql inside one or pass --mesh DIR)"
                ),
            ));
            return Err(Diagnostics(diags));
        }
    };
    let Some((spec, pos)) = yaml::parse::<MeshFile>(&mesh_file, &text, &mut diags) else {
        return Err(finish(diags));
    };

    let at = |path: &[&str]| {
        let p: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        pos.of(&p)
    };
    if spec.name.trim().is_empty() {
        let (l, c) = pos.value(&["name".to_string()]);
        diags.push(Diagnostic::new(
            &mesh_file,
            l,
            c,
            "the mesh name must not be empty",
        ));
    }
    let (warehouse, server) = settings::check(&root, &mesh_file, &spec, &pos, &mut diags);
    if spec.domains.is_empty() {
        let (l, c) = at(&["domains"]);
        diags.push(Diagnostic::new(
            &mesh_file,
            l,
            c,
            "a mesh needs at least one domain under `domains`",
        ));
    }

    let mut domains: Vec<Domain> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut claimed_sql_dirs = BTreeSet::new();
    let mut claimed_domain_dirs = BTreeSet::new();
    for (i, entry) in spec.domains.iter().enumerate() {
        let idx = i.to_string();
        let (l, c) = pos.value(&["domains".into(), idx.clone(), "name".into()]);
        if !is_valid_name(&entry.name) {
            diags.push(Diagnostic::new(
                &mesh_file,
                l,
                c,
                format!("invalid domain name `{}`; expected {NAME_RULE}", entry.name),
            ));
            continue;
        }
        if entry.name == "mesh" {
            diags.push(Diagnostic::new(
                &mesh_file,
                l,
                c,
                "`mesh` is the name of the system catalog (mesh.catalog, mesh.ops, mesh.lineage); choose another domain name",
            ));
            continue;
        }
        if !seen.insert(entry.name.clone()) {
            diags.push(Diagnostic::new(
                &mesh_file,
                l,
                c,
                format!("domain `{}` is listed twice", entry.name),
            ));
            continue;
        }
        let folder = match &entry.path {
            Some(p) => normalize(&root.join("catalog").join(p)),
            None => root.join("catalog").join(&entry.name),
        };
        let sql_dir = match &entry.sql {
            Some(p) => normalize(&root.join(p)),
            None => root.join("sql").join(&entry.name),
        };
        claimed_domain_dirs.insert(folder.clone());
        claimed_sql_dirs.insert(sql_dir.clone());
        let domain_file = folder.join("domain.yaml");
        let text = match std::fs::read_to_string(&domain_file) {
            Ok(t) => t,
            Err(e) => {
                let (l, c) = pos.value(&["domains".into(), idx.clone(), "name".into()]);
                diags.push(Diagnostic::new(
                    &mesh_file,
                    l,
                    c,
                    format!(
                        "domain `{}`: cannot read {} ({e}); expected a domain.yaml in the domain folder",
                        entry.name,
                        domain_file.display()
                    ),
                ));
                continue;
            }
        };
        let Some((dspec, dpos)) = yaml::parse::<DomainFile>(&domain_file, &text, &mut diags) else {
            continue;
        };
        domains.push(load_domain(
            &entry.name,
            folder,
            &domain_file,
            dspec,
            &dpos,
            &sql_dir,
            &mut diags,
        ));
    }

    unclaimed_folders(
        &root.join("sql"),
        &claimed_sql_dirs,
        "transforms",
        &mut diags,
    );
    unclaimed_folders(
        &root.join("catalog"),
        &claimed_domain_dirs,
        "domain",
        &mut diags,
    );

    let mesh = Mesh {
        root,
        name: spec.name,
        description: spec.description,
        warehouse,
        default_format: spec.default_format,
        server,
        domains,
        principals: spec.principals,
        admin_group: spec.admin_group,
        notifications: spec.notifications,
        lineage: spec.lineage,
        policies: policy::validate(&mesh_file, &spec.policies, &pos, None, &mut diags),
        index: Default::default(),
    };
    rules::check(&mesh, &mut diags);
    if diags.is_empty() {
        Ok(mesh)
    } else {
        Err(finish(diags))
    }
}

fn finish(mut diags: Vec<Diagnostic>) -> Diagnostics {
    diags.sort();
    diags.dedup();
    Diagnostics(diags)
}

fn load_domain(
    name: &str,
    folder: PathBuf,
    file: &Path,
    spec: DomainFile,
    pos: &Positions,
    sql_dir: &Path,
    diags: &mut Vec<Diagnostic>,
) -> Domain {
    let mut layers: Vec<String> = Vec::new();
    for (i, layer) in spec.layers.iter().enumerate() {
        let (l, c) = pos.value(&["layers".into(), i.to_string()]);
        if !is_valid_name(layer) {
            diags.push(Diagnostic::new(
                file,
                l,
                c,
                format!("invalid layer name `{layer}`; expected {NAME_RULE}"),
            ));
        } else if layers.contains(layer) {
            diags.push(Diagnostic::new(
                file,
                l,
                c,
                format!("layer `{layer}` is listed twice"),
            ));
        } else {
            layers.push(layer.clone());
        }
    }
    if spec.owner.trim().is_empty() {
        let (l, c) = pos.value(&["owner".into()]);
        diags.push(Diagnostic::new(
            file,
            l,
            c,
            "the owner group must not be empty",
        ));
    }

    let mut datasets: Vec<Dataset> = Vec::new();
    for (i, source) in spec.sources.iter().enumerate() {
        if let Some(ds) = load_source(name, &folder, file, &layers, source, pos, i, diags) {
            push_unique(
                &mut datasets,
                ds,
                pos.value(&["sources".into(), i.to_string(), "name".into()]),
                diags,
            );
        }
    }
    load_transforms(name, sql_dir, &layers, &mut datasets, diags);
    load_jobs(name, &folder, &layers, &mut datasets, diags);
    load_contracts(name, &folder, &mut datasets, diags);
    // Layer order first (raw, silver, gold), then names: how listings show a domain.
    datasets.sort_by_key(|d| {
        (
            layers.iter().position(|l| *l == d.name.layer),
            d.name.dataset.clone(),
        )
    });

    let policies = policy::validate(file, &spec.policies, pos, Some(name), diags);
    Domain {
        name: name.to_string(),
        owner: spec.owner,
        description: spec.description,
        layers,
        folder,
        datasets,
        policies,
    }
}

fn push_unique(
    datasets: &mut Vec<Dataset>,
    ds: Dataset,
    at: (usize, usize),
    diags: &mut Vec<Diagnostic>,
) {
    if let Some(first) = datasets.iter().find(|d| d.name == ds.name) {
        diags.push(Diagnostic::new(
            &ds.file,
            at.0,
            at.1,
            format!(
                "duplicate dataset `{}`: already declared in {}",
                ds.name,
                first.file.display()
            ),
        ));
    } else {
        datasets.push(ds);
    }
}

#[allow(clippy::too_many_arguments)]
fn load_source(
    domain: &str,
    folder: &Path,
    file: &Path,
    layers: &[String],
    src: &SourceFile,
    pos: &Positions,
    i: usize,
    diags: &mut Vec<Diagnostic>,
) -> Option<Dataset> {
    let key = |k: &str| vec!["sources".to_string(), i.to_string(), k.to_string()];
    let before = diags.len();
    if !is_valid_name(&src.name) {
        let (l, c) = pos.value(&key("name"));
        diags.push(Diagnostic::new(
            file,
            l,
            c,
            format!("invalid dataset name `{}`; expected {NAME_RULE}", src.name),
        ));
    }
    if !layers.contains(&src.layer) {
        let (l, c) = pos.value(&key("layer"));
        diags.push(Diagnostic::new(
            file,
            l,
            c,
            format!(
                "unknown layer `{}`; domain `{domain}` has layers: {}",
                src.layer,
                layers.join(", ")
            ),
        ));
    }
    let delimiter = match src.delimiter.as_bytes() {
        [b] => *b,
        _ => {
            let (l, c) = pos.value(&key("delimiter"));
            diags.push(Diagnostic::new(
                file,
                l,
                c,
                "the delimiter must be exactly one ASCII character",
            ));
            b','
        }
    };
    // A missing file is reported, but the dataset stays declared so references to it resolve.
    let fatal = diags.len() > before;
    let location = if src.location.contains("://") {
        src.location.clone()
    } else {
        let path = normalize(&folder.join(&src.location));
        if !path.exists() {
            let (l, c) = pos.value(&key("location"));
            diags.push(Diagnostic::new(
                file,
                l,
                c,
                format!("source file or folder not found: {}", path.display()),
            ));
        }
        let mut url = format!("file://{}", path.display());
        if path.is_dir() && !url.ends_with('/') {
            url.push('/');
        }
        url
    };
    if fatal {
        return None;
    }
    Some(Dataset {
        name: DatasetName::new(domain, &src.layer, &src.name),
        file: file.to_path_buf(),
        description: src.description.clone(),
        contract: None,
        kind: DatasetKind::Source(Source {
            format: src.format,
            location,
            has_header: src.has_header,
            delimiter,
        }),
    })
}

fn load_transforms(
    domain: &str,
    sql_dir: &Path,
    layers: &[String],
    datasets: &mut Vec<Dataset>,
    diags: &mut Vec<Diagnostic>,
) {
    let Ok(entries) = sorted_entries(sql_dir) else {
        return;
    };
    for layer_dir in entries {
        let layer = file_name(&layer_dir);
        if !layer_dir.is_dir() {
            diags.push(Diagnostic::new(
                &layer_dir,
                1,
                1,
                format!(
                    "unexpected file; transforms live in {}/<layer>/<dataset>.sql",
                    sql_dir.display()
                ),
            ));
            continue;
        }
        if !layers.contains(&layer) {
            diags.push(Diagnostic::new(
                &layer_dir,
                1,
                1,
                format!(
                    "unknown layer `{layer}`; domain `{domain}` has layers: {}",
                    layers.join(", ")
                ),
            ));
            continue;
        }
        for file in sorted_entries(&layer_dir).unwrap_or_default() {
            let fname = file_name(&file);
            let Some(dataset) = fname.strip_suffix(".sql") else {
                diags.push(Diagnostic::new(
                    &file,
                    1,
                    1,
                    "unexpected file; expected <dataset>.sql",
                ));
                continue;
            };
            if !is_valid_name(dataset) {
                diags.push(Diagnostic::new(&file, 1, 1, format!("invalid dataset name `{dataset}` (from the file name); expected {NAME_RULE}")));
                continue;
            }
            let sql = match std::fs::read_to_string(&file) {
                Ok(s) => s,
                Err(e) => {
                    diags.push(Diagnostic::new(
                        &file,
                        1,
                        1,
                        format!("cannot read transform: {e}"),
                    ));
                    continue;
                }
            };
            if let Some(t) = transform::parse(&file, &sql, domain, &layer, diags) {
                let ds = Dataset {
                    name: DatasetName::new(domain, &layer, dataset),
                    file: file.clone(),
                    description: t.description.clone(),
                    contract: None,
                    kind: DatasetKind::Transform(t),
                };
                push_unique(datasets, ds, (1, 1), diags);
            }
        }
    }
}

/// The files of `dir` ending in one of `extensions`, with their text, in name order; any other
/// entry, and any file that cannot be read, is reported (`holds` says what belongs there).
fn spec_files(
    dir: &Path,
    extensions: &[&str],
    holds: &str,
    diags: &mut Vec<Diagnostic>,
) -> Vec<(PathBuf, String)> {
    let Ok(entries) = sorted_entries(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for file in entries {
        let name = file_name(&file);
        if file.is_dir() || !extensions.iter().any(|e| name.ends_with(e)) {
            diags.push(Diagnostic::new(
                &file,
                1,
                1,
                format!("unexpected entry; {holds}"),
            ));
            continue;
        }
        match std::fs::read_to_string(&file) {
            Ok(text) => out.push((file, text)),
            Err(e) => diags.push(Diagnostic::new(
                &file,
                1,
                1,
                format!("cannot read the file: {e}"),
            )),
        }
    }
    out
}

/// Contracts in `<domain folder>/products/*.yaml`, each attached to the dataset it names.
fn load_contracts(
    domain: &str,
    folder: &Path,
    datasets: &mut [Dataset],
    diags: &mut Vec<Diagnostic>,
) {
    for (file, text) in spec_files(
        &folder.join("products"),
        &[".yaml", ".yml"],
        "products/ holds data contracts (*.yaml)",
        diags,
    ) {
        let Some((spec, pos)) = yaml::parse::<ContractFile>(&file, &text, diags) else {
            continue;
        };
        let Some(c) = contract::validate(&file, &text, spec, &pos, domain, diags) else {
            continue;
        };
        let names: Vec<String> = datasets.iter().map(|d| d.name.to_string()).collect();
        let Some(ds) = datasets.iter_mut().find(|d| d.name == c.dataset) else {
            let wanted = c.dataset.to_string();
            let hint = did_you_mean(&wanted, names.iter().map(String::as_str))
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            diags.push(Diagnostic::new(
                &file,
                c.dataset_line,
                c.dataset_column,
                format!(
                    "the contract describes `{wanted}`, which the domain does not produce{hint}"
                ),
            ));
            continue;
        };
        if let Some(other) = &ds.contract {
            diags.push(Diagnostic::new(
                &file,
                c.dataset_line,
                c.dataset_column,
                format!(
                    "`{}` already has a contract: {}",
                    ds.name,
                    other.file.display()
                ),
            ));
            continue;
        }
        let header_schedule = match &ds.kind {
            DatasetKind::Transform(t) => t.options.schedule.is_some(),
            _ => false,
        };
        if header_schedule && c.schedule.is_some() {
            diags.push(Diagnostic::new(
                &file,
                c.dataset_line,
                c.dataset_column,
                format!(
                    "`{}` has a schedule in its SQL header and in its contract; declare it in one place",
                    ds.name
                ),
            ));
        }
        if ds.description.is_none() {
            ds.description = c.description.clone();
        }
        ds.contract = Some(Arc::new(c));
    }
}

/// Job files in `<domain folder>/jobs/*.json`: every table a job item writes is a dataset of this
/// domain.
fn load_jobs(
    domain: &str,
    folder: &Path,
    layers: &[String],
    datasets: &mut Vec<Dataset>,
    diags: &mut Vec<Diagnostic>,
) {
    for (file, text) in spec_files(
        &folder.join("jobs"),
        &[".json"],
        "jobs/ holds mu-pipelines job files (*.json)",
        diags,
    ) {
        let Some(parsed) = job::parse(&file, &text, diags) else {
            continue;
        };
        for job in parsed.jobs {
            let job = Arc::new(job);
            for dest in &job.destinations {
                let DestinationKind::Table { name, .. } = &dest.kind else {
                    continue;
                };
                let here = |msg: String| Diagnostic::new(&file, dest.at.line, dest.at.column, msg);
                if name.domain != domain {
                    diags.push(here(format!(
                        "`{name}`: a job of domain `{domain}` writes into its own domain only"
                    )));
                    continue;
                }
                if !layers.contains(&name.layer) {
                    diags.push(here(format!(
                        "`{name}`: unknown layer `{}`; domain `{domain}` has layers: {}",
                        name.layer,
                        layers.join(", ")
                    )));
                    continue;
                }
                let ds = Dataset {
                    name: name.clone(),
                    file: file.clone(),
                    description: None,
                    contract: None,
                    kind: DatasetKind::Job(Arc::clone(&job)),
                };
                push_unique(datasets, ds, (dest.at.line, dest.at.column), diags);
            }
        }
    }
}

/// Reports sub-folders of `parent` that no domain claims (a typo in a folder name, a domain missing
/// from mesh.yaml).
fn unclaimed_folders(
    parent: &Path,
    claimed: &BTreeSet<PathBuf>,
    what: &str,
    diags: &mut Vec<Diagnostic>,
) {
    for dir in sorted_entries(parent).unwrap_or_default() {
        if !dir.is_dir() || claimed.contains(&dir) {
            continue;
        }
        if what == "domain" && !dir.join("domain.yaml").exists() {
            continue;
        }
        let name = file_name(&dir);
        let file = if what == "domain" {
            dir.join("domain.yaml")
        } else {
            dir.clone()
        };
        diags.push(Diagnostic::new(
            &file,
            1,
            1,
            format!("unknown domain `{name}`: this {what} folder belongs to no domain listed in catalog/mesh.yaml"),
        ));
    }
}

fn sorted_entries(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !file_name(p).starts_with('.'))
        .collect();
    v.sort();
    Ok(v)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn absolute(p: &Path) -> PathBuf {
    let p = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|c| c.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    };
    normalize(&p)
}

/// Removes `.` and `..` components without touching the file system.
pub(super) fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}
