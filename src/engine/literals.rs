//! What a number written in SQL means.
//!
//! `revenue = 552376.27` must find the row whose DECIMAL revenue is 552376.27, so number
//! literals with a fraction are exact decimals (DataFusion's `parse_float_as_decimal`, set with
//! the session). Compared with an approximate (floating-point) column, though, DataFusion would
//! turn both sides into a wide decimal, and `roas > 17.3029` would hold for the double nearest
//! 17.3029 — just above it. As in PostgreSQL and DuckDB, such a literal is compared as a double
//! instead: an analyzer rule, run before type coercion, casts decimal literals compared with
//! floating-point expressions (`=`, `<>`, `<`, `<=`, `>`, `>=`, `BETWEEN`, `IN`).

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::error::Result;
use datafusion::execution::SessionState;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator};
use datafusion::optimizer::analyzer::AnalyzerRule;

/// `state` with the rule ahead of its analyzer rules.
pub fn approximate_comparisons(state: SessionState) -> SessionState {
    let mut rules: Vec<Arc<dyn AnalyzerRule + Send + Sync>> = vec![Arc::new(FloatComparisons)];
    rules.extend(state.analyzer().rules.iter().cloned());
    SessionStateBuilder::new_from_existing(state)
        .with_analyzer_rules(rules)
        .build()
}

#[derive(Debug)]
struct FloatComparisons;

impl AnalyzerRule for FloatComparisons {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            if node.inputs().is_empty() {
                return Ok(Transformed::no(node));
            }
            let schema = merge_schema(&node.inputs());
            node.map_expressions(|e| e.transform_up(|e| Ok(rewrite(e, &schema))))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "meshql_float_comparisons"
    }
}

fn rewrite(e: Expr, schema: &DFSchema) -> Transformed<Expr> {
    let approximate = |x: &Expr| {
        x.get_type(schema)
            .is_ok_and(|t| matches!(t, DataType::Float16 | DataType::Float32 | DataType::Float64))
    };
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) if is_comparison(op) => {
            if approximate(&left) && is_decimal_literal(&right) {
                Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                    left,
                    op,
                    Box::new(as_double(*right)),
                )))
            } else if approximate(&right) && is_decimal_literal(&left) {
                Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(as_double(*left)),
                    op,
                    right,
                )))
            } else {
                Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right }))
            }
        }
        Expr::Between(b)
            if approximate(&b.expr)
                && (is_decimal_literal(&b.low) || is_decimal_literal(&b.high)) =>
        {
            Transformed::yes(Expr::Between(Between {
                expr: b.expr,
                negated: b.negated,
                low: Box::new(as_double(*b.low)),
                high: Box::new(as_double(*b.high)),
            }))
        }
        Expr::InList(l) if approximate(&l.expr) && l.list.iter().any(is_decimal_literal) => {
            Transformed::yes(Expr::InList(InList {
                expr: l.expr,
                list: l.list.into_iter().map(as_double).collect(),
                negated: l.negated,
            }))
        }
        other => Transformed::no(other),
    }
}

fn is_comparison(op: Operator) -> bool {
    matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
    )
}

fn is_decimal_literal(e: &Expr) -> bool {
    matches!(
        e,
        Expr::Literal(ScalarValue::Decimal128(..) | ScalarValue::Decimal256(..), _)
    )
}

/// A decimal literal as the double nearest to it; anything else unchanged.
fn as_double(e: Expr) -> Expr {
    match e {
        Expr::Literal(v, meta) if is_decimal_literal(&Expr::Literal(v.clone(), None)) => {
            match v.cast_to(&DataType::Float64) {
                Ok(d) => Expr::Literal(d, meta),
                Err(_) => Expr::Literal(v, meta),
            }
        }
        other => other,
    }
}
