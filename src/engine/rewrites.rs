//! Valid SQL that DataFusion 53 refuses, rewritten before planning into a form that means the
//! same and that it plans.
//!
//! - `WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r ...)`: DataFusion does not
//!   apply a recursive CTE's column list to its recursive term ("No field named n"). The names
//!   move onto the anchor `SELECT` as aliases, which is what the column list means.
//! - `SELECT DISTINCT t.a, r.b FROM t JOIN r USING (k)`: DataFusion 53's optimizer breaks an
//!   invariant of its own (`replace_distinct_aggregate`) and fails. The `DISTINCT` moves onto a
//!   query over the same `SELECT` without it: `SELECT DISTINCT * FROM (SELECT t.a, r.b ...)`,
//!   the same rows (without an `ORDER BY`, which could name columns only the inner query has).
//! - `SELECT units, units FROM t`: PostgreSQL answers two columns of one name; DataFusion refuses
//!   "Projections require unique expression names". Only when planning fails so, the repeated
//!   names get a suffix (`units`, `units_2`), so queries DataFusion plans keep their names.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    Distinct, Expr, Ident, JoinConstraint, JoinOperator, Query, Select, SelectItem, SetExpr,
    Statement, TableFactor, VisitMut, VisitorMut,
};

/// DataFusion's message for a projection with two columns of one name.
pub const DUPLICATE_NAMES: &str = "Projections require unique expression names";

/// Moves the column lists of recursive CTEs onto their anchor `SELECT`s.
pub fn name_recursive_columns(statement: &mut DfStatement) {
    visit_queries(statement, |query| {
        let Some(with) = query.with.as_mut().filter(|w| w.recursive) else {
            return;
        };
        for cte in &mut with.cte_tables {
            let columns = &mut cte.alias.columns;
            let Some(anchor) = anchor_select(&mut cte.query.body) else {
                continue;
            };
            let plain = anchor.projection.iter().all(|item| {
                matches!(
                    item,
                    SelectItem::UnnamedExpr(_) | SelectItem::ExprWithAlias { .. }
                )
            });
            if columns.is_empty() || !plain || anchor.projection.len() != columns.len() {
                continue;
            }
            for (item, column) in anchor.projection.iter_mut().zip(columns.drain(..)) {
                set_alias(item, column.name);
            }
        }
    });
}

/// Moves `DISTINCT` out of a `SELECT` that joins `USING` columns, onto a query over it.
pub fn distinct_over_using_joins(statement: &mut DfStatement) {
    visit_queries(statement, |query| {
        if query.order_by.is_some() {
            return;
        }
        let SetExpr::Select(select) = query.body.as_mut() else {
            return;
        };
        let using = select.from.iter().any(|table| {
            table.joins.iter().any(|join| {
                matches!(
                    constraint(&join.join_operator),
                    Some(JoinConstraint::Using(_))
                )
            })
        });
        if !using || !matches!(select.distinct, Some(Distinct::Distinct)) {
            return;
        }
        let Some(mut outer) = distinct_rows_template() else {
            return;
        };
        let mut inner = select.as_ref().clone();
        inner.distinct = None;
        if let Some(TableFactor::Derived { subquery, .. }) =
            outer.from.first_mut().map(|t| &mut t.relation)
        {
            *subquery.body = SetExpr::Select(Box::new(inner));
            **select = outer;
        }
    });
}

/// `SELECT DISTINCT * FROM (SELECT 1) AS distinct_rows`, whose inner `SELECT` is replaced.
fn distinct_rows_template() -> Option<Select> {
    let dialect = datafusion::sql::sqlparser::dialect::GenericDialect {};
    let sql = "SELECT DISTINCT * FROM (SELECT 1) AS distinct_rows";
    let mut parsed = datafusion::sql::sqlparser::parser::Parser::parse_sql(&dialect, sql).ok()?;
    match parsed.pop()? {
        Statement::Query(query) => match *query.body {
            SetExpr::Select(select) => Some(*select),
            _ => None,
        },
        _ => None,
    }
}

/// The constraint of a join, for the kinds that have one.
fn constraint(op: &JoinOperator) -> Option<&JoinConstraint> {
    use JoinOperator as J;
    match op {
        J::Join(c)
        | J::Inner(c)
        | J::Left(c)
        | J::LeftOuter(c)
        | J::Right(c)
        | J::RightOuter(c)
        | J::FullOuter(c)
        | J::CrossJoin(c)
        | J::Semi(c)
        | J::LeftSemi(c)
        | J::RightSemi(c)
        | J::Anti(c)
        | J::LeftAnti(c)
        | J::RightAnti(c)
        | J::StraightJoin(c) => Some(c),
        _ => None,
    }
}

/// Gives the second and later columns of one name in a `SELECT` list a suffix: `units`,
/// `units_2`. Answers whether anything changed.
pub fn alias_duplicate_names(statement: &mut DfStatement) -> bool {
    let mut changed = false;
    visit_queries(statement, |query| {
        for select in selects(&mut query.body) {
            changed |= alias_duplicates_in(select);
        }
    });
    changed
}

