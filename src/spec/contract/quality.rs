//! A contract's quality rules (ODCS `quality`): metrics, SQL rules and their thresholds, each
//! problem pinned to its line and column.

use std::path::Path;

use serde_json::Value;

use super::file::QualityFile;
use super::{Condition, Measure, Rule, Severity, bind_object};
use crate::spec::diagnostic::{Diagnostic, did_you_mean};
use crate::spec::transform::parse_single_select;
use crate::spec::yaml::Positions;

const METRICS: &[&str] = &[
    "nullValues",
    "missingValues",
    "invalidValues",
    "duplicateValues",
    "rowCount",
];

pub(super) fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(super) fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Validates one quality rule at `path` (on property `column` when given).
pub(super) fn rule(
    text: &str,
    q: &QualityFile,
    column: Option<&str>,
    path: &[&str],
    r: &mut Report<'_>,
) -> Option<Rule> {
    let key = |extra: &[&str]| -> Vec<String> {
        path.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let (line, col) = r.pos.value(&key(&[]));
    let before = r.diags.len();

    let kind = q
        .kind
        .clone()
        .unwrap_or_else(|| if q.query.is_some() { "sql" } else { "library" }.into());
    let metric = q.metric.clone().or_else(|| q.rule.clone());
    let severity = match q
        .severity
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("error") => Severity::Error,
        Some("warning" | "warn" | "info") => Severity::Warning,
        Some(other) => {
            r.under(
                path,
                &["severity"],
                format!("invalid severity `{other}`; expected error, warning or info"),
            );
            Severity::Error
        }
    };

    // The operator: exactly one.
    let mut ops: Vec<Condition> = Vec::new();
    if let Some(v) = &q.must_be {
        match number(v) {
            Some(n) => ops.push(Condition::Equal(n)),
            None => r.under(path, &["mustBe"], "`mustBe` needs a number".into()),
        }
    }
    if let Some(v) = &q.must_not_be {
        match number(v) {
            Some(n) => ops.push(Condition::NotEqual(n)),
            None => r.under(path, &["mustNotBe"], "`mustNotBe` needs a number".into()),
        }
    }
    ops.extend(q.must_be_greater_than.map(Condition::Greater));
    ops.extend(q.must_be_greater_or_equal_to.map(Condition::GreaterOrEqual));
    ops.extend(q.must_be_less_than.map(Condition::Less));
    ops.extend(q.must_be_less_or_equal_to.map(Condition::LessOrEqual));
    for (name, range, between) in [
        ("mustBeBetween", &q.must_be_between, true),
        ("mustNotBeBetween", &q.must_not_be_between, false),
    ] {
        if let Some(bounds) = range {
            match bounds.as_slice() {
                [a, b] if a < b => ops.push(if between {
                    Condition::Between(*a, *b)
                } else {
                    Condition::NotBetween(*a, *b)
                }),
                _ => r.under(
                    path,
                    &[name],
                    format!("`{name}` needs two numbers, low then high"),
                ),
            }
        }
    }

    let arg = |name: &str| q.arguments.as_ref().and_then(|a| a.get(name));
    let column_or = |r: &mut Report<'_>, metric: &str| -> Option<String> {
        match column {
            Some(c) => Some(c.to_string()),
            None => {
                r.under(
                    path,
                    &["metric"],
                    format!("`{metric}` is a property rule: put it under the property's `quality`"),
                );
                None
            }
        }
    };
    let measure = match kind.as_str() {
        "library" => {
            let Some(metric) = metric.clone() else {
                r.under(
                    path,
                    &[],
                    format!(
                        "a library rule needs `metric`: one of {}",
                        METRICS.join(", ")
                    ),
                );
                return None;
            };
            match metric.as_str() {
                "nullValues" => Measure::NullValues {
                    column: column_or(r, &metric)?,
                },
                "missingValues" => Measure::MissingValues {
                    column: column_or(r, &metric)?,
                    missing: arg("missingValues")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_else(|| vec![Value::Null, Value::String(String::new())]),
                },
                "invalidValues" => {
                    let valid = arg("validValues")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let pattern = arg("pattern").and_then(Value::as_str).map(str::to_string);
                    if valid.is_empty() && pattern.is_none() {
                        r.under(
                            path,
                            &["arguments"],
                            "`invalidValues` needs `arguments.validValues` or `arguments.pattern`"
                                .into(),
                        );
                    }
                    Measure::InvalidValues {
                        column: column_or(r, &metric)?,
                        valid,
                        pattern,
                    }
                }
                "duplicateValues" => {
                    let listed: Vec<String> = arg("properties")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    let columns = match (column, listed.is_empty()) {
                        (Some(c), true) => vec![c.to_string()],
                        (_, false) => listed,
                        (None, true) => {
                            r.under(
                                path,
                                &["arguments"],
                                "a schema-level `duplicateValues` needs `arguments.properties`"
                                    .into(),
                            );
                            return None;
                        }
                    };
                    Measure::DuplicateValues { columns }
                }
                "rowCount" => {
                    if column.is_some() {
                        r.under(path, &["metric"], "`rowCount` is a schema rule: put it under the schema object's `quality`".into());
                    }
                    Measure::RowCount
                }
                other => {
                    let hint = did_you_mean(other, METRICS.iter().copied())
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default();
                    r.under(
                        path,
                        &["metric"],
                        format!(
                            "unknown metric `{other}`; expected one of: {}{hint}",
                            METRICS.join(", ")
                        ),
                    );
                    return None;
                }
            }
        }
        "sql" => {
            let Some(query) = &q.query else {
                r.under(path, &[], "a sql rule needs `query`".into());
                return None;
            };
            let sql = placeholders(query, column);
            // `"object"` has the placeholder's length, so error columns stay true.
            if let Err((l, c, msg)) = parse_single_select(&bind_object(&sql, "\"object\"")) {
                // Point into the YAML: the query's own line and column inside the value.
                let (vl, vc) = r.pos.value(&key(&["query"]));
                let (fl, fc) = locate(text, vl, vc, query, l, c);
                let file = r.file;
                r.diags.push(Diagnostic::new(
                    file,
                    fl,
                    fc,
                    format!("quality rule query: {msg}"),
                ));
                return None;
            }
            Measure::Sql { query: sql }
        }
        "text" | "custom" => Measure::NotRun { kind: kind.clone() },
        other => {
            r.under(
                path,
                &["type"],
                format!("unknown rule type `{other}`; expected library, sql, text or custom"),
            );
            return None;
        }
    };
    let condition = match (&measure, ops.len()) {
        (Measure::NotRun { .. }, _) => None,
        (_, 1) => ops.pop(),
        (_, 0) => {
            r.under(path, &[], "the rule needs one operator: mustBe, mustNotBe, mustBeGreaterThan, mustBeGreaterOrEqualTo, mustBeLessThan, mustBeLessOrEqualTo, mustBeBetween or mustNotBeBetween".into());
            None
        }
        (_, _) => {
            r.under(path, &[], "the rule has several operators; ODCS allows exactly one (use mustBeBetween for a range)".into());
            None
        }
    };
    let percent = match q.unit.as_deref() {
        None | Some("rows") => false,
        Some("percent" | "%") => true,
        Some(other) => {
            r.under(
                path,
                &["unit"],
                format!("invalid unit `{other}`; expected rows or percent"),
            );
            false
        }
    };
    if r.diags.len() > before {
        return None;
    }
    let name = q.id.clone().or_else(|| q.name.clone()).unwrap_or_else(|| {
        let what = match &measure {
            Measure::Sql { .. } => "sql".to_string(),
            Measure::NotRun { kind } => kind.clone(),
            _ => metric.clone().unwrap_or_default(),
        };
        match column {
            Some(c) => format!("{c}_{what}"),
            None => what,
        }
    });
    Some(Rule {
        name,
        measure,
        condition,
        percent,
        severity,
        line,
        column: col,
    })
}

