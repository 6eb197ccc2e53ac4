//! Reading the mesh folder into a [`Mesh`], collecting every problem on the way: mesh.yaml
//! here, each domain in [`domain`] (its domain.yaml and sources) and [`folders`] (the SQL
//! transforms, jobs and contracts in its folders).

mod domain;
mod folders;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::contract::{self, ContractFile};
use super::diagnostic::did_you_mean;
use super::diagnostic::{Diagnostic, Diagnostics};
use super::files::{DomainFile, MeshFile, SourceFile};
use super::job::{self, DestinationKind};
use super::paths::normalize;
use super::policy;
use super::settings;
use super::yaml::{self, Positions};
use super::{
    Dataset, DatasetKind, DatasetName, Domain, Mesh, Source, is_valid_name, rules, transform,
};
use domain::load_domain;

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
        iceberg_catalog: spec.iceberg_catalog,
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

/// Adds `ds` to `datasets`, or reports it at `at` when a dataset of its name is there already.
pub(super) fn push_unique(
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
