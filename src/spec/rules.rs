//! Checks that span files: references that exist nowhere, layer rules and dependency cycles.
//!
//! Layer rules (the mesh's global defaults):
//! - `raw` is fed by sources and jobs only: no transform writes into it;
//! - `silver` reads its own domain's `raw` and `silver`;
//! - `gold` reads its own domain's `silver` and `gold`, and other domains' published products
//!   (their `gold` layer);
//! - any other layer reads its own domain's layers and other domains' `gold`.

use std::collections::{BTreeMap, BTreeSet};

use super::diagnostic::{Diagnostic, did_you_mean};
use super::{Dataset, DatasetKind, DatasetName, Dependency, Mesh};

/// Where a node's read of `dep` is written: the SQL position for transforms, the job item for jobs.
fn read_position(ds: &Dataset, dep: &Dependency) -> (usize, usize) {
    match &ds.kind {
        DatasetKind::Job(job) => (job.at.line, job.at.column),
        _ => (dep.line, dep.column),
    }
}

pub fn check(mesh: &Mesh, diags: &mut Vec<Diagnostic>) {
    let all: Vec<String> = mesh.datasets().map(|d| d.name.to_string()).collect();
    for (ds, _) in mesh.transforms() {
        if ds.name.layer == "raw" {
            diags.push(Diagnostic::new(
                &ds.file,
                1,
                1,
                format!(
                    "layer rule: `{}` is a transform in the raw layer; raw is fed by sources and jobs only \
                     (move the SQL to silver)",
                    ds.name
                ),
            ));
        }
    }
    for ds in mesh.nodes() {
        for dep in mesh.node_dependencies(ds) {
            let (line, column) = read_position(ds, dep);
            let here = |msg: String| Diagnostic::new(&ds.file, line, column, msg);
            let name = &dep.name;
            let Some(domain) = mesh.domain(&name.domain) else {
                let domains: Vec<&str> = mesh.domains.iter().map(|d| d.name.as_str()).collect();
                diags.push(here(format!(
                    "`{name}` refers to unknown domain `{}`; domains: {}",
                    name.domain,
                    domains.join(", ")
                )));
                continue;
            };
            if !domain.layers.contains(&name.layer) {
                diags.push(here(format!(
                    "`{name}` refers to unknown layer `{}`; domain `{}` has layers: {}",
                    name.layer,
                    domain.name,
                    domain.layers.join(", ")
                )));
                continue;
            }
            if mesh.dataset(name).is_none() {
                let mut msg = format!("`{name}` exists nowhere in the mesh");
                if let Some(s) = did_you_mean(&name.to_string(), all.iter().map(String::as_str)) {
                    msg.push_str(&format!("; did you mean `{s}`?"));
                }
                diags.push(here(msg));
                continue;
            }
            if let Some(why) = layer_violation(&ds.name, name) {
                diags.push(here(format!(
                    "layer rule: `{}` may not read `{name}`: {why}",
                    ds.name
                )));
            }
        }
    }
    cycles(mesh, diags);
}

fn layer_violation(reader: &DatasetName, read: &DatasetName) -> Option<&'static str> {
    let same_domain = reader.domain == read.domain;
    match reader.layer.as_str() {
        "silver" if !same_domain => {
            Some("silver reads its own domain's raw and silver layers only")
        }
        "silver" if read.layer == "gold" => {
            Some("silver reads its own domain's raw and silver layers only")
        }
        "gold" if same_domain && read.layer == "raw" => {
            Some("gold reads its own silver and gold layers (clean raw data in silver first)")
        }
        _ if !same_domain && read.layer != "gold" => {
            Some("other domains are readable only through their published products (gold layer)")
        }
        _ => None,
    }
}

/// Reports each dependency cycle among nodes once, at the edge that closes it.
fn cycles(mesh: &Mesh, diags: &mut Vec<Diagnostic>) {
    let mut edges: BTreeMap<DatasetName, Vec<DatasetName>> = BTreeMap::new();
    for ds in mesh.nodes() {
        let deps = mesh
            .node_dependencies(ds)
            .into_iter()
            .filter_map(|d| mesh.node_of(&d.name))
            .collect();
        edges.insert(ds.name.clone(), deps);
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    let mut marks: BTreeMap<&DatasetName, Mark> = BTreeMap::new();
    let mut reported: BTreeSet<Vec<&DatasetName>> = BTreeSet::new();
    // Iterative DFS: (node, index of next dependency to visit).
    for start in edges.keys() {
        if marks.contains_key(start) {
            continue;
        }
        let mut stack: Vec<(&DatasetName, usize)> = vec![(start, 0)];
        marks.insert(start, Mark::Visiting);
        while let Some((node, next)) = stack.last().copied() {
            let deps = edges.get(node).map(Vec::as_slice).unwrap_or_default();
            if next >= deps.len() {
                marks.insert(node, Mark::Done);
                stack.pop();
                continue;
            }
            if let Some(top) = stack.last_mut() {
                top.1 += 1;
            }
            let dep = &deps[next];
            match marks.get(dep) {
                None => {
                    marks.insert(dep, Mark::Visiting);
                    stack.push((dep, 0));
                }
                Some(Mark::Visiting) => {
                    let from = stack.iter().position(|(n, _)| *n == dep).unwrap_or(0);
                    let mut cycle: Vec<&DatasetName> =
                        stack[from..].iter().map(|(n, _)| *n).collect();
                    let mut key = cycle.clone();
                    key.sort();
                    if reported.insert(key) {
                        cycle.push(dep);
                        report_cycle(mesh, node, dep, &cycle, diags);
                    }
                }
                Some(Mark::Done) => {}
            }
        }
    }
}

fn report_cycle(
    mesh: &Mesh,
    node: &DatasetName,
    dep: &DatasetName,
    cycle: &[&DatasetName],
    diags: &mut Vec<Diagnostic>,
) {
    let Some(ds) = mesh.dataset(node) else { return };
    let (line, column) = mesh
        .node_dependencies(ds)
        .into_iter()
        .find(|d| mesh.node_of(&d.name).as_ref() == Some(dep))
        .map(|d| read_position(ds, d))
        .unwrap_or((1, 1));
    let path: Vec<String> = cycle.iter().map(|n| n.to_string()).collect();
    diags.push(Diagnostic::new(
        &ds.file,
        line,
        column,
        format!("dependency cycle: {}", path.join(" → ")),
    ));
}
