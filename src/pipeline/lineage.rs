//! Lineage: which tables each node reads (from the DAG), which source columns each output column
//! is computed from (from the transform's logical plan), and how to show it — Mermaid, Graphviz
//! dot, or OpenLineage RunEvents.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use datafusion::logical_expr::{Expr, JoinType, LogicalPlan};
use serde_json::{Value, json};

use super::report::{NodeStatus, RunReport};
use crate::engine::{Engine, SearchPath};
use crate::error::{Error, Result};
use crate::spec::{DatasetKind, DatasetName, Mesh};

/// A table read by a node: `upstream` → `downstream`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub upstream: String,
    pub downstream: String,
    /// `transform` or `job`.
    pub via: &'static str,
}

/// Source columns of one output column.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ColumnEdge {
    pub downstream: String,
    pub column: String,
    pub upstream: String,
    pub upstream_column: String,
}

/// Table-level lineage of the whole mesh.
pub fn edges(mesh: &Mesh) -> Vec<Edge> {
    let mut out = BTreeSet::new();
    for node in mesh.nodes() {
        let via = node.kind.label();
        let outputs: Vec<DatasetName> = match &node.kind {
            DatasetKind::Job(job) => job.outputs().cloned().collect(),
            _ => vec![node.name.clone()],
        };
        for dep in mesh.node_dependencies(node) {
            for o in &outputs {
                out.insert(Edge {
                    upstream: dep.name.to_string(),
                    downstream: o.to_string(),
                    via,
                });
            }
        }
    }
    out.into_iter().collect()
}

