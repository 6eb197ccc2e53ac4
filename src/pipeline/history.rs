//! Writing the `mesh` system catalog: one `mesh.ops.runs` row per finished node (appended as the
//! node ends, so a killed run keeps the rows of the nodes it finished), and a fresh snapshot of
//! `mesh.catalog.*` and `mesh.lineage.edges` after every run.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use futures::{StreamExt, TryStreamExt};

use super::report::NodeReport;
use crate::catalog::SYSTEM_CATALOG;
use crate::engine::Engine;
use crate::error::Result;
use crate::quality::Check;
use crate::spec::job::{DestinationKind, SaveMode};
use crate::spec::{DatasetKind, DatasetName, Materialization};
use crate::storage::WriteMode;

fn strings<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(values))
}

/// Writes rows (`columns`, in the table's column order) to system table `mesh.<schema>.<table>`.
async fn write(
    engine: &Engine,
    schema: &str,
    table: &str,
    columns: Vec<ArrayRef>,
    mode: WriteMode,
) -> Result<()> {
    engine
        .catalog()
        .write_system_table(&engine.session(), schema, table, columns, mode)
        .await
}

/// Appends the rows of finished nodes to `mesh.ops.runs`.
pub(crate) async fn record(engine: &Engine, run_id: &str, nodes: &[NodeReport]) -> Result<()> {
    if nodes.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = nodes.iter().map(|n| n.name.to_string()).collect();
    let inputs: Vec<String> = nodes
        .iter()
        .map(|n| serde_json::to_string(&n.inputs).unwrap_or_default())
        .collect();
    let errors: Vec<Option<String>> = nodes
        .iter()
        .map(|n| n.status.detail().map(str::to_string))
        .collect();
    let columns: Vec<ArrayRef> = vec![
        strings(nodes.iter().map(|_| Some(run_id))),
        strings(names.iter().map(|s| Some(s.as_str()))),
        strings(nodes.iter().map(|n| Some(n.kind))),
        strings(nodes.iter().map(|n| Some(n.status.label()))),
        Arc::new(Int64Array::from_iter(
            nodes.iter().map(|n| n.rows.map(|r| r as i64)),
        )),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(
                nodes.iter().map(|n| n.started_at.timestamp_micros()),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(Int64Array::from_iter_values(
            nodes.iter().map(|n| n.duration.as_millis() as i64),
        )),
        strings(inputs.iter().map(|s| Some(s.as_str()))),
        Arc::new(Int64Array::from_iter(
            nodes.iter().map(|n| n.version.map(|v| v as i64)),
        )),
        strings(errors.iter().map(|e| e.as_deref())),
    ];
    write(engine, "ops", "runs", columns, WriteMode::Append).await?;

    let checks: Vec<(&NodeReport, &Check)> = nodes
        .iter()
        .flat_map(|n| n.checks.iter().map(move |c| (n, c)))
        .collect();
    if checks.is_empty() {
        return Ok(());
    }
    let node_names: Vec<&str> = checks.iter().map(|(n, _)| n.name.as_str()).collect();
    let now = chrono::Utc::now().timestamp_micros();
    let columns: Vec<ArrayRef> = vec![
        strings(checks.iter().map(|_| Some(run_id))),
        strings(node_names.iter().map(|n| Some(*n))),
        strings(checks.iter().map(|(_, c)| Some(c.dataset.as_str()))),
        strings(checks.iter().map(|(_, c)| Some(c.contract_id.as_str()))),
        strings(
            checks
                .iter()
                .map(|(_, c)| Some(c.contract_version.as_str())),
        ),
        strings(checks.iter().map(|(_, c)| Some(c.rule.as_str()))),
        strings(checks.iter().map(|(_, c)| Some(c.kind.as_str()))),
        strings(checks.iter().map(|(_, c)| Some(c.severity.name()))),
        strings(checks.iter().map(|(_, c)| Some(c.result))),
        Arc::new(Float64Array::from_iter(
            checks.iter().map(|(_, c)| c.observed),
        )),
        strings(checks.iter().map(|(_, c)| Some(c.expected.as_str()))),
        strings(checks.iter().map(|(_, c)| c.detail.as_deref())),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(checks.iter().map(|_| now))
                .with_timezone("UTC"),
        ),
    ];
    write(engine, "ops", "checks", columns, WriteMode::Append).await
}

/// How a dataset is stored, for `mesh.catalog.datasets`.
fn materialization(engine: &Engine, name: &DatasetName) -> &'static str {
    match engine.mesh().dataset(name).map(|d| &d.kind) {
        Some(DatasetKind::Transform(t)) => t.options.materialized.name(),
        Some(DatasetKind::Job(job)) => {
            let mode = job.destinations.iter().find_map(|d| match &d.kind {
                DestinationKind::Table { name: n, mode, .. } if n == name => Some(*mode),
                _ => None,
            });
            match mode {
                Some(SaveMode::Append | SaveMode::Merge) => Materialization::Incremental.name(),
                _ => Materialization::Table.name(),
            }
        }
        Some(DatasetKind::Source(_)) => "source",
        None => Materialization::Table.name(),
    }
}

