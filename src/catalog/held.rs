//! A dataset held in memory as a table the planner can reason about as it would about the
//! Parquet or Delta files it came from.
//!
//! DataFusion's `MemTable` tells the planner row and null counts but not each column's smallest
//! and largest value, which Parquet footers and Delta logs do tell it. Without them the planner
//! cannot estimate a join's size and keeps the join order it was given, so a query that builds
//! its hash table on a few rows over storage may build it on millions over memory (TPC-H Q18).
//! [`HeldTable`] computes the bounds once, as the copy is made, and its scans report them.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{Result, ScalarValue, Statistics};
use datafusion::config::ConfigOptions;
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::{DataSource, DataSourceExec};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::functions_aggregate::min_max::{MaxAccumulator, MinAccumulator};
use datafusion::logical_expr::{Accumulator, Expr};
use datafusion::physical_expr::{EquivalenceProperties, LexOrdering, PhysicalExpr};
use datafusion::physical_expr_common::sort_expr::PhysicalSortExpr;
use datafusion::physical_plan::SortOrderPushdownResult;
use datafusion::physical_plan::filter_pushdown::FilterPushdownPropagation;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::physical_plan::projection::ProjectionExprs;
use datafusion::physical_plan::{DisplayFormatType, ExecutionPlan, Partitioning};

/// The smallest and largest value of one column, where they could be computed.
#[derive(Debug, Clone, Default)]
struct Bounds {
    min: Option<ScalarValue>,
    max: Option<ScalarValue>,
}

/// Record batches in memory, one list per partition, with each column's bounds.
#[derive(Debug)]
pub struct HeldTable {
    schema: SchemaRef,
    partitions: Vec<Vec<RecordBatch>>,
    bounds: Arc<[Bounds]>,
}

impl HeldTable {
    /// Holds `partitions` (batches of `schema`), computing every column's bounds. A column whose
    /// type has no order (lists, structs) has none; that only costs the planner an estimate.
    pub fn new(schema: SchemaRef, partitions: Vec<Vec<RecordBatch>>) -> Self {
        let bounds = (0..schema.fields().len())
            .map(|i| {
                let data_type = schema.field(i).data_type();
                let (Ok(mut min), Ok(mut max)) = (
                    MinAccumulator::try_new(data_type),
                    MaxAccumulator::try_new(data_type),
                ) else {
                    return Bounds::default();
                };
                let mut ordered = true;
                for batch in partitions.iter().flatten() {
                    let column = std::slice::from_ref(batch.column(i));
                    if min.update_batch(column).is_err() || max.update_batch(column).is_err() {
                        ordered = false;
                        break;
                    }
                }
                // An all-null (or empty) column has null bounds, which tell the planner nothing.
                let known = |v: Result<ScalarValue>| v.ok().filter(|v| ordered && !v.is_null());
                Bounds {
                    min: known(min.evaluate()),
                    max: known(max.evaluate()),
                }
            })
            .collect();
        Self {
            schema,
            partitions,
            bounds,
        }
    }
}

#[async_trait]
impl TableProvider for HeldTable {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let source =
            MemorySourceConfig::try_new(&self.partitions, self.schema(), projection.cloned())?
                .with_show_sizes(state.config_options().explain.show_sizes)
                .with_limit(limit);
        Ok(DataSourceExec::from_data_source(Bounded {
            inner: source,
            bounds: Arc::clone(&self.bounds),
        }))
    }
}

/// A scan of memory that reports the bounds of the columns it reads; everything else is the
/// memory scan's own.
#[derive(Debug, Clone)]
struct Bounded {
    inner: MemorySourceConfig,
    bounds: Arc<[Bounds]>,
}

impl Bounded {
    /// `source` (what the memory scan became) still reporting bounds.
    fn wrap(&self, source: Arc<dyn DataSource>) -> Arc<dyn DataSource> {
        match source.as_any().downcast_ref::<MemorySourceConfig>() {
            Some(inner) => Arc::new(Self {
                inner: inner.clone(),
                bounds: Arc::clone(&self.bounds),
            }),
            // Not a memory scan any more: it reports its own statistics.
            None => source,
        }
    }
}

impl DataSource for Bounded {
    fn open(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.inner.open(partition, context)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        self.inner.fmt_as(t, f)
    }

    fn repartitioned(
        &self,
        target_partitions: usize,
        repartition_file_min_size: usize,
        output_ordering: Option<LexOrdering>,
    ) -> Result<Option<Arc<dyn DataSource>>> {
        Ok(self
            .inner
            .repartitioned(
                target_partitions,
                repartition_file_min_size,
                output_ordering,
            )?
            .map(|s| self.wrap(s)))
    }

    fn output_partitioning(&self) -> Partitioning {
        self.inner.output_partitioning()
    }

    fn eq_properties(&self) -> EquivalenceProperties {
        self.inner.eq_properties()
    }

    fn scheduling_type(&self) -> datafusion::physical_plan::execution_plan::SchedulingType {
        self.inner.scheduling_type()
    }