/// Column-level lineage of every transform, from its logical plan.
pub async fn column_edges(engine: &Engine) -> Result<Vec<ColumnEdge>> {
    let mut out = BTreeSet::new();
    for (ds, t) in engine.mesh().transforms() {
        let path = SearchPath {
            domain: ds.name.domain.clone(),
            layer: ds.name.layer.clone(),
        };
        let state = engine.session_in(&path);
        // A transform that does not plan (an input never published) has no column lineage yet.
        let Ok(plan) = engine.plan(&t.sql, &state).await else {
            continue;
        };
        let fields = plan.schema().fields().clone();
        for (i, field) in fields.iter().enumerate() {
            let mut sources = BTreeSet::new();
            origins(&plan, i, &path, &mut sources);
            for (table, column) in sources {
                out.insert(ColumnEdge {
                    downstream: ds.name.to_string(),
                    column: field.name().clone(),
                    upstream: table,
                    upstream_column: column,
                });
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// The columns of input `plan` referenced by `expr`, as indices into `plan`'s schema.
fn referenced(plan: &LogicalPlan, expr: &Expr) -> Vec<usize> {
    expr.column_refs()
        .into_iter()
        .filter_map(|c| plan.schema().index_of_column(c).ok())
        .collect()
}

/// Collects the (table, column) pairs output column `idx` of `plan` is computed from.
fn origins(
    plan: &LogicalPlan,
    idx: usize,
    path: &SearchPath,
    out: &mut BTreeSet<(String, String)>,
) {
    match plan {
        LogicalPlan::TableScan(scan) => {
            if idx < scan.projected_schema.fields().len() {
                let name = DatasetName::resolve(&scan.table_name, &path.domain, &path.layer);
                out.insert((
                    name.to_string(),
                    scan.projected_schema.field(idx).name().clone(),
                ));
            }
        }
        LogicalPlan::Projection(p) => {
            if let Some(e) = p.expr.get(idx) {
                for i in referenced(&p.input, e) {
                    origins(&p.input, i, path, out);
                }
            }
        }
        LogicalPlan::Aggregate(a) => {
            let exprs: Vec<&Expr> = a.group_expr.iter().chain(a.aggr_expr.iter()).collect();
            if let Some(e) = exprs.get(idx) {
                for i in referenced(&a.input, e) {
                    origins(&a.input, i, path, out);
                }
            }
        }
        LogicalPlan::Window(w) => {
            let width = w.input.schema().fields().len();
            if idx < width {
                origins(&w.input, idx, path, out);
            } else if let Some(e) = w.window_expr.get(idx - width) {
                for i in referenced(&w.input, e) {
                    origins(&w.input, i, path, out);
                }
            }
        }
        LogicalPlan::Join(j) => {
            let left = j.left.schema().fields().len();
            match j.join_type {
                JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => {
                    origins(&j.left, idx, path, out)
                }
                JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => {
                    origins(&j.right, idx, path, out)
                }
                _ if idx < left => origins(&j.left, idx, path, out),
                _ => origins(&j.right, idx - left, path, out),
            }
        }
        LogicalPlan::Union(u) => {
            for input in &u.inputs {
                origins(input, idx, path, out);
            }
        }
        // Operators that keep their input's columns as they are.
        LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Repartition(_)
        | LogicalPlan::Distinct(_) => {
            for input in plan.inputs() {
                origins(input, idx, path, out);
            }
        }
        // Anything else: every column of every input may contribute.
        other => {
            for input in other.inputs() {
                for i in 0..input.schema().fields().len() {
                    origins(input, i, path, out);
                }
            }
        }
    }
}

/// Keeps the edges connected to `focus` (its upstream and downstream closures).
pub fn around(edges: &[Edge], focus: &str) -> Vec<Edge> {
    let mut keep: BTreeSet<&Edge> = BTreeSet::new();
    for up in [true, false] {
        let mut todo = vec![focus.to_string()];
        let mut seen = BTreeSet::new();
        while let Some(n) = todo.pop() {
            for e in edges {
                let (here, next) = if up {
                    (&e.downstream, &e.upstream)
                } else {
                    (&e.upstream, &e.downstream)
                };
                if *here == n {
                    keep.insert(e);
                    if seen.insert(next.clone()) {
                        todo.push(next.clone());
                    }
                }
            }
        }
    }
    keep.into_iter().cloned().collect()
}

fn node_id(name: &str) -> String {
    name.replace(['.', '-'], "_")
}

/// A Mermaid flowchart.
pub fn mermaid(edges: &[Edge]) -> String {
    let mut out = String::from("graph LR\n");
    for e in edges {
        out.push_str(&format!(
            "  {}[\"{}\"] --> {}[\"{}\"]\n",
            node_id(&e.upstream),
            e.upstream,
            node_id(&e.downstream),
            e.downstream
        ));
    }
    out
}

/// A Graphviz digraph.
pub fn dot(edges: &[Edge]) -> String {
    let mut out = String::from("digraph lineage {\n  rankdir=LR;\n  node [shape=box];\n");
    for e in edges {
        out.push_str(&format!(
            "  \"{}\" -> \"{}\" [label=\"{}\"];\n",
            e.upstream, e.downstream, e.via
        ));
    }
    out.push_str("}\n");
    out
}

const PRODUCER: &str = concat!("urn:meshql:", env!("CARGO_PKG_VERSION"));
const RUN_EVENT_SCHEMA: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";

fn facet(schema_url: &str, mut body: Value) -> Value {
    if let Some(o) = body.as_object_mut() {
        o.insert("_producer".into(), json!(PRODUCER));
        o.insert("_schemaURL".into(), json!(schema_url));
    }
    body
}

/// One OpenLineage RunEvent for a node: its input and output datasets, the outputs' column
/// lineage, and the meshql run as parent.
#[allow(clippy::too_many_arguments)]
fn run_event(
    namespace: &str,
    event_type: &str,
    at: DateTime<Utc>,
    node: &str,
    parent_run: Option<&str>,
    inputs: &[String],
    outputs: &[String],
    columns: &[ColumnEdge],
) -> Value {
    let dataset = |name: &String| json!({"namespace": namespace, "name": name});
    let outputs: Vec<Value> = outputs
        .iter()
        .map(|o| {
            let mut fields: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
            for c in columns.iter().filter(|c| c.downstream == *o) {
                fields.entry(&c.column).or_default().push(
                    json!({"namespace": namespace, "name": c.upstream, "field": c.upstream_column}),
                );
            }
            let mut d = dataset(o);
            if !fields.is_empty() {
                let fields: serde_json::Map<String, Value> = fields
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), json!({"inputFields": v})))
                    .collect();
                d["facets"] = json!({"columnLineage": facet(
                    "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet",
                    json!({"fields": fields}),
                )});
            }
            d
        })
        .collect();
    let mut run = json!({"runId": uuid::Uuid::now_v7().to_string()});
    if let Some(parent) = parent_run {
        run["facets"] = json!({"parent": facet(
            "https://openlineage.io/spec/facets/1-1-0/ParentRunFacet.json#/$defs/ParentRunFacet",
            json!({"run": {"runId": parent}, "job": {"namespace": namespace, "name": "meshql.run"}}),
        )});
    }
    json!({
        "eventType": event_type,
        "eventTime": at.to_rfc3339(),
        "producer": PRODUCER,
        "schemaURL": RUN_EVENT_SCHEMA,
        "run": run,
        "job": {"namespace": namespace, "name": node},
        "inputs": inputs.iter().map(dataset).collect::<Vec<_>>(),
        "outputs": outputs,
    })
}

/// RunEvents describing every node among `edges` (as `meshql lineage --format openlineage`
/// prints them).
pub fn openlineage(mesh: &Mesh, edges: &[Edge], columns: &[ColumnEdge]) -> Vec<Value> {
    let namespace = namespace(mesh);
    let mut nodes: BTreeMap<&str, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    for e in edges {
        let entry = nodes.entry(&e.downstream).or_default();
        entry.0.insert(e.upstream.clone());
        entry.1.insert(e.downstream.clone());
    }
    let now = Utc::now();
    nodes
        .into_iter()
        .map(|(node, (ins, outs))| {
            let ins: Vec<String> = ins.into_iter().collect();
            let outs: Vec<String> = outs.into_iter().collect();
            run_event(
                &namespace, "COMPLETE", now, node, None, &ins, &outs, columns,
            )
        })
        .collect()
}

fn namespace(mesh: &Mesh) -> String {
    mesh.lineage
        .openlineage
        .as_ref()
        .and_then(|o| o.namespace.clone())
        .unwrap_or_else(|| format!("meshql://{}", mesh.name))
}

/// Sends one RunEvent per finished node of `report`, with the mesh's column lineage `columns`,
/// where mesh.yaml's `lineage.openlineage` says (a JSON-lines file and/or an HTTP endpoint).
pub async fn emit(engine: &Engine, report: &RunReport, columns: &[ColumnEdge]) -> Result<()> {
    let mesh = engine.mesh();
    let Some(settings) = &mesh.lineage.openlineage else {
        return Ok(());
    };
    let namespace = namespace(mesh);
    let all_edges = edges(mesh);
    let now = Utc::now();
    let mut events = Vec::new();
    for n in &report.nodes {
        let event_type = match n.status {
            NodeStatus::Succeeded | NodeStatus::UpToDate => "COMPLETE",
            NodeStatus::Failed { .. } | NodeStatus::Blocked(_) => "FAIL",
            NodeStatus::Skipped(_) => "ABORT",
        };
        let inputs: Vec<String> = all_edges
            .iter()
            .filter(|e| e.downstream == n.name)
            .map(|e| e.upstream.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let outputs = vec![n.name.clone()];
        events.push(run_event(
            &namespace,
            event_type,
            now,
            &n.name,
            Some(&report.run_id),
            &inputs,
            &outputs,
            columns,
        ));
    }
    if let Some(file) = &settings.file {
        use std::io::Write;
        let path = mesh.root.join(file);
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::user(format!("cannot open {}: {e}", path.display())))?;
        for e in &events {
            writeln!(f, "{e}")
                .map_err(|e| Error::user(format!("cannot write {}: {e}", path.display())))?;
        }
    }
    if let Some(url) = &settings.url {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(|e| Error::internal(format!("cannot build an HTTP client: {e}")))?;
        for e in &events {
            if let Err(err) = client
                .post(url)
                .header("content-type", "application/json")
                .body(e.to_string())
                .send()
                .await
            {
                tracing::warn!(url, error = %err, "cannot send an OpenLineage event");
            }
        }
    }
    Ok(())
}