/// Datasets whose facts [`refresh`] gathers at once.
const FACTS_AT_ONCE: usize = 8;

/// Rewrites `mesh.catalog.*` and `mesh.lineage.*` from the mesh and the current versions of its
/// tables; answers the column lineage it computed (for the run's OpenLineage events).
pub async fn refresh(engine: &Engine) -> Result<Vec<super::lineage::ColumnEdge>> {
    let mesh = engine.mesh();
    let catalog = engine.catalog();

    // Domains, with their datasets counted in one pass over the catalog.
    let mut per_domain: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    for name in catalog.dataset_names() {
        *per_domain.entry(name.domain).or_default() += 1;
    }
    let counts: Vec<i64> = mesh
        .domains
        .iter()
        .map(|d| per_domain.get(&d.name).copied().unwrap_or(0))
        .collect();
    let layers: Vec<String> = mesh.domains.iter().map(|d| d.layers.join(", ")).collect();
    write(
        engine,
        "catalog",
        "domains",
        vec![
            strings(mesh.domains.iter().map(|d| Some(d.name.as_str()))),
            strings(mesh.domains.iter().map(|d| Some(d.owner.as_str()))),
            strings(mesh.domains.iter().map(|d| d.description.as_deref())),
            strings(layers.iter().map(|l| Some(l.as_str()))),
            Arc::new(Int64Array::from(counts)),
        ],
        WriteMode::Replace,
    )
    .await?;

    // Datasets and their columns.
    let names: Vec<DatasetName> = catalog
        .dataset_names()
        .into_iter()
        .filter(|n| n.domain != SYSTEM_CATALOG)
        .collect();
    let mut d = DatasetRows::default();
    let mut c = ColumnRows::default();
    // Opening tables waits on storage: several at once, answers kept in order.
    let all_facts: Vec<_> = futures::stream::iter(names.iter().cloned())
        .map(|n| async move { engine.facts(&n).await })
        .buffered(FACTS_AT_ONCE)
        .try_collect()
        .await?;
    for (name, facts) in names.iter().zip(all_facts) {
        let dataset = mesh.dataset(name);
        d.names.push(name.clone());
        d.kind.push(facts.kind);
        d.materialization.push(materialization(engine, name));
        d.format.push(facts.format);
        d.location.push(facts.location.clone());
        d.version.push(facts.version.map(|v| v as i64));
        // A view holds no rows of its own.
        d.rows.push(facts.rows.map(|r| r as i64));
        d.updated
            .push(facts.last_update.map(|t| t.timestamp_micros()));
        d.description
            .push(dataset.and_then(|ds| ds.description.clone()));
        d.file.push(dataset.map(|ds| ds.file.display().to_string()));
        d.problem.push(facts.problem.clone());
        if let Some(s) = &facts.snapshot {
            c.push_columns(name, s, dataset.and_then(|d| d.contract.as_deref()));
        }
    }
    let part = |names: &[DatasetName], f: fn(&DatasetName) -> &str| -> ArrayRef {
        strings(names.iter().map(|n| Some(f(n))))
    };
    write(
        engine,
        "catalog",
        "datasets",
        vec![
            part(&d.names, |n| &n.domain),
            part(&d.names, |n| &n.layer),
            part(&d.names, |n| &n.dataset),
            strings(d.kind.iter().map(|s| Some(*s))),
            strings(d.materialization.iter().map(|s| Some(*s))),
            strings(d.format.iter().map(|s| Some(*s))),
            strings(d.location.iter().map(|s| Some(s.as_str()))),
            Arc::new(Int64Array::from(d.version)),
            Arc::new(Int64Array::from(d.rows)),
            Arc::new(TimestampMicrosecondArray::from(d.updated).with_timezone("UTC")),
            strings(d.description.iter().map(|s| s.as_deref())),
            strings(d.file.iter().map(|s| s.as_deref())),
            strings(d.problem.iter().map(|s| s.as_deref())),
        ],
        WriteMode::Replace,
    )
    .await?;
    write(
        engine,
        "catalog",
        "columns",
        vec![
            part(&c.names, |n| &n.domain),
            part(&c.names, |n| &n.layer),
            part(&c.names, |n| &n.dataset),
            strings(c.column.iter().map(|s| Some(s.as_str()))),
            Arc::new(Int32Array::from(c.ordinal)),
            strings(c.data_type.iter().map(|s| Some(s.as_str()))),
            Arc::new(BooleanArray::from(c.nullable)),
            strings(c.description.iter().map(|s| s.as_deref())),
            strings(c.classification.iter().map(|s| s.as_deref())),
            Arc::new(BooleanArray::from(c.primary_key)),
        ],
        WriteMode::Replace,
    )
    .await?;

    refresh_products(engine, chrono::Utc::now()).await?;

    // Lineage: tables from the DAG, columns from the transforms' plans.
    let edges = super::lineage::edges(mesh);
    write(
        engine,
        "lineage",
        "edges",
        vec![
            strings(edges.iter().map(|e| Some(e.upstream.as_str()))),
            strings(edges.iter().map(|e| Some(e.downstream.as_str()))),
            strings(edges.iter().map(|e| Some(e.via))),
        ],
        WriteMode::Replace,
    )
    .await?;
    let columns = super::lineage::column_edges(engine).await?;
    write(
        engine,
        "lineage",
        "columns",
        vec![
            strings(columns.iter().map(|c| Some(c.downstream.as_str()))),
            strings(columns.iter().map(|c| Some(c.column.as_str()))),
            strings(columns.iter().map(|c| Some(c.upstream.as_str()))),
            strings(columns.iter().map(|c| Some(c.upstream_column.as_str()))),
        ],
        WriteMode::Replace,
    )
    .await?;
    Ok(columns)
}

