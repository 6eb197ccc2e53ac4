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
//!   (typed, or folded from `repeat('x', 1000000)`) is 8 GiB per batch of 8,192 rows, allocated
//!   before any pool can refuse it. Constants larger than the per-call value limit divided by
//!   the batch size are refused.

use std::any::Any;
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, ScalarValue, exec_err, resources_datafusion_err};
use datafusion::error::Result;
use datafusion::execution::SessionState;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::execution_props::ExecutionProps;

use super::functions::human;
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
        let largest = self.limits.max_bytes / batch;
        plan.transform_up_with_subqueries(|node| {
            for expr in node.expressions() {
                check_size(&expr, largest, batch, &self.limits)?;
            }
            node.map_expressions(|e| self.fix(e, false))
        })
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
fn check_size(expr: &Expr, largest: usize, batch: usize, limits: &ValueLimits) -> Result<()> {
    expr.apply(|e| {
        if let Expr::Literal(v, _) = e {
            let size = v.size();
            if size > largest {
                return Err(resources_datafusion_err!(
                    "a constant of {} would take {} as a column of a batch of {batch} rows; \
                     constants are limited to {} ({})",
                    human(size as u128),
                    human(size as u128 * batch as u128),
                    human(largest as u128),
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
        let limits = ValueLimits {
            max_bytes: 64 << 20,
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
}
