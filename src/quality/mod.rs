//! Auditing a staged dataset against its data contract: the documented schema (names, types,
//! `required`, `unique`) and every quality rule, each evaluation kept as a [`Check`].
//!
//! Rules run as SQL over the staged rows, which are bound as `{object}`; a failing rule keeps up
//! to five offending rows as a sample, with columns classified `pii` masked.

mod schema;
pub mod semver;

use std::sync::Arc;

use datafusion::arrow::array::{Array, Float64Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::TableProvider;
use futures::TryStreamExt;
use serde_json::Value;

pub use schema::{schema_diff, type_matches};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::spec::contract::{Condition, Contract, Measure, Rule, Severity, bind_object};

/// Name the staged rows have in audit queries.
const STAGED: &str = "__staged";

/// One rule evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The dataset audited (`domain.layer.dataset`).
    pub dataset: String,
    pub contract_id: String,
    pub contract_version: String,
    /// The rule's id or name (`schema`, `<column>_required`, `<column>_unique` for the schema).
    pub rule: String,
    /// `schema`, the metric (`nullValues`, ...), `sql`, or `text`/`custom` for rules not run.
    pub kind: String,
    pub severity: Severity,
    /// `pass`, `fail` or `not_run`.
    pub result: &'static str,
    pub observed: Option<f64>,
    /// The condition, e.g. `mustBe 0`.
    pub expected: String,
    /// Up to five offending rows as JSON lines, or the schema differences.
    pub detail: Option<String>,
}

impl Check {
    /// A failure that blocks the publish.
    pub fn blocks(&self) -> bool {
        self.result == "fail" && self.severity == Severity::Error
    }
}

/// Every check of one audit.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    pub checks: Vec<Check>,
}

impl Audit {
    pub fn blocking(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.blocks())
    }

    /// What blocked the publish, one rule per line.
    pub fn summary(&self, contract: &Contract) -> String {
        let lines: Vec<String> = self
            .blocking()
            .map(|c| {
                let observed = c
                    .observed
                    .map(|o| format!(", observed {o}"))
                    .unwrap_or_default();
                let detail = c
                    .detail
                    .as_deref()
                    .map(|d| format!("\n    {}", d.trim_end().replace('\n', "\n    ")))
                    .unwrap_or_default();
                format!(
                    "  rule `{}` ({}): expected {}{observed}{detail}",
                    c.rule, c.kind, c.expected
                )
            })
            .collect();
        format!(
            "publish blocked by contract `{}` {}: {} rule(s) failed; the table keeps its previous version\n{}",
            contract.id,
            contract.version_text,
            lines.len(),
            lines.join("\n")
        )
    }
}

