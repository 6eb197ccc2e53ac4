//! Transforms: one SQL `SELECT` file producing one dataset, with options in a leading comment block.
//!
//! ```sql
//! -- Revenue per day and region, completed orders only.
//! -- @materialized: table
//! SELECT ...
//! ```
//!
//! Plain comment lines at the top form the dataset's description; `-- @key: value` lines are
//! options (see [`TransformOptions`]). The first line that is neither blank nor a comment ends
//! the block.
//!
//! Table names in the SQL resolve like this, for a transform in `domain.layer`:
//! `d.l.t` is the dataset `t` of layer `l` of domain `d`; `l.t` is `domain.l.t`; `t` is
//! `domain.layer.t`. Names of CTEs and aliases are not tables. Unquoted names are lower-cased.

use std::fmt;
use std::ops::ControlFlow;
use std::path::Path;

use datafusion::common::TableReference;
use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use datafusion::sql::planner::object_name_to_table_reference;
use datafusion::sql::sqlparser::ast::{Spanned, Statement, visit_relations};
use datafusion::sql::sqlparser::dialect::GenericDialect;

use super::diagnostic::Diagnostic;

/// The fully qualified name of a dataset: `domain.layer.dataset`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DatasetName {
    pub domain: String,
    pub layer: String,
    pub dataset: String,
}

impl DatasetName {
    pub fn new(
        domain: impl Into<String>,
        layer: impl Into<String>,
        dataset: impl Into<String>,
    ) -> Self {
        Self {
            domain: domain.into(),
            layer: layer.into(),
            dataset: dataset.into(),
        }
    }

    /// Parses `domain.layer.dataset`.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('.');
        let (d, l, t) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || d.is_empty() || l.is_empty() || t.is_empty() {
            return None;
        }
        Some(Self::new(d, l, t))
    }

    /// Resolves a table reference found in SQL written inside `domain.layer`.
    pub fn resolve(reference: &TableReference, domain: &str, layer: &str) -> Self {
        match reference {
            TableReference::Bare { table } => Self::new(domain, layer, table.as_ref()),
            TableReference::Partial { schema, table } => {
                Self::new(domain, schema.as_ref(), table.as_ref())
            }
            TableReference::Full {
                catalog,
                schema,
                table,
            } => Self::new(catalog.as_ref(), schema.as_ref(), table.as_ref()),
        }
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.domain, self.layer, self.dataset)
    }
}

/// How a transform's result is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Materialization {
    /// Full refresh: the table is replaced by the query's result in one atomic commit.
    #[default]
    Table,
    /// Only new rows: appended past the high-water mark of `@watermark`, or merged on
    /// `@unique_key` (through Delta MERGE). The first run creates the table.
    Incremental,
    /// Not stored: the SQL is planned into every query that reads the dataset.
    View,
}

impl Materialization {
    pub fn name(self) -> &'static str {
        match self {
            Materialization::Table => "table",
            Materialization::Incremental => "incremental",
            Materialization::View => "view",
        }
    }
}

/// Options from the `-- @key: value` lines of a transform's header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransformOptions {
    /// `@materialized`: `table` (default), `incremental` or `view`.
    pub materialized: Materialization,
    /// `@unique_key: a, b`: the merge key of an incremental model.
    pub unique_key: Vec<String>,
    /// `@watermark: column`: an incremental model appends rows whose `column` is greater than the
    /// table's maximum.
    pub watermark: Option<String>,
    /// `@schedule: 0 6 * * *`: `meshql serve` runs the node on this cron schedule.
    pub schedule: Option<String>,
    /// `@format: delta | iceberg`: the table format, over the domain's and the mesh's.
    pub format: Option<super::TableFormatName>,
}

/// The option keys a header may hold, with the values each accepts (empty: a column list).
pub const OPTION_KEYS: &[(&str, &[&str])] = &[
    ("materialized", &["table", "incremental", "view"]),
    ("unique_key", &[]),
    ("watermark", &[]),
    ("schedule", &[]),
    ("format", &["delta", "iceberg"]),
];

/// A table the transform reads, with where the name stands in the file.
#[derive(Debug, Clone)]
pub struct Dependency {
    pub name: DatasetName,
    pub line: usize,
    pub column: usize,
}

/// A parsed transform file.
#[derive(Debug, Clone)]
pub struct Transform {
    pub sql: String,
    pub description: Option<String>,
    pub options: TransformOptions,
    pub dependencies: Vec<Dependency>,
}

