//! `mesh.ops.versions`: every readable version of every Delta and Iceberg table of the mesh,
//! read from the tables' own logs when queried (nothing is copied, so commits by other engines
//! show too).
//!
//! A scan opens the history of the datasets its filters leave: `WHERE dataset = 'revenue'`
//! reads one log, not every table's. Governance adds the filter limiting the rows to what the
//! principal may read, so a principal never sees the versions of a table it may not read.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::DFSchema;
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use futures::{StreamExt, stream};

use super::{MeshCatalog, SYSTEM_CATALOG};
use crate::spec::DatasetName;
use crate::storage::VersionInfo;

/// Histories opened at once by one scan.
const CONCURRENT_HISTORIES: usize = 8;

/// The live `mesh.ops.versions` table.
#[derive(Debug)]
pub struct VersionsTable {
    pub(super) catalog: Arc<MeshCatalog>,
    pub(super) schema: SchemaRef,
}

#[async_trait]
impl TableProvider for VersionsTable {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// A table like the other system tables, in listings and information_schema.
    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Used to choose which histories to read; applied again above the scan.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let names = self.candidates(state, filters)?;
        let catalog = &self.catalog;
        let histories: Vec<(DatasetName, Vec<VersionInfo>)> = stream::iter(names)
            .map(|name| async move {
                match catalog.versions(&name).await {
                    Ok(versions) => Some((name, versions)),
                    Err(e) => {
                        // One unreadable table does not hide the others' versions; its problem
                        // shows in mesh.catalog.datasets.
                        tracing::warn!(dataset = %name, error = %e, "cannot list versions");
                        None
                    }
                }
            })
            .buffered(CONCURRENT_HISTORIES)
            .filter_map(|found| async move { found })
            .collect()
            .await;
        let batch = self.rows(&histories)?;
        let exec = MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            Arc::clone(&self.schema),
            projection.cloned(),
        )?;
        Ok(exec)
    }
}

impl VersionsTable {
    /// The tables with versions whose name passes every filter on `domain`, `layer` and
    /// `dataset` alone.
    fn candidates(&self, state: &dyn Session, filters: &[Expr]) -> DfResult<Vec<DatasetName>> {
        let mut names: Vec<DatasetName> = self
            .catalog
            .dataset_names()
            .into_iter()
            .filter(|n| n.domain != SYSTEM_CATALOG && !self.catalog.is_view(n))
            .filter(|n| {
                self.catalog
                    .store(n)
                    .is_some_and(|s| matches!(s.format(), "delta" | "iceberg"))
            })
            .collect();
        let naming: Vec<&Expr> = filters
            .iter()
            .filter(|f| {
                f.column_refs()
                    .iter()
                    .all(|c| matches!(c.name.as_str(), "domain" | "layer" | "dataset"))
            })
            .collect();
        if naming.is_empty() || names.is_empty() {
            return Ok(names);
        }
        // The first three columns are `domain`, `layer`, `dataset`.
        let schema = Arc::new(self.schema.project(&[0, 1, 2])?);
        let column = |part: fn(&DatasetName) -> &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(names.iter().map(part)))
        };
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                column(|n| &n.domain),
                column(|n| &n.layer),
                column(|n| &n.dataset),
            ],
        )?;
        let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
        let mut keep = vec![true; names.len()];
        for filter in naming {
            // Unqualified: the batch has the three columns without the table's name.
            let unqualified = strip_qualifiers(filter.clone())?;
            let predicate = state.create_physical_expr(unqualified, &df_schema)?;
            let result = predicate.evaluate(&batch)?.into_array(batch.num_rows())?;
            let Some(mask) = result.as_any().downcast_ref::<BooleanArray>() else {
                continue;
            };
            for (i, k) in keep.iter_mut().enumerate() {
                *k &= mask.is_valid(i) && mask.value(i);
            }
        }
        let mut kept = keep.into_iter();
        names.retain(|_| kept.next().unwrap_or(false));
        Ok(names)
    }

    fn rows(&self, histories: &[(DatasetName, Vec<VersionInfo>)]) -> DfResult<RecordBatch> {
        let all = || {
            histories
                .iter()
                .flat_map(|(name, versions)| versions.iter().map(move |v| (name, v, versions)))
        };
        let text = |f: &dyn Fn(&DatasetName, &VersionInfo) -> Option<String>| -> ArrayRef {
            Arc::new(all().map(|(n, v, _)| f(n, v)).collect::<StringArray>())
        };
        let format = |n: &DatasetName| self.catalog.store(n).map(|s| s.format().to_string());
        let columns: Vec<ArrayRef> = vec![
            text(&|n, _| Some(n.domain.clone())),
            text(&|n, _| Some(n.layer.clone())),
            text(&|n, _| Some(n.dataset.clone())),
            text(&|n, _| format(n)),
            Arc::new(
                all()
                    .map(|(_, v, _)| Some(v.version as i64))
                    .collect::<Int64Array>(),
            ),
            Arc::new(all().map(|(_, v, _)| v.snapshot_id).collect::<Int64Array>()),
            Arc::new(
                all()
                    .map(|(_, v, _)| v.committed_at.map(|t| t.timestamp_micros()))
                    .collect::<TimestampMicrosecondArray>()
                    .with_timezone("UTC"),
            ),
            text(&|_, v| v.operation.clone()),
            Arc::new(
                all()
                    .map(|(_, v, _)| v.rows_added.map(|r| r as i64))
                    .collect::<Int64Array>(),
            ),
            text(&|_, v| v.run_id.clone()),
            Arc::new(
                all()
                    .map(|(_, v, versions)| Some(versions.last() == Some(v)))
                    .collect::<BooleanArray>(),
            ),
        ];
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

/// `expr` with its columns unqualified (`versions.dataset` -> `dataset`).
fn strip_qualifiers(expr: Expr) -> DfResult<Expr> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    expr.transform(|e| match e {
        Expr::Column(c) if c.relation.is_some() => Ok(Transformed::yes(Expr::Column(
            datafusion::common::Column::new_unqualified(c.name),
        ))),
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
}
