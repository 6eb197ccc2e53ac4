//! Checks on the constants of an optimised plan.
//!
//! - Constant arithmetic that cannot be computed is an error at planning, as it would be at
//!   execution. DataFusion folds constant expressions while optimising and, when folding fails,
//!   keeps the expression for execution (a `CASE` branch may never run). Unfolded constant
//!   arithmetic then reaches physical planning, where `DATE '2026-01-01' + INTERVAL '10000000
//!   years'` panics in DataFusion's interval arithmetic. The last optimizer rule evaluates
//!   constant arithmetic: where it always runs, its error is the query's; in a branch that may
//!   never run, it becomes a call that raises that error if and when the branch runs.
//! - A constant is repeated for every row of a batch when it becomes a column: a 1 MiB literal
//!   (typed, or folded from `repeat('x', 1000000)`) is 16 GiB per batch of 16,384 rows, allocated
//!   before any pool can refuse it. A constant is charged once per row its node's batches can
//!   hold — once in a one-row `SELECT` or as what `unnest` spreads there, a batch's worth beside
//!   a table scan or below a join or an `unnest` that repeats it — and refused past the
//!   per-call value limit.

use std::any::Any;
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, ScalarValue, exec_err, resources_datafusion_err};
use datafusion::error::Result;
use datafusion::execution::SessionState;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::execution_props::ExecutionProps;

use crate::human;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ReturnFieldArgs,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, lit,
};
use datafusion::optimizer::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::physical_expr::create_physical_expr;

use super::functions::ValueLimits;

/// `state` with the checks appended to its optimizer rules; `limits` bound constants.
pub fn checked(state: SessionState, limits: ValueLimits) -> SessionState {
    let mut rules: Vec<Arc<dyn OptimizerRule + Send + Sync>> = state.optimizers().to_vec();
    rules.push(Arc::new(CheckConstants {
        limits,
        raise: Arc::new(ScalarUDF::new_from_impl(RaiseError::new())),
    }));
    SessionStateBuilder::new_from_existing(state)
        .with_optimizer_rules(rules)
        .build()
}

#[derive(Debug)]
struct CheckConstants {
    limits: ValueLimits,
    raise: Arc<ScalarUDF>,
}

impl OptimizerRule for CheckConstants {
    fn name(&self) -> &str {
        "meshql_check_constants"
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let batch = config.options().execution.batch_size.max(1);
        check_sizes(&plan, batch, &self.limits, false, None)?;
        plan.transform_up_with_subqueries(|node| node.map_expressions(|e| self.fix(e, false)))
    }
}

impl CheckConstants {
    /// Evaluates the constant arithmetic in `e`; `conditional` inside branches that may not run.
    fn fix(&self, e: Expr, conditional: bool) -> Result<Transformed<Expr>> {
        match e {
            Expr::BinaryExpr(BinaryExpr {
                ref left,
                op,
                ref right,
            }) if is_arithmetic(op)
                && matches!(left.as_ref(), Expr::Literal(..))
                && matches!(right.as_ref(), Expr::Literal(..)) =>
            {
                match evaluate(&e) {
                    Ok(_) => Ok(Transformed::no(e)),
                    Err(err) if !conditional => Err(err),
                    Err(err) => {
                        let Ok(t) = e.get_type(&DFSchema::empty()) else {
                            return Ok(Transformed::no(e));
                        };
                        let typed_null = lit(ScalarValue::try_from(&t)?);
                        let message = crate::error::Error::from(err).to_string();
                        Ok(Transformed::yes(Expr::ScalarFunction(
                            ScalarFunction::new_udf(
                                Arc::clone(&self.raise),
                                vec![lit(message), typed_null],
                            ),
                        )))
                    }
                }
            }
            // Branches that may never run.
            Expr::Case(_) => e.map_children(|c| self.fix(c, true)),
            Expr::BinaryExpr(BinaryExpr { left, op, right })
                if matches!(op, Operator::And | Operator::Or) =>
            {
                let left = self.fix(*left, conditional)?;
                let right = self.fix(*right, true)?;
                let changed = left.transformed || right.transformed;
                let e = Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(left.data),
                    op,
                    Box::new(right.data),
                ));
                Ok(if changed {
                    Transformed::yes(e)
                } else {
                    Transformed::no(e)
                })
            }
            Expr::ScalarFunction(ref f) if f.func.short_circuits() => {
                e.map_children(|c| self.fix(c, true))
            }
            other => other.map_children(|c| self.fix(c, conditional)),
        }
    }
}

