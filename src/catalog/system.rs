//! The `mesh` system catalog: what the mesh holds and what its runs did, as Delta tables under
//! `<warehouse>/_mesh/<schema>/<table>/`, queryable (read-only) like any dataset.
//!
//! | table | one row per |
//! |---|---|
//! | `mesh.catalog.domains` | domain |
//! | `mesh.catalog.datasets` | dataset: kind, materialisation, format, location, version, rows, last update, why its storage cannot be read |
//! | `mesh.catalog.columns` | column of a published dataset, with its contract description and classification |
//! | `mesh.catalog.products` | data product: contract, owner, version, status, SLA, last publish, freshness |
//! | `mesh.ops.runs` | node of a run: status, rows, duration, input versions, published version, error |
//! | `mesh.ops.versions` | readable version of a Delta or Iceberg table: number, snapshot id, commit time, operation, rows added, run (read live from the tables' logs) |
//! | `mesh.ops.audit` | request to the server: principal, operation, protocol, SQL, tables, masked columns, rows, bytes, duration, outcome (admins only) |
//! | `mesh.ops.checks` | evaluation of a contract rule: result, observed value, sample of offending rows |
//! | `mesh.lineage.edges` | table read by a node (table-level lineage from the DAG) |
//! | `mesh.lineage.columns` | source column of an output column (from the transform's logical plan) |
//!
//! Before anything was recorded, a table reads as empty.

use std::any::Any;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{CatalogProvider, MemTable, SchemaProvider, TableProvider};
use datafusion::error::Result as DfResult;

use super::MeshCatalog;
use super::versions::VersionsTable;
use crate::spec::DatasetName;

/// Name of the system catalog; no domain may take it.
pub const SYSTEM_CATALOG: &str = "mesh";

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn schema(fields: &[(&str, DataType, bool)]) -> SchemaRef {
    Arc::new(Schema::new(
        fields
            .iter()
            .map(|(n, t, null)| Field::new(*n, t.clone(), *null))
            .collect::<Vec<_>>(),
    ))
}

/// Every system table: (schema, table, columns).
static TABLES: LazyLock<Vec<(&'static str, &'static str, SchemaRef)>> = LazyLock::new(|| {
    use DataType::{Boolean, Int32, Int64, Utf8};
    vec![
        (
            "catalog",
            "domains",
            schema(&[
                ("domain", Utf8, false),
                ("owner", Utf8, false),
                ("description", Utf8, true),
                ("layers", Utf8, false),
                ("datasets", Int64, false),
            ]),
        ),
        (
            "catalog",
            "datasets",
            schema(&[
                ("domain", Utf8, false),
                ("layer", Utf8, false),
                ("dataset", Utf8, false),
                ("kind", Utf8, false),
                ("materialization", Utf8, false),
                ("format", Utf8, false),
                ("location", Utf8, false),
                ("version", Int64, true),
                ("rows", Int64, true),
                ("last_update", utc(), true),
                ("description", Utf8, true),
                ("file", Utf8, true),
                ("problem", Utf8, true),
            ]),
        ),
        (
            "catalog",
            "columns",
            schema(&[
                ("domain", Utf8, false),
                ("layer", Utf8, false),
                ("dataset", Utf8, false),
                ("column_name", Utf8, false),
                ("ordinal", Int32, false),
                ("data_type", Utf8, false),
                ("is_nullable", Boolean, false),
                ("description", Utf8, true),
                ("classification", Utf8, true),
                ("primary_key", Boolean, false),
            ]),
        ),
        (
            "catalog",
            "products",
            schema(&[
                ("domain", Utf8, false),
                ("layer", Utf8, false),
                ("dataset", Utf8, false),
                ("contract_id", Utf8, false),
                ("name", Utf8, true),
                ("owner", Utf8, false),
                ("version", Utf8, false),
                ("status", Utf8, false),
                ("description", Utf8, true),
                ("sla", Utf8, true),
                ("latency_secs", Int64, true),
                ("last_publish", utc(), true),
                ("freshness", Utf8, false),
                ("checked_at", utc(), false),
            ]),
        ),
        (
            "ops",
            "runs",
            schema(&[
                ("run_id", Utf8, false),
                ("node", Utf8, false),
                ("kind", Utf8, false),
                ("status", Utf8, false),
                ("rows", Int64, true),
                ("started_at", utc(), false),
                ("duration_ms", Int64, false),
                ("input_versions", Utf8, false),
                ("published_version", Int64, true),
                ("error", Utf8, true),
            ]),
        ),
        (
            "ops",
            "checks",
            schema(&[
                ("run_id", Utf8, false),
                ("node", Utf8, false),
                ("dataset", Utf8, false),
                ("contract_id", Utf8, false),
                ("contract_version", Utf8, false),
                ("rule", Utf8, false),
                ("kind", Utf8, false),
                ("severity", Utf8, false),
                ("result", Utf8, false),
                ("observed", DataType::Float64, true),
                ("expected", Utf8, false),
                ("detail", Utf8, true),
                ("checked_at", utc(), false),
            ]),
        ),
        (
            "ops",
            VERSIONS.1,
            schema(&[
                ("domain", Utf8, false),
                ("layer", Utf8, false),
                ("dataset", Utf8, false),
                ("format", Utf8, true),
                ("version", Int64, false),
                ("snapshot_id", Int64, true),
                ("committed_at", utc(), true),
                ("operation", Utf8, true),
                ("rows_added", Int64, true),
                ("run_id", Utf8, true),
                ("current", Boolean, false),
            ]),
        ),
        (
            "ops",
            "audit",
            schema(&[
                ("at", utc(), false),
                ("principal", Utf8, false),
                ("operation", Utf8, false),
                ("protocol", Utf8, false),
                ("sql", Utf8, true),
                ("tables", Utf8, true),
                ("masked", Utf8, true),
                ("rows", Int64, true),
                ("bytes", Int64, true),
                ("duration_ms", Int64, false),
                ("outcome", Utf8, false),
                ("message", Utf8, true),
            ]),
        ),
        (
            "lineage",
            "edges",
            schema(&[
                ("upstream", Utf8, false),
                ("downstream", Utf8, false),
                ("via", Utf8, false),
            ]),
        ),
        (
            "lineage",
            "columns",
            schema(&[
                ("downstream", Utf8, false),
                ("column_name", Utf8, false),
                ("upstream", Utf8, false),
                ("upstream_column", Utf8, false),
            ]),
        ),
    ]
});