/// Audits `staged` (the rows about to be published) against `contract`.
pub async fn audit(
    engine: &Engine,
    contract: &Contract,
    staged: Arc<dyn TableProvider>,
) -> Result<Audit> {
    let mut audit = Audit::default();
    let schema = staged.schema();
    let base = Check {
        dataset: contract.dataset.to_string(),
        contract_id: contract.id.clone(),
        contract_version: contract.version_text.clone(),
        rule: String::new(),
        kind: String::new(),
        severity: Severity::Error,
        result: "pass",
        observed: None,
        expected: String::new(),
        detail: None,
    };
    let diff = schema_diff(contract, &schema);
    audit.checks.push(Check {
        rule: "schema".into(),
        kind: "schema".into(),
        result: if diff.is_empty() { "pass" } else { "fail" },
        observed: Some(diff.len() as f64),
        expected: "the contract's columns and types".into(),
        detail: (!diff.is_empty()).then(|| diff.join("\n")),
        ..base.clone()
    });
    let state = engine.session_with_locals(vec![(STAGED.to_string(), staged)])?;
    let present = |c: &str| schema.field_with_name(c).is_ok();

    // The schema's own promises, as rules.
    let mut rules: Vec<Rule> = Vec::new();
    for col in contract.columns.iter().filter(|c| present(&c.name)) {
        if col.required {
            rules.push(generated(
                format!("{}_required", col.name),
                Measure::NullValues {
                    column: col.name.clone(),
                },
            ));
        }
        if col.unique {
            rules.push(generated(
                format!("{}_unique", col.name),
                Measure::DuplicateValues {
                    columns: vec![col.name.clone()],
                },
            ));
        }
    }
    rules.extend(contract.rules.iter().cloned());

    let mut rows: Option<f64> = None;
    for rule in &rules {
        let kind = kind_of(&rule.measure);
        let Some(condition) = &rule.condition else {
            audit.checks.push(Check {
                rule: rule.name.clone(),
                kind,
                severity: rule.severity,
                result: "not_run",
                ..base.clone()
            });
            continue;
        };
        // A rule over a column the output lacks is reported by the schema check.
        if columns_of(&rule.measure).iter().any(|c| !present(c)) {
            continue;
        }
        let mut observed = scalar(engine, &state, &measure_sql(&rule.measure))
            .await
            .map_err(|e| {
                Error::new(
                    e.kind(),
                    format!(
                        "quality rule `{}` of contract `{}`: {e}",
                        rule.name, contract.id
                    ),
                )
            })?;
        if rule.percent {
            if rows.is_none() {
                rows =
                    Some(scalar(engine, &state, &format!("SELECT COUNT(*) FROM {STAGED}")).await?);
            }
            let total = rows.unwrap_or(0.0);
            observed = if total > 0.0 {
                observed * 100.0 / total
            } else {
                0.0
            };
        }
        let passed = condition.holds(observed);
        let detail = if passed {
            None
        } else {
            match sample_sql(&rule.measure, contract, &schema) {
                Some(sql) => sample(engine, &state, &sql).await.ok(),
                None => None,
            }
        };
        audit.checks.push(Check {
            rule: rule.name.clone(),
            kind,
            severity: rule.severity,
            result: if passed { "pass" } else { "fail" },
            observed: Some(observed),
            expected: condition_text(condition, rule.percent),
            detail,
            ..base.clone()
        });
    }
    Ok(audit)
}

fn generated(name: String, measure: Measure) -> Rule {
    Rule {
        name,
        measure,
        condition: Some(Condition::Equal(0.0)),
        percent: false,
        severity: Severity::Error,
        line: 0,
        column: 0,
    }
}

fn condition_text(c: &Condition, percent: bool) -> String {
    if percent {
        format!("{c} (percent)")
    } else {
        c.to_string()
    }
}

fn kind_of(m: &Measure) -> String {
    match m {
        Measure::NullValues { .. } => "nullValues",
        Measure::MissingValues { .. } => "missingValues",
        Measure::InvalidValues { .. } => "invalidValues",
        Measure::DuplicateValues { .. } => "duplicateValues",
        Measure::RowCount => "rowCount",
        Measure::Sql { .. } => "sql",
        Measure::NotRun { kind } => kind,
    }
    .to_string()
}

fn columns_of(m: &Measure) -> Vec<&String> {
    match m {
        Measure::NullValues { column }
        | Measure::MissingValues { column, .. }
        | Measure::InvalidValues { column, .. } => vec![column],
        Measure::DuplicateValues { columns } => columns.iter().collect(),
        _ => vec![],
    }
}

fn ident(c: &str) -> String {
    format!("\"{}\"", c.replace('"', "\"\""))
}

fn literal(v: &Value) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    format!("'{}'", text.replace('\'', "''"))
}

/// The predicate selecting the offending rows of a per-row measure.
fn offending(m: &Measure) -> Option<String> {
    Some(match m {
        Measure::NullValues { column } => format!("{} IS NULL", ident(column)),
        Measure::MissingValues { column, missing } => {
            let c = ident(column);
            let listed: Vec<String> = missing
                .iter()
                .filter(|v| !v.is_null())
                .map(literal)
                .collect();
            let mut p = format!("{c} IS NULL");
            if !listed.is_empty() {
                p.push_str(&format!(
                    " OR CAST({c} AS VARCHAR) IN ({})",
                    listed.join(", ")
                ));
            }
            p
        }
        Measure::InvalidValues {
            column,
            valid,
            pattern,
        } => {
            let c = ident(column);
            let mut ok = Vec::new();
            if !valid.is_empty() {
                let listed: Vec<String> = valid.iter().map(literal).collect();
                ok.push(format!("CAST({c} AS VARCHAR) IN ({})", listed.join(", ")));
            }
            if let Some(p) = pattern {
                ok.push(format!(
                    "regexp_like(CAST({c} AS VARCHAR), {})",
                    literal(&Value::String(p.clone()))
                ));
            }
            format!("{c} IS NOT NULL AND NOT ({})", ok.join(" OR "))
        }
        _ => return None,
    })
}

