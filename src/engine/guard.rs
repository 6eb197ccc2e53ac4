//! Checks on client SQL before planning: size, nesting, and the read-only rule.
//!
//! DataFusion's planner and optimiser recurse over expressions. A short hostile query (thousands
//! of chained `+`, `OR` terms or `UNION ALL` branches) would otherwise exhaust a thread's stack
//! and abort the whole process, so nesting is bounded here, on the AST, without deep recursion.

use std::ops::ControlFlow;

use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{
    Expr, Query, SetExpr, Statement, Value, Visit, Visitor, visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;

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

/// Parses one read-only statement, enforcing `limits`.
pub fn parse(sql: &str, limits: SqlLimits) -> Result<DfStatement> {
    if sql.len() > limits.max_sql_bytes {
        return Err(Error::resource(format!(
            "SQL text is {} bytes; the limit is {} bytes (server.max_sql_bytes)",
            sql.len(),
            limits.max_sql_bytes
        )));
    }
    let dialect = GenericDialect {};
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
    number_question_marks(&mut statement)?;
    Ok(statement)
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
}