/// Collects problems of one file at YAML paths.
pub(super) struct Report<'a> {
    pub(super) file: &'a Path,
    pub(super) pos: &'a Positions,
    pub(super) diags: &'a mut Vec<Diagnostic>,
}

impl Report<'_> {
    pub(super) fn at(&mut self, path: &[&str], msg: String) {
        let owned: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        let (l, c) = self.pos.value(&owned);
        self.diags.push(Diagnostic::new(self.file, l, c, msg));
    }

    pub(super) fn under(&mut self, path: &[&str], extra: &[&str], msg: String) {
        self.at(&[path, extra].concat(), msg);
    }
}

/// Replaces ODCS placeholders: `{object}`, `${object}`, `{table}`, `${table}` become `{object}`
/// (bound at audit time); `{property}`, `{column}` (with or without `$`) the quoted column.
fn placeholders(query: &str, column: Option<&str>) -> String {
    let mut q = query
        .replace("${object}", "{object}")
        .replace("${table}", "{object}")
        .replace("{table}", "{object}");
    if let Some(c) = column {
        let quoted = format!("\"{}\"", c.replace('"', "\"\""));
        for p in ["${property}", "{property}", "${column}", "{column}"] {
            q = q.replace(p, &quoted);
        }
    }
    q
}

/// The file position of line `l`, column `c` of `query`, whose YAML value starts at
/// (`vl`, `vc`): a plain scalar continues on its line; a block scalar starts on the next line.
fn locate(text: &str, vl: usize, vc: usize, query: &str, l: usize, c: usize) -> (usize, usize) {
    let wanted = query.lines().nth(l.saturating_sub(1)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    for (i, file_line) in lines.iter().enumerate().skip(vl.saturating_sub(1)) {
        if !wanted.trim().is_empty()
            && let Some(at) = file_line.find(wanted.trim_start())
        {
            let indent = wanted.len() - wanted.trim_start().len();
            let start = at.saturating_sub(indent);
            return (i + 1, start + c);
        }
    }
    (vl, vc)
}
