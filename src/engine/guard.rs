//! Checks on client SQL before planning: size, nesting, shapes that make planning explode, and
//! the read-only rule.
//!
//! DataFusion's planner and optimiser recurse over expressions. A short hostile query (thousands
//! of chained `+`, `OR` terms or `UNION ALL` branches) would otherwise exhaust a thread's stack
//! and abort the whole process, so nesting is bounded here, on the AST, without deep recursion.
//! Two shapes cost DataFusion far more than their text: nested `CASE` (each level doubles the
//! physical expression, so 25 levels in 1.3 KB of SQL planned for minutes) and long chains of
//! common table expressions (each reference plans a copy of what it names, so memory grows with
//! the square of the chain). `CASE ... ELSE CASE ...` chains are flattened into one `CASE`
//! (same meaning), and what remains is bounded.

use std::ops::ControlFlow;

use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{
    ArrayElemTypeDef, DataType, ExactNumberInfo, Expr, Query, SetExpr, Statement, Value, Visit,
    Visitor, visit_expressions_mut,
};

use crate::error::{Error, Result};
use crate::spec::transform::error_position;

/// Limits applied to SQL text before it is planned.
#[derive(Debug, Clone, Copy)]
pub struct SqlLimits {
    pub max_sql_bytes: usize,
    pub max_expr_depth: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        Self {
            max_sql_bytes: 1 << 20,
            max_expr_depth: 500,
        }
    }
}

/// Parser recursion limit for parenthesised nesting (DataFusion's default).
const PARSER_RECURSION_LIMIT: usize = 50;

/// Deepest nesting of `CASE` expressions once `ELSE CASE` chains are flattened.
pub const MAX_CASE_DEPTH: usize = 12;

/// Most common table expressions one statement may declare.
pub const MAX_CTES: usize = 256;

/// Parses one read-only statement, enforcing `limits`.
pub fn parse(sql: &str, limits: SqlLimits) -> Result<DfStatement> {
    if sql.len() > limits.max_sql_bytes {
        return Err(Error::resource(format!(
            "SQL text is {} bytes; the limit is {} bytes (server.max_sql_bytes)",
            sql.len(),
            limits.max_sql_bytes
        )));
    }
    // The generic dialect with time travel (`VERSION AS OF`, `TIMESTAMP AS OF`).
    let dialect = super::dialect::MeshDialect::new();
    let mut statements = DFParserBuilder::new(sql)
        .with_dialect(&dialect)
        .with_recursion_limit(PARSER_RECURSION_LIMIT)
        .build()
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| syntax_error(sql, &e.to_string()))?;
    if statements.len() != 1 {
        return Err(Error::user(format!(
            "expected exactly one SQL statement, found {}",
            statements.len()
        )));
    }
    let statement = statements
        .pop_front()
        .ok_or_else(|| Error::user("empty SQL statement"))?;
    check_read_only(&statement)?;
    check_nesting(&statement, limits.max_expr_depth)?;
    let mut statement = statement;
    flatten_else_case(&mut statement);
    super::rewrites::name_recursive_columns(&mut statement);
    super::rewrites::distinct_over_using_joins(&mut statement);
    clamp_limits(&mut statement);
    check_shapes(&statement)?;
    number_question_marks(&mut statement)?;
    Ok(statement)
}

fn inner_mut(statement: &mut DfStatement) -> Option<&mut Statement> {
    match statement {
        DfStatement::Statement(s) => Some(s.as_mut()),
        DfStatement::Explain(e) => inner_mut(&mut e.statement),
        _ => None,
    }
}

fn inner(statement: &DfStatement) -> Option<&Statement> {
    match statement {
        DfStatement::Statement(s) => Some(s.as_ref()),
        DfStatement::Explain(e) => inner(&e.statement),
        _ => None,
    }
}