    fn partition_statistics(&self, partition: Option<usize>) -> Result<Statistics> {
        let mut stats = self.inner.partition_statistics(partition)?;
        let columns: Vec<usize> = match self.inner.projection() {
            Some(p) => p.clone(),
            None => (0..self.bounds.len()).collect(),
        };
        for (column, table_column) in stats.column_statistics.iter_mut().zip(columns) {
            let Some(bounds) = self.bounds.get(table_column) else {
                continue;
            };
            // The table's bounds hold for any part of it (a partition, the first rows), but
            // are attained only by the whole: never exact.
            if let (Precision::Absent, Some(min)) = (&column.min_value, &bounds.min) {
                column.min_value = Precision::Inexact(min.clone());
            }
            if let (Precision::Absent, Some(max)) = (&column.max_value, &bounds.max) {
                column.max_value = Precision::Inexact(max.clone());
            }
        }
        Ok(stats)
    }

    fn with_fetch(&self, limit: Option<usize>) -> Option<Arc<dyn DataSource>> {
        self.inner.with_fetch(limit).map(|s| self.wrap(s))
    }

    fn fetch(&self) -> Option<usize> {
        self.inner.fetch()
    }

    fn metrics(&self) -> ExecutionPlanMetricsSet {
        self.inner.metrics()
    }

    fn try_swapping_with_projection(
        &self,
        projection: &ProjectionExprs,
    ) -> Result<Option<Arc<dyn DataSource>>> {
        Ok(self
            .inner
            .try_swapping_with_projection(projection)?
            .map(|s| self.wrap(s)))
    }

    fn try_pushdown_filters(
        &self,
        filters: Vec<Arc<dyn PhysicalExpr>>,
        config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn DataSource>>> {
        let mut pushed = self.inner.try_pushdown_filters(filters, config)?;
        pushed.updated_node = pushed.updated_node.map(|s| self.wrap(s));
        Ok(pushed)
    }

    fn try_pushdown_sort(
        &self,
        order: &[PhysicalSortExpr],
    ) -> Result<SortOrderPushdownResult<Arc<dyn DataSource>>> {
        Ok(self.inner.try_pushdown_sort(order)?.map(|s| self.wrap(s)))
    }

    fn with_preserve_order(&self, preserve_order: bool) -> Option<Arc<dyn DataSource>> {
        self.inner
            .with_preserve_order(preserve_order)
            .map(|s| self.wrap(s))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::prelude::SessionContext;

    use super::*;

    #[tokio::test]
    async fn scans_report_each_columns_bounds_for_the_columns_they_read() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("empty", DataType::Int64, true),
        ]));
        let batch = |n: Vec<Option<i64>>, s: Vec<Option<&str>>| {
            let empty = Int64Array::from(vec![None; n.len()]);
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(Int64Array::from(n)),
                    Arc::new(StringArray::from(s)),
                    Arc::new(empty),
                ],
            )
            .unwrap()
        };
        let table = HeldTable::new(
            Arc::clone(&schema),
            vec![
                vec![batch(vec![Some(5), None], vec![Some("m"), Some("b")])],
                vec![batch(vec![Some(-3), Some(40)], vec![None, Some("x")])],
            ],
        );
        let state = SessionContext::new().state();

        let plan = table
            .scan(&state, Some(&vec![2, 0]), &[], None)
            .await
            .unwrap();
        let stats = plan.partition_statistics(None).unwrap();
        assert_eq!(stats.num_rows, Precision::Exact(4));
        let (empty, n) = (&stats.column_statistics[0], &stats.column_statistics[1]);
        assert_eq!(
            n.min_value,
            Precision::Inexact(ScalarValue::Int64(Some(-3)))
        );
        assert_eq!(
            n.max_value,
            Precision::Inexact(ScalarValue::Int64(Some(40)))
        );
        assert_eq!(n.null_count, Precision::Exact(1));
        assert_eq!(empty.min_value, Precision::Absent, "no bounds of nulls");

        let plan = table.scan(&state, None, &[], Some(1)).await.unwrap();
        let stats = plan.partition_statistics(Some(1)).unwrap();
        let s = &stats.column_statistics[1];
        assert_eq!(
            s.min_value,
            Precision::Inexact(ScalarValue::Utf8(Some("b".into())))
        );
        assert_eq!(
            s.max_value,
            Precision::Inexact(ScalarValue::Utf8(Some("x".into())))
        );

        // What the optimizer makes of the scan (a fetch, a projection) still reports bounds.
        let limited = plan.with_fetch(Some(1)).unwrap();
        let stats = limited.partition_statistics(None).unwrap();
        assert!(matches!(
            stats.column_statistics[0].max_value,
            Precision::Inexact(_)
        ));

        let ctx = SessionContext::new();
        ctx.register_table("t", Arc::new(table)).unwrap();
        let rows = ctx
            .sql("SELECT count(*) FROM t WHERE n > 0")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let count = rows[0].column(0).as_any().downcast_ref::<Int64Array>();
        assert_eq!(count.map(|c| c.value(0)), Some(2));
    }
}