/// Refuses constants that would exceed the value limit once repeated for a batch.
/// Checks the constants of `plan` and its inputs for what they cost once they become columns.
///
/// `multiplied`: an operator above can repeat each row of this node's output (a join, an
/// `unnest`), so every constant here may be copied a batch's worth of times. `unnested`: this node
/// feeds an `unnest`, whose own columns it spreads over rows instead of repeating them, with
/// whether an operator above that `unnest` repeats rows.
fn check_sizes(
    plan: &LogicalPlan,
    batch: usize,
    limits: &ValueLimits,
    multiplied: bool,
    unnested: Option<(&[Column], bool)>,
) -> Result<()> {
    let own = rows_per_batch(plan, batch);
    let rows = if multiplied { batch } else { own };
    match (plan, unnested) {
        (LogicalPlan::Projection(p), Some((columns, above))) => {
            for (expr, column) in p.expr.iter().zip(p.schema.columns()) {
                let spread = columns.iter().any(|c| c.name == column.name);
                let rows = if spread && !above { own } else { rows };
                check_size(expr, rows, limits)?;
            }
        }
        _ => {
            for expr in plan.expressions() {
                check_size(&expr, rows, limits)?;
            }
        }
    }
    // What a subquery computes is joined to every row of its outer query.
    plan.apply_subqueries(|subquery| {
        check_sizes(subquery, batch, limits, true, None)?;
        Ok(TreeNodeRecursion::Jump)
    })?;
    let below = multiplied || matches!(plan, LogicalPlan::Join(_) | LogicalPlan::Unnest(_));
    let unnest = match plan {
        LogicalPlan::Unnest(u) => Some((u.exec_columns.as_slice(), multiplied)),
        _ => None,
    };
    for input in plan.inputs() {
        check_sizes(input, batch, limits, below, unnest)?;
    }
    Ok(())
}

/// The most rows a batch evaluating `node`'s expressions can hold: what its inputs can produce
/// when the plan knows (a one-row `SELECT` without `FROM`, a `VALUES` list, a `LIMIT`), capped by
/// the batch size. A constant becomes a column of that many copies at most.
fn rows_per_batch(node: &LogicalPlan, batch: usize) -> usize {
    let rows = match node {
        // Each literal of a VALUES list is one cell of one row.
        LogicalPlan::Values(_) => Some(1),
        // Pushed-down filters run on every batch the scan reads.
        LogicalPlan::TableScan(_) => None,
        _ => node.inputs().iter().try_fold(1usize, |rows, input| {
            Some(rows.saturating_mul(input.max_rows()?))
        }),
    };
    rows.unwrap_or(batch).clamp(1, batch)
}