/// Parses the transform at `file` producing `domain.layer.<dataset>`; problems go to `diags`.
pub fn parse(
    file: &Path,
    sql: &str,
    domain: &str,
    layer: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<Transform> {
    let (description, options) = parse_header(file, sql, diags);

    let statement = match parse_single_select(sql) {
        Ok(s) => s,
        Err((line, column, msg)) => {
            diags.push(Diagnostic::new(file, line, column, msg));
            return None;
        }
    };

    let dependencies = match dependencies(&statement, domain, layer) {
        Ok(d) => d,
        Err(msg) => {
            diags.push(Diagnostic::new(file, 1, 1, msg));
            return None;
        }
    };

    Some(Transform {
        sql: sql.to_string(),
        description,
        options,
        dependencies,
    })
}

fn parse_header(
    file: &Path,
    sql: &str,
    diags: &mut Vec<Diagnostic>,
) -> (Option<String>, TransformOptions) {
    let mut description: Vec<&str> = Vec::new();
    let mut options = TransformOptions::default();
    let mut options_line = 1;
    for (i, raw) in sql.lines().enumerate() {
        let line_no = i + 1;
        let trimmed = raw.trim_start();
        if trimmed.is_empty() {
            continue;
        }
        let Some(comment) = trimmed.strip_prefix("--") else {
            break;
        };
        let indent = raw.len() - trimmed.len();
        let body = comment.trim();
        let Some(option) = body.strip_prefix('@') else {
            if !body.is_empty() {
                description.push(body);
            }
            continue;
        };
        let col = indent + 3 + (comment.len() - comment.trim_start().len());
        let Some((key, value)) = option.split_once(':') else {
            diags.push(Diagnostic::new(
                file,
                line_no,
                col,
                "expected `-- @key: value` in the transform header",
            ));
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match OPTION_KEYS.iter().find(|(k, _)| *k == key) {
            None => {
                let known: Vec<&str> = OPTION_KEYS.iter().map(|(k, _)| *k).collect();
                diags.push(Diagnostic::new(
                    file,
                    line_no,
                    col,
                    format!(
                        "unknown transform option `@{key}`; expected one of: {}",
                        known.join(", ")
                    ),
                ));
            }
            Some((_, allowed)) if !allowed.is_empty() && !allowed.contains(&value) => {
                let value_col = col + 1 + raw[col..].find(value).unwrap_or(0);
                diags.push(Diagnostic::new(
                    file,
                    line_no,
                    value_col,
                    format!(
                        "invalid value `{value}` for `@{key}`; expected one of: {}",
                        allowed.join(", ")
                    ),
                ));
            }
            Some((k, _)) => match *k {
                "materialized" => {
                    options.materialized = match value {
                        "incremental" => Materialization::Incremental,
                        "view" => Materialization::View,
                        _ => Materialization::Table,
                    };
                    options_line = line_no;
                }
                "unique_key" => {
                    options.unique_key = value
                        .split(',')
                        .map(|c| c.trim().to_string())
                        .filter(|c| !c.is_empty())
                        .collect()
                }
                "format" => {
                    options.format = Some(match value {
                        "iceberg" => super::TableFormatName::Iceberg,
                        _ => super::TableFormatName::Delta,
                    });
                }
                "schedule" => {
                    if let Err(msg) = super::parse_schedule(value) {
                        let value_col = col + 1 + raw[col..].find(value).unwrap_or(0);
                        diags.push(Diagnostic::new(file, line_no, value_col, msg));
                    }
                    options.schedule = Some(value.to_string());
                }
                _ => options.watermark = Some(value.to_string()).filter(|v| !v.is_empty()),
            },
        }
    }
    let incremental = options.materialized == Materialization::Incremental;
    if incremental && options.unique_key.is_empty() && options.watermark.is_none() {
        diags.push(Diagnostic::new(
            file,
            options_line,
            1,
            "an incremental transform needs `-- @watermark: column` (append new rows) or `-- @unique_key: columns` (merge)",
        ));
    }
    if !incremental && (!options.unique_key.is_empty() || options.watermark.is_some()) {
        diags.push(Diagnostic::new(
            file,
            options_line,
            1,
            "`@unique_key` and `@watermark` apply to `-- @materialized: incremental` only",
        ));
    }
    let description = (!description.is_empty()).then(|| description.join(" "));
    (description, options)
}

/// Parses `sql` as exactly one `SELECT` query; errors carry a 1-based line and column.
pub fn parse_single_select(sql: &str) -> Result<DfStatement, (usize, usize, String)> {
    let dialect = GenericDialect {};
    let mut statements = DFParserBuilder::new(sql)
        .with_dialect(&dialect)
        .build()
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| {
            let msg = e.to_string();
            let (line, column) = error_position(sql, &msg).unwrap_or((1, 1));
            (
                line,
                column,
                format!("invalid SQL: {}", strip_position(&msg)),
            )
        })?;
    if statements.len() != 1 {
        return Err((
            1,
            1,
            format!(
                "a transform holds exactly one SELECT statement, found {}",
                statements.len()
            ),
        ));
    }
    let statement = statements
        .pop_front()
        .ok_or((1, 1, "empty transform".to_string()))?;
    match &statement {
        DfStatement::Statement(s) if matches!(**s, Statement::Query(_)) => Ok(statement),
        _ => Err((
            1,
            1,
            "a transform must be a single SELECT query (no DDL, DML or SET)".to_string(),
        )),
    }
}

/// Where a sqlparser error points: its `Line: L, Column: C`, or the end of the text when the
/// parser ran out of input.
pub fn error_position(sql: &str, msg: &str) -> Option<(usize, usize)> {
    if let Some(p) = position_in_message(msg) {
        return Some(p);
    }
    if !msg.contains("found: EOF") {
        return None;
    }
    let text = sql.trim_end();
    let line = text.lines().count().max(1);
    let column = text.lines().last().map(|l| l.chars().count()).unwrap_or(0) + 1;
    Some((line, column))
}

/// Finds `Line: L, Column: C` in a sqlparser error message.
fn position_in_message(msg: &str) -> Option<(usize, usize)> {
    let rest = &msg[msg.find("Line: ")? + 6..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some((line.trim().parse().ok()?, column.parse().ok()?))
}

fn strip_position(msg: &str) -> &str {
    let msg = msg.strip_prefix("SQL error: ").unwrap_or(msg);
    let msg = msg.strip_prefix("ParserError(\"").unwrap_or(msg);
    let msg = msg.strip_suffix("\")").unwrap_or(msg);
    match msg.find(" at Line: ") {
        Some(i) => &msg[..i],
        None => msg,
    }
}

/// The datasets `statement` reads, resolved inside `domain.layer`, with positions.
fn dependencies(
    statement: &DfStatement,
    domain: &str,
    layer: &str,
) -> Result<Vec<Dependency>, String> {
    let (tables, _ctes) = datafusion::sql::resolve::resolve_table_references(statement, true)
        .map_err(|e| format!("cannot resolve table names: {e}"))?;
    let DfStatement::Statement(inner) = statement else {
        return Ok(Vec::new());
    };
    // Positions: the first occurrence of each name that resolves to a real table reference.
    let mut spans: Vec<(TableReference, usize, usize)> = Vec::new();
    let _ = visit_relations(inner.as_ref(), |name| {
        if let Ok(r) = object_name_to_table_reference(name.clone(), true) {
            let start = name.span().start;
            spans.push((r, start.line as usize, start.column as usize));
        }
        ControlFlow::<()>::Continue(())
    });
    let mut out: Vec<Dependency> = Vec::new();
    for table in tables {
        let (line, column) = spans
            .iter()
            .find(|(r, ..)| *r == table)
            .map(|(_, l, c)| (*l, *c))
            .unwrap_or((1, 1));
        let name = DatasetName::resolve(&table, domain, layer);
        if !out.iter().any(|d| d.name == name) {
            out.push(Dependency { name, line, column });
        }
    }
    out.sort_by_key(|d| (d.line, d.column));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctes_and_aliases_are_not_dependencies() {
        let sql = "-- Revenue.\n-- @materialized: table\nWITH x AS (SELECT * FROM clean t)\nSELECT * FROM x JOIN sales.gold.daily d ON true JOIN raw.stores s ON true";
        let mut diags = Vec::new();
        let t = parse(Path::new("f.sql"), sql, "sales", "silver", &mut diags).expect("parses");
        assert!(diags.is_empty(), "{diags:?}");
        let names: Vec<String> = t.dependencies.iter().map(|d| d.name.to_string()).collect();
        assert_eq!(
            names,
            ["sales.silver.clean", "sales.gold.daily", "sales.raw.stores"]
        );
        assert_eq!((t.dependencies[0].line, t.dependencies[0].column), (3, 26));
        assert_eq!(t.description.as_deref(), Some("Revenue."));
    }

    #[test]
    fn header_problems_are_pinned() {
        let mut diags = Vec::new();
        parse(
            Path::new("f.sql"),
            "-- @materialised: table\n-- @materialized: cube\nSELECT 1",
            "d",
            "l",
            &mut diags,
        );
        let got: Vec<String> = diags
            .iter()
            .map(|d| format!("{}:{} {}", d.line, d.column, d.message))
            .collect();
        assert_eq!(
            got,
            [
                "1:4 unknown transform option `@materialised`; expected one of: materialized, unique_key, watermark, schedule, format",
                "2:19 invalid value `cube` for `@materialized`; expected one of: table, incremental, view",
            ]
        );
    }

    #[test]
    fn parse_errors_carry_position() {
        let err = parse_single_select("SELECT a\nFROM t WHERE").unwrap_err();
        assert_eq!((err.0, err.1), (2, 13), "{}", err.2);
        assert!(
            err.2.starts_with("invalid SQL: Expected: an expression"),
            "{}",
            err.2
        );
        let err = parse_single_select("DROP TABLE t").unwrap_err();
        assert!(err.2.contains("single SELECT"));
    }
}