/// SQL measuring `m` over the staged rows: one number.
fn measure_sql(m: &Measure) -> String {
    match m {
        Measure::DuplicateValues { columns } => {
            let cols: Vec<String> = columns.iter().map(|c| ident(c)).collect();
            format!(
                "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM {STAGED} GROUP BY {} HAVING COUNT(*) > 1)",
                cols.join(", ")
            )
        }
        Measure::RowCount => format!("SELECT COUNT(*) FROM {STAGED}"),
        Measure::Sql { query } => bind_object(query, STAGED),
        other => format!(
            "SELECT COUNT(*) FROM {STAGED} WHERE {}",
            offending(other).unwrap_or_else(|| "false".into())
        ),
    }
}

/// SQL selecting up to five offending rows, `pii` columns masked.
fn sample_sql(m: &Measure, contract: &Contract, schema: &SchemaRef) -> Option<String> {
    let pii = |c: &str| {
        contract.columns.iter().any(|col| {
            col.name == c
                && col
                    .classification
                    .as_deref()
                    .is_some_and(|k| k.eq_ignore_ascii_case("pii"))
        })
    };
    let shown = |c: &str| {
        if pii(c) {
            format!("'***' AS {}", ident(c))
        } else {
            ident(c)
        }
    };
    match m {
        Measure::DuplicateValues { columns } => {
            let select: Vec<String> = columns.iter().map(|c| shown(c)).collect();
            let group: Vec<String> = columns.iter().map(|c| ident(c)).collect();
            Some(format!(
                "SELECT {}, COUNT(*) AS copies FROM {STAGED} GROUP BY {} HAVING COUNT(*) > 1 ORDER BY copies DESC LIMIT 5",
                select.join(", "),
                group.join(", ")
            ))
        }
        other => {
            let predicate = offending(other)?;
            let select: Vec<String> = schema.fields().iter().map(|f| shown(f.name())).collect();
            Some(format!(
                "SELECT {} FROM {STAGED} WHERE {predicate} LIMIT 5",
                select.join(", ")
            ))
        }
    }
}

async fn run(
    engine: &Engine,
    state: &datafusion::execution::SessionState,
    sql: &str,
) -> Result<Vec<RecordBatch>> {
    let (_, stream) = engine.execute(sql, state).await?;
    Ok(stream.try_collect().await?)
}

/// The first value of the first column, as a number (`NULL` counts as 0).
async fn scalar(
    engine: &Engine,
    state: &datafusion::execution::SessionState,
    sql: &str,
) -> Result<f64> {
    let batches = run(engine, state, sql).await?;
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(0.0);
    };
    let column = cast(batch.column(0), &DataType::Float64).map_err(|_| {
        Error::user(format!(
            "the rule's query must return a number, found {}",
            batch.column(0).data_type()
        ))
    })?;
    let values = column
        .as_any()
        .downcast_ref::<Float64Array>()
        .ok_or_else(|| Error::internal("a Float64 cast gave another type"))?;
    Ok(if values.is_null(0) {
        0.0
    } else {
        values.value(0)
    })
}

/// Rows as JSON lines.
async fn sample(
    engine: &Engine,
    state: &datafusion::execution::SessionState,
    sql: &str,
) -> Result<String> {
    let batches = run(engine, state, sql).await?;
    let mut out = Vec::new();
    {
        let mut writer = datafusion::arrow::json::LineDelimitedWriter::new(&mut out);
        for b in &batches {
            writer.write(b)?;
        }
        writer.finish()?;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}
