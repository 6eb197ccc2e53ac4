//! Incremental writes: rows past a high-water mark, and merge keys checked before a MERGE.

use datafusion::common::{Column, ScalarValue};
use datafusion::functions_aggregate::expr_fn::{count, max};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, col, lit};
use datafusion::prelude::DataFrame;
use futures::TryStreamExt;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::spec::DatasetName;

fn column(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

fn require_columns(plan: &LogicalPlan, columns: &[String], what: &str) -> Result<()> {
    let names: Vec<&str> = plan
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    for c in columns {
        if !names.contains(&c.as_str()) {
            return Err(Error::user(format!(
                "{what} `{c}` is not a column of the new rows (columns: {})",
                names.join(", ")
            )));
        }
    }
    Ok(())
}

/// `plan` restricted to rows whose `watermark` is greater than the largest value `target`
/// holds (all rows when the table holds none).
pub async fn past_watermark(
    engine: &Engine,
    target: &DatasetName,
    plan: LogicalPlan,
    watermark: &str,
) -> Result<LogicalPlan> {
    require_columns(&plan, &[watermark.to_string()], "watermark column")?;
    let snapshot = engine
        .catalog()
        .snapshot(target)
        .await?
        .ok_or_else(|| Error::internal(format!("`{target}` has no version to append to")))?;
    let state = engine.session();
    let scan = LogicalPlanBuilder::scan(
        "target",
        datafusion::datasource::provider_as_source(snapshot.provider.clone()),
        None,
    )?
    .build()?;
    let high = DataFrame::new(state, scan)
        .aggregate(vec![], vec![max(column(watermark)).alias("high")])?
        .collect()
        .await
        .map_err(|e| Error::from(e).with_context("watermark", watermark))?;
    let value = match high.first() {
        Some(b) if b.num_rows() > 0 => ScalarValue::try_from_array(b.column(0), 0)?,
        _ => ScalarValue::Null,
    };
    if value.is_null() {
        return Ok(plan);
    }
    Ok(LogicalPlanBuilder::from(plan)
        .filter(column(watermark).gt(lit(value)))?
        .build()?)
}

/// Refuses a merge whose key repeats among the new rows, showing up to five repeated keys.
pub async fn check_unique(engine: &Engine, plan: &LogicalPlan, keys: &[String]) -> Result<()> {
    if keys.is_empty() {
        return Err(Error::user("a merge needs a unique_key"));
    }
    require_columns(plan, keys, "merge key")?;
    let group: Vec<Expr> = keys.iter().map(|k| column(k)).collect();
    let dupes = DataFrame::new(engine.session(), plan.clone())
        .aggregate(group, vec![count(lit(1)).alias("__copies")])?
        .filter(col("__copies").gt(lit(1i64)))?
        .limit(0, Some(5))?;
    let batches: Vec<_> = dupes.execute_stream().await?.try_collect().await?;
    let mut samples = Vec::new();
    for b in &batches {
        for row in 0..b.num_rows() {
            let mut parts = Vec::new();
            for (i, k) in keys.iter().enumerate() {
                let v = ScalarValue::try_from_array(b.column(i), row)?;
                parts.push(format!("{k}={v}"));
            }
            let n = ScalarValue::try_from_array(b.column(keys.len()), row)?;
            samples.push(format!("({}) ×{n}", parts.join(", ")));
        }
    }
    if samples.is_empty() {
        return Ok(());
    }
    Err(Error::user(format!(
        "merge key ({}) is not unique in the new rows; nothing was written. Repeated keys: {}",
        keys.join(", "),
        samples.join("; ")
    )))
}