/// The one system table read live (from the tables' logs) rather than from a table of its own.
pub const VERSIONS: (&str, &str) = ("ops", "versions");

/// The columns of system table `schema.table`.
pub fn system_schema(schema: &str, table: &str) -> Option<SchemaRef> {
    TABLES
        .iter()
        .find(|(s, t, _)| *s == schema && *t == table)
        .map(|(_, _, sc)| Arc::clone(sc))
}

/// Names of every system table.
pub fn system_tables() -> impl Iterator<Item = DatasetName> {
    TABLES
        .iter()
        .map(|(s, t, _)| DatasetName::new(SYSTEM_CATALOG, *s, *t))
}

/// The `mesh` catalog.
#[derive(Debug)]
pub struct SystemCatalog {
    catalog: Arc<MeshCatalog>,
}

impl SystemCatalog {
    pub fn new(catalog: Arc<MeshCatalog>) -> Self {
        Self { catalog }
    }
}

impl CatalogProvider for SystemCatalog {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema_names(&self) -> Vec<String> {
        vec!["catalog".into(), "ops".into(), "lineage".into()]
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        TABLES.iter().any(|(s, _, _)| *s == name).then(|| {
            Arc::new(SystemSchema {
                catalog: Arc::clone(&self.catalog),
                schema: name.to_string(),
            }) as Arc<dyn SchemaProvider>
        })
    }
}

#[derive(Debug)]
struct SystemSchema {
    catalog: Arc<MeshCatalog>,
    schema: String,
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn table_names(&self) -> Vec<String> {
        TABLES
            .iter()
            .filter(|(s, _, _)| *s == self.schema)
            .map(|(_, t, _)| t.to_string())
            .collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let Some(columns) = system_schema(&self.schema, name) else {
            return Ok(None);
        };
        if (self.schema.as_str(), name) == VERSIONS {
            return Ok(Some(Arc::new(VersionsTable {
                catalog: Arc::clone(&self.catalog),
                schema: columns,
            })));
        }
        let dataset = DatasetName::new(SYSTEM_CATALOG, &self.schema, name);
        let snapshot = self
            .catalog
            .snapshot(&dataset)
            .await
            .map_err(|e| e.into_datafusion())?;
        Ok(Some(match snapshot {
            Some(s) => Arc::clone(&s.provider),
            None => Arc::new(MemTable::try_new(columns, vec![vec![]])?),
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        system_schema(&self.schema, name).is_some()
    }
}