fn alias_duplicates_in(select: &mut Select) -> bool {
    let names: Vec<Option<String>> = select.projection.iter().map(output_name).collect();
    let mut taken: HashSet<String> = names.iter().flatten().cloned().collect();
    let mut seen = HashSet::new();
    let mut changed = false;
    for (item, name) in select.projection.iter_mut().zip(names) {
        let Some(name) = name else { continue };
        if seen.insert(name.clone()) {
            continue;
        }
        let alias = (2..)
            .map(|n| format!("{name}_{n}"))
            .find(|candidate| !taken.contains(candidate))
            .unwrap_or_default();
        taken.insert(alias.clone());
        set_alias(item, Ident::with_quote('"', alias));
        changed = true;
    }
    changed
}

/// Names the column of a `SELECT` item `alias` (wildcards stay as they are).
fn set_alias(item: &mut SelectItem, alias: Ident) {
    match item {
        SelectItem::ExprWithAlias { alias: old, .. } => *old = alias,
        SelectItem::UnnamedExpr(expr) => {
            let expr = expr.clone();
            *item = SelectItem::ExprWithAlias { expr, alias };
        }
        _ => {}
    }
}

/// The name a `SELECT` item's column gets, as DataFusion names it for the cases that clash:
/// an alias, a column's own name, or the expression's text; `None` for wildcards.
fn output_name(item: &SelectItem) -> Option<String> {
    let normal = |ident: &Ident| match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    };
    match item {
        SelectItem::ExprWithAlias { alias, .. } => Some(normal(alias)),
        SelectItem::UnnamedExpr(Expr::Identifier(ident)) => Some(normal(ident)),
        SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => parts.last().map(normal),
        SelectItem::UnnamedExpr(expr) => Some(expr.to_string()),
        _ => None,
    }
}

/// The `SELECT`s a query body combines (through `UNION` and the like), not those of nested
/// queries, which are visited as queries of their own.
fn selects(body: &mut SetExpr) -> Vec<&mut Select> {
    let mut out = Vec::new();
    let mut stack = vec![body];
    while let Some(body) = stack.pop() {
        match body {
            SetExpr::Select(select) => out.push(select.as_mut()),
            SetExpr::SetOperation { left, right, .. } => {
                stack.push(right.as_mut());
                stack.push(left.as_mut());
            }
            _ => {}
        }
    }
    out
}

/// The first `SELECT` of a (possibly parenthesised) set operation: a recursive CTE's anchor.
fn anchor_select(body: &mut SetExpr) -> Option<&mut Select> {
    match body {
        SetExpr::Select(select) => Some(select.as_mut()),
        SetExpr::SetOperation { left, .. } => anchor_select(left),
        SetExpr::Query(query) => anchor_select(&mut query.body),
        _ => None,
    }
}

/// Calls `f` on every query of `statement`, nested ones included.
fn visit_queries(statement: &mut DfStatement, f: impl FnMut(&mut Query)) {
    struct Queries<F>(F);
    impl<F: FnMut(&mut Query)> VisitorMut for Queries<F> {
        type Break = ();
        fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            (self.0)(query);
            ControlFlow::Continue(())
        }
    }
    let statement = match statement {
        DfStatement::Statement(s) => s.as_mut(),
        DfStatement::Explain(e) => match e.statement.as_mut() {
            DfStatement::Statement(s) => s.as_mut(),
            _ => return,
        },
        _ => return,
    };
    let _ = statement.visit(&mut Queries(f));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::guard::{SqlLimits, parse};

    fn rewritten(sql: &str, f: impl Fn(&mut DfStatement)) -> String {
        let mut statement = parse(sql, SqlLimits::default()).unwrap();
        f(&mut statement);
        statement.to_string()
    }

    #[test]
    fn recursive_column_lists_move_onto_the_anchor() {
        let sql = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) \
                   SELECT sum(n) FROM r";
        let text = rewritten(sql, name_recursive_columns);
        assert!(
            text.contains("WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL"),
            "{text}"
        );
        // A column list that does not match the anchor is left for the planner to judge.
        let odd = "WITH RECURSIVE r(n, m) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT 1";
        let text = rewritten(odd, name_recursive_columns);
        assert!(
            text.contains("r (n, m)") || text.contains("r(n, m)"),
            "{text}"
        );
    }

    #[test]
    fn distinct_over_a_using_join_moves_outside() {
        let sql = "SELECT DISTINCT t.region, r.roas FROM t JOIN r USING (region) LIMIT 3";
        let text = rewritten(sql, distinct_over_using_joins);
        assert!(
            text.starts_with("SELECT DISTINCT * FROM (SELECT t.region, r.roas FROM t JOIN r USING"),
            "{text}"
        );
        assert!(text.ends_with(") AS distinct_rows LIMIT 3"), "{text}");
        // With ON, or with an ORDER BY, nothing changes.
        for sql in [
            "SELECT DISTINCT t.region FROM t JOIN r ON t.region = r.region",
            "SELECT DISTINCT t.region FROM t JOIN r USING (region) ORDER BY t.region",
        ] {
            let before = parse(sql, SqlLimits::default()).unwrap().to_string();
            assert_eq!(rewritten(sql, distinct_over_using_joins), before);
        }
    }

    #[test]
    fn repeated_names_get_suffixes() {
        let text = rewritten("SELECT units, t.units, units_2, Units AS x FROM t", |s| {
            assert!(alias_duplicate_names(s));
        });
        assert!(
            text.contains("SELECT units, t.units AS \"units_3\", units_2, Units AS x"),
            "{text}"
        );
        let mut plain = parse("SELECT a, b FROM t", SqlLimits::default()).unwrap();
        assert!(!alias_duplicate_names(&mut plain));
    }
}