/// Refuses a literal of `expr` that, repeated for `rows` rows, would pass the value limit.
fn check_size(expr: &Expr, rows: usize, limits: &ValueLimits) -> Result<()> {
    expr.apply(|e| {
        if let Expr::Literal(v, _) = e {
            let size = v.size();
            let total = size as u128 * rows as u128;
            if total > limits.max_bytes as u128 {
                let repeated = if rows == 1 {
                    String::new()
                } else {
                    format!(
                        ", repeated on each of up to {rows} rows of a batch, would take {}",
                        human::bytes(total)
                    )
                };
                return Err(resources_datafusion_err!(
                    "a constant of {}{repeated}; one value may take at most {} ({}): use a \
                     smaller constant, or raise that setting",
                    human::bytes(size as u128),
                    human::bytes(limits.max_bytes as u128),
                    limits.setting
                ));
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .map(|_| ())
}

fn is_arithmetic(op: Operator) -> bool {
    matches!(
        op,
        Operator::Plus | Operator::Minus | Operator::Multiply | Operator::Divide | Operator::Modulo
    )
}

fn evaluate(expr: &Expr) -> Result<ScalarValue> {
    let schema = DFSchema::empty();
    let physical = create_physical_expr(expr, &schema, &ExecutionProps::new())?;
    let batch = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )?;
    match physical.evaluate(&batch)? {
        ColumnarValue::Scalar(v) => Ok(v),
        ColumnarValue::Array(a) => ScalarValue::try_from_array(&a, 0),
    }
}

/// `raise_error(message, typed_null)`: a value of the second argument's type that fails with
/// `message` whenever it is evaluated. Never registered: only this rule puts it in plans.
#[derive(Debug, PartialEq, Eq, Hash)]
struct RaiseError {
    signature: Signature,
}

impl RaiseError {
    fn new() -> Self {
        Self {
            // Volatile: no folding tries it at planning.
            signature: Signature::any(2, Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for RaiseError {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        "raise_error"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args.get(1).cloned().unwrap_or(DataType::Null))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let t = args
            .arg_fields
            .get(1)
            .map(|f| f.data_type().clone())
            .unwrap_or(DataType::Null);
        Ok(Arc::new(Field::new(self.name(), t, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match args.args.first() {
            Some(ColumnarValue::Scalar(ScalarValue::Utf8(Some(m)))) => exec_err!("{m}"),
            _ => exec_err!("this expression cannot be computed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ValueLimits;
    use datafusion::prelude::SessionContext;

    fn context() -> SessionContext {
        context_with(64 << 20)
    }

    fn context_with(max_bytes: usize) -> SessionContext {
        let limits = ValueLimits {
            max_bytes,
            setting: "test.limit",
        };
        SessionContext::new_with_state(super::checked(SessionContext::new().state(), limits))
    }

    #[tokio::test]
    async fn unfoldable_constant_arithmetic_is_an_error_not_a_panic() {
        let ctx = context();
        let err = ctx
            .sql("SELECT DATE '2026-01-01' + INTERVAL '10000000 years'")
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap_err();
        let ours = crate::error::Error::from(err);
        assert_eq!(ours.kind(), crate::error::ErrorKind::UserInput, "{ours}");
        // In a branch that never runs, it stays a valid query...
        let never =
            "SELECT CASE WHEN 1 = 2 THEN DATE '2026-01-01' + INTERVAL '10000000 years' END AS d";
        let ok = ctx.sql(never).await.unwrap().collect().await;
        assert!(ok.is_ok(), "{ok:?}");
        // ...and in one that runs, its error is the query's.
        let runs = "SELECT CASE WHEN v > 1 THEN DATE '2026-01-01' - INTERVAL '10000000 years' END \
                    FROM (VALUES (1), (2)) t(v)";
        let err = ctx.sql(runs).await.unwrap().collect().await.unwrap_err();
        let ours = crate::error::Error::from(err);
        assert_eq!(ours.kind(), crate::error::ErrorKind::UserInput, "{ours}");
    }

    #[tokio::test]
    async fn constants_too_large_for_a_batch_are_refused() {
        let ctx = context();
        // A 1 MiB constant would be 8 GiB once repeated for a batch.
        let big = format!(
            "SELECT '{}' FROM generate_series(1, 10)",
            "x".repeat(1 << 20)
        );
        let err = ctx.sql(&big).await.unwrap().collect().await.unwrap_err();
        let ours = crate::error::Error::from(err);
        assert_eq!(
            ours.kind(),
            crate::error::ErrorKind::ResourceExhausted,
            "{ours}"
        );
        assert!(
            ctx.sql("SELECT repeat('x', 1000)")
                .await
                .unwrap()
                .collect()
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_constant_is_charged_for_the_rows_it_is_repeated_on() {
        let ctx = context_with(1 << 20);
        let rows = |sql: String| {
            let ctx = ctx.clone();
            async move {
                let batches = ctx.sql(&sql).await?.collect().await?;
                Ok::<_, datafusion::error::DataFusionError>(
                    batches.iter().map(|b| b.num_rows()).sum::<usize>(),
                )
            }
        };
        let big = "x".repeat(200_000);
        // Once: a one-row SELECT, what unnest spreads over rows, a VALUES cell.
        assert_eq!(rows(format!("SELECT '{big}' AS v")).await.unwrap(), 1);
        assert_eq!(
            rows("SELECT unnest(range(0, 100000)) AS value".into())
                .await
                .unwrap(),
            100_000
        );
        assert_eq!(
            rows(format!("SELECT * FROM (VALUES ('{big}'), ('a')) t(v)"))
                .await
                .unwrap(),
            2
        );
        // A batch's worth: beside a scan, repeated by unnest or by a join.
        for sql in [
            format!("SELECT '{big}' FROM generate_series(1, 10)"),
            format!("SELECT unnest(range(0, 10)) AS n, '{big}' AS v"),
            format!("SELECT v FROM (SELECT '{big}' AS v) CROSS JOIN generate_series(1, 10)"),
        ] {
            let err = rows(sql).await.unwrap_err();
            let ours = crate::error::Error::from(err);
            assert_eq!(
                ours.kind(),
                crate::error::ErrorKind::ResourceExhausted,
                "{ours}"
            );
            assert!(
                ours.message()
                    .contains("one value may take at most 1 MiB (test.limit)"),
                "{ours}"
            );
        }
    }
}