/// Rewrites `mesh.catalog.products`: every product with its freshness at `now`.
pub async fn refresh_products(engine: &Engine, now: chrono::DateTime<chrono::Utc>) -> Result<()> {
    let mesh = engine.mesh();
    let mut rows: Vec<(
        DatasetName,
        &crate::spec::Contract,
        Option<i64>,
        &'static str,
    )> = Vec::new();
    for (ds, contract) in mesh.products() {
        // A product whose table cannot be read has no known last publish (and is stale).
        let last = match engine.catalog().snapshot(&ds.name).await {
            Ok(snapshot) => snapshot.and_then(|s| s.last_modified),
            Err(e) => {
                tracing::warn!(dataset = %ds.name, error = %e, "cannot read a product's table");
                None
            }
        };
        let status = crate::spec::contract::freshness(contract.latency, last, now);
        rows.push((
            ds.name.clone(),
            contract,
            last.map(|t| t.timestamp_micros()),
            status,
        ));
    }
    let owners: Vec<String> = rows
        .iter()
        .map(|(n, c, ..)| {
            c.team
                .clone()
                .or_else(|| mesh.domain(&n.domain).map(|d| d.owner.clone()))
                .unwrap_or_default()
        })
        .collect();
    let slas: Vec<Option<String>> = rows.iter().map(|(_, c, ..)| c.sla_text()).collect();
    let part = |f: fn(&DatasetName) -> &str| -> ArrayRef {
        strings(rows.iter().map(|(n, ..)| Some(f(n))))
    };
    write(
        engine,
        "catalog",
        "products",
        vec![
            part(|n| &n.domain),
            part(|n| &n.layer),
            part(|n| &n.dataset),
            strings(rows.iter().map(|(_, c, ..)| Some(c.id.as_str()))),
            strings(rows.iter().map(|(_, c, ..)| c.name.as_deref())),
            strings(owners.iter().map(|o| Some(o.as_str()))),
            strings(rows.iter().map(|(_, c, ..)| Some(c.version_text.as_str()))),
            strings(rows.iter().map(|(_, c, ..)| Some(c.status.as_str()))),
            strings(rows.iter().map(|(_, c, ..)| c.description.as_deref())),
            strings(slas.iter().map(|s| s.as_deref())),
            Arc::new(Int64Array::from_iter(
                rows.iter()
                    .map(|(_, c, ..)| c.latency.map(|l| l.as_secs() as i64)),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter(rows.iter().map(|(_, _, t, _)| *t))
                    .with_timezone("UTC"),
            ),
            strings(rows.iter().map(|(.., s)| Some(*s))),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    rows.iter().map(|_| now.timestamp_micros()),
                )
                .with_timezone("UTC"),
            ),
        ],
        WriteMode::Replace,
    )
    .await
}

#[derive(Default)]
struct DatasetRows {
    names: Vec<DatasetName>,
    kind: Vec<&'static str>,
    materialization: Vec<&'static str>,
    format: Vec<&'static str>,
    location: Vec<String>,
    version: Vec<Option<i64>>,
    rows: Vec<Option<i64>>,
    updated: Vec<Option<i64>>,
    description: Vec<Option<String>>,
    file: Vec<Option<String>>,
    problem: Vec<Option<String>>,
}

#[derive(Default)]
struct ColumnRows {
    names: Vec<DatasetName>,
    column: Vec<String>,
    ordinal: Vec<i32>,
    data_type: Vec<String>,
    nullable: Vec<bool>,
    description: Vec<Option<String>>,
    classification: Vec<Option<String>>,
    primary_key: Vec<bool>,
}

impl ColumnRows {
    /// The columns of the published version `snapshot` of `name`, documented by `contract`.
    fn push_columns(
        &mut self,
        name: &DatasetName,
        snapshot: &crate::storage::TableSnapshot,
        contract: Option<&crate::spec::Contract>,
    ) {
        for (i, f) in snapshot.provider.schema().fields().iter().enumerate() {
            let documented =
                contract.and_then(|k| k.columns.iter().find(|col| col.name == *f.name()));
            self.names.push(name.clone());
            self.column.push(f.name().clone());
            self.ordinal.push(i as i32 + 1);
            self.data_type.push(f.data_type().to_string());
            self.nullable.push(f.is_nullable());
            self.description
                .push(documented.and_then(|d| d.description.clone()));
            self.classification
                .push(documented.and_then(|d| d.classification.clone()));
            self.primary_key
                .push(documented.is_some_and(|d| d.primary_key));
        }
    }
}