/// `CASE WHEN a THEN x ELSE CASE WHEN b THEN y ELSE z END END` becomes
/// `CASE WHEN a THEN x WHEN b THEN y ELSE z END`: the same value, one level instead of two.
/// Only searched `CASE`s (without an operand) are merged.
fn flatten_else_case(statement: &mut DfStatement) {
    let Some(inner) = inner_mut(statement) else {
        return;
    };
    let _ = visit_expressions_mut(inner, |expr| {
        if let Expr::Case {
            operand: None,
            conditions,
            else_result,
            ..
        } = expr
        {
            while let Some(nested) = else_result.take() {
                match *nested {
                    Expr::Case {
                        operand: None,
                        conditions: more,
                        else_result: rest,
                        ..
                    } => {
                        conditions.extend(more);
                        *else_result = rest;
                    }
                    other => {
                        *else_result = Some(Box::new(other));
                        break;
                    }
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

/// The largest `LIMIT` passed on to DataFusion: more rows than any result has, yet small enough
/// that DataFusion's top-k operators can size their tables from it (`LIMIT
/// 9223372036854775807` overflows their arithmetic).
pub const MAX_LIMIT: u64 = 1 << 40;

/// `LIMIT n` with n past [`MAX_LIMIT`] becomes `LIMIT MAX_LIMIT`: the same rows.
fn clamp_limits(statement: &mut DfStatement) {
    use datafusion::sql::sqlparser::ast::{LimitClause, VisitMut, VisitorMut};
    struct Clamp;
    impl VisitorMut for Clamp {
        type Break = ();
        fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            if let Some(LimitClause::LimitOffset {
                limit: Some(Expr::Value(v)),
                ..
            }) = &mut query.limit_clause
                && let Value::Number(n, _) = &mut v.value
                && n.parse::<u64>()
                    .map_or(n.chars().all(|c| c.is_ascii_digit()), |x| x > MAX_LIMIT)
            {
                *n = MAX_LIMIT.to_string();
            }
            ControlFlow::Continue(())
        }
    }
    if let Some(inner) = inner_mut(statement) {
        let _ = inner.visit(&mut Clamp);
    }
}

/// Refuses the shapes that make planning explode, and typed literals DataFusion cannot plan.
fn check_shapes(statement: &DfStatement) -> Result<()> {
    let Some(inner) = inner(statement) else {
        return Ok(());
    };
    let mut shapes = Shapes::default();
    match inner.visit(&mut shapes) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

#[derive(Default)]
struct Shapes {
    case_depth: usize,
    ctes: usize,
}

impl Visitor for Shapes {
    type Break = Error;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Error> {
        if let Some(with) = &query.with {
            self.ctes += with.cte_tables.len();
            if self.ctes > MAX_CTES {
                return ControlFlow::Break(Error::resource(format!(
                    "query too complex: more than {MAX_CTES} common table expressions (WITH ...)"
                )));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Error> {
        match expr {
            Expr::Case { .. } => {
                self.case_depth += 1;
                if self.case_depth > MAX_CASE_DEPTH {
                    return ControlFlow::Break(Error::resource(format!(
                        "query too complex: CASE expressions nested deeper than {MAX_CASE_DEPTH} levels \
                         (chains of ELSE CASE count as one level)"
                    )));
                }
            }
            // `TIMESTAMP 2`: DataFusion expects a quoted string after the type and panics on
            // anything else.
            Expr::TypedString(t) if t.value.value.clone().into_string().is_none() => {
                return ControlFlow::Break(Error::user(format!(
                    "`{} {}`: a typed literal needs a quoted string, e.g. {} '...'",
                    t.data_type, t.value, t.data_type
                )));
            }
            // `x IN (SELECT FROM t)`: a subquery of no columns, which DataFusion indexes anyway.
            Expr::InSubquery { subquery, .. } | Expr::Subquery(subquery)
                if returns_no_columns(subquery) =>
            {
                return ControlFlow::Break(Error::user(
                    "a subquery used as a value or after IN must return one column; \
                     `SELECT FROM ...` returns none",
                ));
            }
            // DataFusion's kernels do not all handle decimals of negative scale.
            Expr::Cast { data_type, .. } if negative_scale(data_type) => {
                return ControlFlow::Break(Error::user(format!(
                    "`{data_type}`: decimals of negative scale are not supported; use a scale of 0 or more"
                )));
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Error> {
        if matches!(expr, Expr::Case { .. }) {
            self.case_depth -= 1;
        }
        ControlFlow::Continue(())
    }
}

/// Whether `query` is a `SELECT` with an empty list of columns (PostgreSQL's `SELECT FROM t`).
fn returns_no_columns(query: &Query) -> bool {
    let mut body = query.body.as_ref();
    while let SetExpr::Query(inner) = body {
        body = inner.body.as_ref();
    }
    matches!(body, SetExpr::Select(select) if select.projection.is_empty())
}

fn negative_scale(t: &DataType) -> bool {
    match t {
        DataType::Decimal(ExactNumberInfo::PrecisionAndScale(_, s))
        | DataType::Numeric(ExactNumberInfo::PrecisionAndScale(_, s))
        | DataType::Dec(ExactNumberInfo::PrecisionAndScale(_, s))
        | DataType::BigNumeric(ExactNumberInfo::PrecisionAndScale(_, s))
        | DataType::BigDecimal(ExactNumberInfo::PrecisionAndScale(_, s)) => *s < 0,
        DataType::Array(
            ArrayElemTypeDef::AngleBracket(t) | ArrayElemTypeDef::SquareBracket(t, _),
        ) => negative_scale(t),
        _ => false,
    }
}

/// Turns JDBC/ODBC-style `?` placeholders into `$1, $2, ...` in order of appearance, the form
/// DataFusion binds.
fn number_question_marks(statement: &mut DfStatement) -> Result<()> {
    let inner = match statement {
        DfStatement::Statement(s) => s.as_mut(),
        DfStatement::Explain(e) => return number_question_marks(&mut e.statement),
        _ => return Ok(()),
    };
    let (mut questions, mut numbered) = (0usize, false);
    let _ = visit_expressions_mut(inner, |expr| {
        if let Expr::Value(v) = expr
            && let Value::Placeholder(p) = &mut v.value
        {
            if p == "?" {
                questions += 1;
                *p = format!("${questions}");
            } else {
                numbered = true;
            }
        }
        ControlFlow::<()>::Continue(())
    });
    if questions > 0 && numbered {
        return Err(Error::user(
            "use either `?` or `$1, $2, ...` placeholders in one statement, not both",
        ));
    }
    Ok(())
}

fn syntax_error(sql: &str, msg: &str) -> Error {
    let msg = msg.strip_prefix("SQL error: ").unwrap_or(msg);
    let msg = msg
        .strip_prefix("ParserError(\"")
        .and_then(|m| m.strip_suffix("\")"))
        .unwrap_or(msg);
    let text = match msg.find(" at Line: ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    let mut e = Error::user(format!("SQL syntax error: {text}"));
    if let Some((line, column)) = error_position(sql, msg) {
        e = e.with_context("line", line).with_context("column", column);
    }
    e
}

/// Clients read; they never change data or settings (ARCHITECTURE.md, decision 5).
fn check_read_only(statement: &DfStatement) -> Result<()> {
    let refuse = |what: &str| {
        Err(Error::permission(format!(
            "{what} is not allowed: meshql clients are read-only (data changes through pipelines and ingest)"
        )))
    };
    match statement {
        DfStatement::Statement(s) => match s.as_ref() {
            Statement::Query(q) if selects_into(q) => refuse("SELECT INTO (it creates a table)"),
            Statement::Query(_) => Ok(()),
            Statement::Explain { statement, .. } => match statement.as_ref() {
                Statement::Query(_) => Ok(()),
                _ => refuse("EXPLAIN of a statement other than SELECT"),
            },
            Statement::Set(_) => refuse("SET"),
            Statement::Copy { .. } => refuse("COPY"),
            Statement::Insert(_)
            | Statement::Update { .. }
            | Statement::Delete(_)
            | Statement::Merge { .. } => refuse("DML (INSERT, UPDATE, DELETE, MERGE)"),
            Statement::ShowTables { .. } | Statement::ShowColumns { .. } => Ok(()),
            _ => refuse("this statement"),
        },
        DfStatement::Explain(e) => check_read_only(&e.statement),
        DfStatement::CreateExternalTable(_) => refuse("CREATE EXTERNAL TABLE"),
        DfStatement::CopyTo(_) => refuse("COPY"),
        DfStatement::Reset(_) => refuse("RESET"),
    }
}

/// Whether a query's SELECT writes into a table (`SELECT ... INTO t`).
fn selects_into(q: &Query) -> bool {
    fn body(e: &SetExpr) -> bool {
        match e {
            SetExpr::Select(s) => s.into.is_some(),
            SetExpr::Query(q) => selects_into(q),
            SetExpr::SetOperation { left, right, .. } => body(left) || body(right),
            _ => false,
        }
    }
    body(&q.body)
}

/// Rejects expressions or set operations nested deeper than `max`.
fn check_nesting(statement: &DfStatement, max: usize) -> Result<()> {
    let inner = match statement {
        DfStatement::Statement(s) => s.as_ref(),
        DfStatement::Explain(e) => return check_nesting(&e.statement, max),
        _ => return Ok(()),
    };
    let mut guard = DepthGuard {
        depth: 0,
        max,
        exceeded: None,
    };
    let _ = inner.visit(&mut guard);
    match guard.exceeded {
        None => Ok(()),
        Some(what) => Err(Error::resource(format!(
            "query too complex: {what} nested deeper than {max} levels (server.max_expr_depth)"
        ))),
    }
}

struct DepthGuard {
    depth: usize,
    max: usize,
    exceeded: Option<&'static str>,
}

impl DepthGuard {
    fn enter(&mut self, what: &'static str) -> ControlFlow<()> {
        self.depth += 1;
        if self.depth > self.max {
            self.exceeded = Some(what);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

impl Visitor for DepthGuard {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        // Set operations nest on their left side; walk that spine without recursion.
        let mut spine = 0usize;
        let mut body: &SetExpr = &query.body;
        while let SetExpr::SetOperation { left, .. } = body {
            spine += 1;
            if self.depth + spine > self.max {
                self.exceeded = Some("set operations (UNION/INTERSECT/EXCEPT)");
                return ControlFlow::Break(());
            }
            body = left;
        }
        self.enter("subqueries")
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.enter("expressions")
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn chain(op: &str, n: usize) -> String {
        let terms: Vec<String> = (0..n).map(|i| format!("c{i} = 1")).collect();
        format!("SELECT 1 WHERE {}", terms.join(&format!(" {op} ")))
    }

    #[test]
    fn deep_chains_are_refused_before_planning() {
        let limits = SqlLimits::default();
        assert!(parse(&chain("OR", 100), limits).is_ok());
        let err = parse(&chain("OR", 2_000), limits).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ResourceExhausted);
        assert!(
            err.message().contains("expressions nested deeper than 500"),
            "{err}"
        );
        let unions = vec!["SELECT 1"; 2_000].join(" UNION ALL ");
        let err = parse(&unions, limits).unwrap_err();
        assert!(err.message().contains("set operations"), "{err}");
    }

    #[test]
    fn writes_and_settings_are_refused() {
        for sql in [
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
            "COPY (SELECT 1) TO '/tmp/x.csv'",
            "INSERT INTO sales.raw.t VALUES (1)",
            "SET datafusion.execution.target_partitions = 1",
            "DROP TABLE sales.gold.daily_revenue",
            "CREATE TABLE x AS SELECT 1",
        ] {
            let err = parse(sql, SqlLimits::default()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{sql}: {err}");
        }
    }

    #[test]
    fn question_marks_become_numbered_placeholders() {
        let s = parse(
            "SELECT ? + 1 WHERE a = ? AND b IN (?)",
            SqlLimits::default(),
        )
        .unwrap();
        assert_eq!(s.to_string(), "SELECT $1 + 1 WHERE a = $2 AND b IN ($3)");
        let err = parse("SELECT ?, $2", SqlLimits::default()).unwrap_err();
        assert!(err.message().contains("not both"), "{err}");
    }

    #[test]
    fn syntax_errors_name_the_position() {
        let err = parse("SELECT *\nFROM t WHERE", SqlLimits::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UserInput);
        assert_eq!(
            err.to_string(),
            "SQL syntax error: Expected: an expression, found: EOF (line=2, column=13)"
        );
        let err = parse("SELECT 1 FROM t WHERE a = = 2", SqlLimits::default()).unwrap_err();
        assert!(err.to_string().ends_with("(line=1, column=27)"), "{err}");
    }

    /// Parsing recurses as deep as the SQL nests: tests run it with a planner thread's stack.
    fn on_big_stack(f: impl FnOnce() + Send + 'static) {
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn else_case_chains_are_flattened_and_deep_case_is_refused() {
        on_big_stack(else_case_chains);
    }

    fn else_case_chains() {
        let mut sql = "x".to_string();
        for i in 0..40 {
            sql = format!("CASE WHEN a = {i} THEN {i} ELSE {sql} END");
        }
        let s = parse(&format!("SELECT {sql} FROM t"), SqlLimits::default()).unwrap();
        let text = s.to_string();
        assert_eq!(text.matches("CASE").count(), 1, "{text}");
        assert!(
            text.contains("WHEN a = 39 THEN 39 WHEN a = 38 THEN 38"),
            "{text}"
        );

        let mut nested = "a".to_string();
        for i in 0..20 {
            nested = format!("CASE WHEN ({nested}) > {i} THEN a ELSE 0 END");
        }
        let err = parse(&format!("SELECT {nested} FROM t"), SqlLimits::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ResourceExhausted, "{err}");
        assert!(err.message().contains("nested deeper than 12"), "{err}");
    }

    #[test]
    fn subqueries_of_no_columns_are_the_users_mistake() {
        for sql in [
            "SELECT * FROM t WHERE a NOT IN (SELECT FROM u WHERE b > 1)",
            "SELECT (SELECT FROM u) AS x",
        ] {
            let err = parse(sql, SqlLimits::default()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::UserInput, "{sql}: {err}");
            assert!(err.message().contains("must return one column"), "{err}");
        }
        assert!(
            parse(
                "SELECT * FROM t WHERE a IN (SELECT b FROM u)",
                SqlLimits::default()
            )
            .is_ok()
        );
    }

    #[test]
    fn long_cte_chains_and_untyped_literals_are_refused() {
        let ctes: Vec<String> = (0..300)
            .map(|i| format!("c{i} AS (SELECT {i} AS x)"))
            .collect();
        let sql = format!("WITH {} SELECT x FROM c0", ctes.join(", "));
        let err = parse(&sql, SqlLimits::default()).unwrap_err();
        assert!(err.message().contains("common table expressions"), "{err}");
        for sql in ["SELECT TIMESTAMP 2", "SELECT * FROM range(STRUCT 0, 20, 3)"] {
            let err = parse(sql, SqlLimits::default()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::UserInput, "{sql}: {err}");
            assert!(err.message().contains("quoted string"), "{sql}: {err}");
        }
        assert!(
            parse(
                "SELECT TIMESTAMP '2026-01-01 00:00:00'",
                SqlLimits::default()
            )
            .is_ok()
        );
    }
}
