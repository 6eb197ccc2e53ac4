//! Selecting nodes and ordering them.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::spec::{DatasetName, Mesh};

/// A node selection: `domain`, `domain.layer` or `domain.layer.dataset`, with a trailing `+` to add
/// everything downstream of the match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    parts: Vec<String>,
    downstream: bool,
}

impl FromStr for Selector {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let (body, downstream) = match s.strip_suffix('+') {
            Some(b) => (b, true),
            None => (s, false),
        };
        let parts: Vec<String> = body.split('.').map(str::to_string).collect();
        if body.is_empty() || parts.len() > 3 || parts.iter().any(String::is_empty) {
            return Err(Error::user(format!(
                "invalid selector `{s}`; expected domain, domain.layer or domain.layer.dataset, optionally followed by `+`"
            )));
        }
        Ok(Self { parts, downstream })
    }
}

impl Selector {
    fn matches(&self, name: &DatasetName) -> bool {
        let full = [&name.domain, &name.layer, &name.dataset];
        self.parts.iter().zip(full).all(|(a, b)| a == b)
    }
}

/// The nodes of one run, in an order where every node follows the nodes it reads.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// Topological order.
    pub nodes: Vec<DatasetName>,
    /// For each node, the nodes of this plan it reads.
    pub upstream: BTreeMap<DatasetName, Vec<DatasetName>>,
}

impl RunPlan {
    /// Plans the nodes `selectors` name (every transform and job when empty). A selector
    /// naming any table a job writes selects that job.
    pub fn new(mesh: &Mesh, selectors: &[Selector]) -> Result<Self> {
        let mut all_upstream: BTreeMap<DatasetName, Vec<DatasetName>> = BTreeMap::new();
        for node in mesh.nodes() {
            let mut deps: Vec<DatasetName> = mesh
                .node_dependencies(node)
                .into_iter()
                .filter_map(|d| mesh.node_of(&d.name))
                .filter(|n| *n != node.name)
                .collect();
            deps.sort();
            deps.dedup();
            all_upstream.insert(node.name.clone(), deps);
        }

        let mut selected: BTreeSet<DatasetName> = BTreeSet::new();
        if selectors.is_empty() {
            selected.extend(all_upstream.keys().cloned());
        }
        for sel in selectors {
            let mut matched: Vec<DatasetName> = mesh
                .datasets()
                .filter(|d| sel.matches(&d.name))
                .filter_map(|d| mesh.node_of(&d.name))
                .collect();
            matched.sort();
            matched.dedup();
            if matched.is_empty() {
                let hint = mesh
                    .suggest(&sel.parts.join("."))
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                return Err(Error::not_found(format!(
                    "selector `{}` matches no transform or job{hint}",
                    sel.parts.join(".")
                )));
            }
            for name in matched {
                if sel.downstream {
                    selected.extend(downstream_of(&all_upstream, &name));
                }
                selected.insert(name);
            }
        }

        let upstream: BTreeMap<DatasetName, Vec<DatasetName>> = selected
            .iter()
            .map(|n| {
                let deps = all_upstream[n]
                    .iter()
                    .filter(|d| selected.contains(*d))
                    .cloned()
                    .collect();
                (n.clone(), deps)
            })
            .collect();
        let nodes = topological(&upstream)?;
        Ok(Self { nodes, upstream })
    }

    /// Nodes of this plan reading `name`.
    pub fn downstream(&self, name: &DatasetName) -> impl Iterator<Item = &DatasetName> {
        self.upstream
            .iter()
            .filter(move |(_, deps)| deps.contains(name))
            .map(|(n, _)| n)
    }
}

fn downstream_of(
    upstream: &BTreeMap<DatasetName, Vec<DatasetName>>,
    start: &DatasetName,
) -> BTreeSet<DatasetName> {
    let mut out = BTreeSet::new();
    let mut todo = vec![start.clone()];
    while let Some(n) = todo.pop() {
        for (child, deps) in upstream {
            if deps.contains(&n) && out.insert(child.clone()) {
                todo.push(child.clone());
            }
        }
    }
    out
}

/// Kahn's algorithm with a sorted ready set, so the order is deterministic.
fn topological(upstream: &BTreeMap<DatasetName, Vec<DatasetName>>) -> Result<Vec<DatasetName>> {
    let mut remaining: BTreeMap<&DatasetName, usize> =
        upstream.iter().map(|(n, d)| (n, d.len())).collect();
    let mut ready: BTreeSet<&DatasetName> = remaining
        .iter()
        .filter(|(_, c)| **c == 0)
        .map(|(n, _)| *n)
        .collect();
    let mut order = Vec::with_capacity(upstream.len());
    while let Some(n) = ready.pop_first() {
        remaining.remove(n);
        order.push(n.clone());
        for (child, deps) in upstream {
            if deps.contains(n)
                && let Some(c) = remaining.get_mut(child)
            {
                *c -= 1;
                if *c == 0 {
                    ready.insert(child);
                }
            }
        }
    }
    if !remaining.is_empty() {
        let names: Vec<String> = remaining.keys().map(|n| n.to_string()).collect();
        return Err(Error::user(format!(
            "dependency cycle among: {}",
            names.join(", ")
        )));
    }
    Ok(order)
}
