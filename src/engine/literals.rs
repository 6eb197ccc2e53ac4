//! What a number written in SQL means.
//!
//! `revenue = 552376.27` must find the row whose DECIMAL revenue is 552376.27, so number
//! literals with a fraction are exact decimals (DataFusion's `parse_float_as_decimal`, set with
//! the session). Compared with an approximate (floating-point) column, though, DataFusion would
//! turn both sides into a wide decimal, and `roas > 17.3029` would hold for the double nearest
//! 17.3029 — just above it. As in PostgreSQL and DuckDB, such a literal is compared as a double
//! instead: an analyzer rule, run before type coercion, casts decimal literals compared with
//! floating-point expressions (`=`, `<>`, `<`, `<=`, `>`, `>=`, `BETWEEN`, `IN`).
//!
//! Exponent literals such as `1e5` parse as decimals of negative scale, which several of
//! DataFusion's casts and simplifications mishandle (overflowing or dividing by zero); the same
//! rule writes them out as whole decimals of scale 0 (`1e5` is 100000), as PostgreSQL does.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, i256};
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
                return node.map_expressions(|e| e.transform_up(|e| Ok(whole(e))));
            }
            let schema = merge_schema(&node.inputs());
            node.map_expressions(|e| {
                e.transform_up(|e| {
                    let e = whole(e);
                    Ok(if e.transformed {
                        e
                    } else {
                        rewrite(e.data, &schema)
                    })
                })
            })
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

/// A decimal literal of negative scale as the same number with scale 0: a Decimal128 up to 38
/// digits, a Decimal256 up to 76, the nearest double past that.
fn whole(e: Expr) -> Transformed<Expr> {
    let Expr::Literal(value, meta) = e else {
        return Transformed::no(e);
    };
    let whole = match &value {
        ScalarValue::Decimal128(v, p, s) if *s < 0 => {
            let shift = s.unsigned_abs() as u32;
            let digits = *p as u32 + shift;
            match v {
                None => ScalarValue::Decimal128(None, digits.min(38) as u8, 0),
                Some(v) => match 10_i128.checked_pow(shift).and_then(|m| v.checked_mul(m)) {
                    Some(w) if digits <= 38 => ScalarValue::Decimal128(Some(w), digits as u8, 0),
                    _ => wide(i256::from_i128(*v), digits, shift),
                },
            }
        }
        ScalarValue::Decimal256(v, p, s) if *s < 0 => {
            let shift = s.unsigned_abs() as u32;
            let digits = *p as u32 + shift;
            match v {
                None => ScalarValue::Decimal256(None, digits.min(76) as u8, 0),
                Some(v) => wide(*v, digits, shift),
            }
        }
        _ => return Transformed::no(Expr::Literal(value, meta)),
    };
    Transformed::yes(Expr::Literal(whole, meta))
}

fn wide(v: i256, digits: u32, shift: u32) -> ScalarValue {
    match i256::from_i128(10)
        .checked_pow(shift)
        .and_then(|m| v.checked_mul(m))
    {
        Some(w) if digits <= 76 => ScalarValue::Decimal256(Some(w), digits as u8, 0),
        _ => ScalarValue::Float64(
            v.to_string()
                .parse::<f64>()
                .ok()
                .map(|x| x * 10f64.powi(shift as i32)),
        ),
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
