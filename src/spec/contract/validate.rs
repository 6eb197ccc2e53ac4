//! From a contract file to a [`Contract`]: every problem pinned to its line and column.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::file::{ContractFile, QualityFile};
use super::{Condition, Contract, ContractColumn, Measure, Rule, Severity, Version, bind_object};
use crate::spec::diagnostic::{Diagnostic, did_you_mean};
use crate::spec::transform::{DatasetName, parse_single_select};
use crate::spec::yaml::Positions;

const API_VERSIONS: &[&str] = &["v3.1.0", "v3.0.2", "v3.0.1", "v3.0.0"];
const STATUSES: &[&str] = &["proposed", "draft", "active", "deprecated", "retired"];
const LOGICAL_TYPES: &[&str] = &[
    "string",
    "date",
    "timestamp",
    "time",
    "number",
    "integer",
    "object",
    "array",
    "boolean",
];
const METRICS: &[&str] = &[
    "nullValues",
    "missingValues",
    "invalidValues",
    "duplicateValues",
    "rowCount",
];

/// Validates a parsed contract of `domain`; problems go to `diags`.
pub fn validate(
    file: &Path,
    text: &str,
    spec: ContractFile,
    pos: &Positions,
    domain: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<Contract> {
    let before = diags.len();
    let key = |path: &[&str]| -> Vec<String> { path.iter().map(|s| s.to_string()).collect() };
    let mut r = Report { file, pos, diags };

    if !API_VERSIONS.contains(&spec.api_version.as_str()) {
        r.at(
            &["apiVersion"],
            format!(
                "unsupported apiVersion `{}`; expected one of: {}",
                spec.api_version,
                API_VERSIONS.join(", ")
            ),
        );
    }
    if spec.kind != "DataContract" {
        r.at(
            &["kind"],
            format!("kind must be `DataContract`, found `{}`", spec.kind),
        );
    }
    if spec.id.trim().is_empty() {
        r.at(&["id"], "the contract id must not be empty".into());
    }
    let version = Version::parse(&spec.version);
    if version.is_none() {
        r.at(
            &["version"],
            format!(
                "invalid version `{}`; expected MAJOR.MINOR.PATCH, e.g. 1.0.0",
                spec.version
            ),
        );
    }
    if !STATUSES.contains(&spec.status.as_str()) {
        let hint = did_you_mean(&spec.status, STATUSES.iter().copied())
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        r.at(
            &["status"],
            format!(
                "invalid status `{}`; expected one of: {}{hint}",
                spec.status,
                STATUSES.join(", ")
            ),
        );
    }
    if let Some(d) = &spec.domain
        && d != domain
    {
        r.at(
            &["domain"],
            format!("the contract says domain `{d}`, but it lives in domain `{domain}`'s folder"),
        );
    }

    // The dataset.
    let (object, dataset) = match spec.schema.as_slice() {
        [one] => {
            let name = one.physical_name.as_deref().and_then(DatasetName::parse);
            match name {
                Some(n) if n.domain == domain => (Some(one), Some(n)),
                Some(n) => {
                    r.at(
                        &["schema", "0", "physicalName"],
                        format!("`{n}` is not in domain `{domain}`: a domain publishes its own products only"),
                    );
                    (Some(one), None)
                }
                None => {
                    r.at(
                        &["schema", "0"],
                        "the schema object needs `physicalName: domain.layer.dataset` naming the product's dataset".into(),
                    );
                    (Some(one), None)
                }
            }
        }
        [] => {
            r.at(
                &["kind"],
                "a contract needs `schema` with one object: the product's dataset".into(),
            );
            (None, None)
        }
        _ => {
            r.at(
                &["schema", "1"],
                "meshql contracts describe one dataset: `schema` must hold exactly one object"
                    .into(),
            );
            (None, None)
        }
    };

    let mut columns = Vec::new();
    let mut rules = Vec::new();
    if let Some(object) = object {
        if let Some(t) = &object.logical_type
            && t != "object"
        {
            r.at(
                &["schema", "0", "logicalType"],
                format!("a schema object's logicalType is `object`, found `{t}`"),
            );
        }
        for (i, p) in object.properties.iter().enumerate() {
            let idx = i.to_string();
            let ppath = ["schema", "0", "properties", idx.as_str()];
            if columns.iter().any(|c: &ContractColumn| c.name == p.name) {
                r.at(
                    &[&ppath[..], &["name"]].concat(),
                    format!("property `{}` is declared twice", p.name),
                );
            }
            if let Some(t) = &p.logical_type
                && !LOGICAL_TYPES.contains(&t.as_str())
            {
                r.at(
                    &[&ppath[..], &["logicalType"]].concat(),
                    format!(
                        "invalid logicalType `{t}`; expected one of: {}",
                        LOGICAL_TYPES.join(", ")
                    ),
                );
            }
            columns.push(ContractColumn {
                name: p.name.clone(),
                logical_type: p.logical_type.clone(),
                physical_type: p.physical_type.clone(),
                description: p.description.clone(),
                required: p.required,
                unique: p.unique,
                primary_key: p.primary_key,
                primary_key_position: p.primary_key_position,
                classification: p.classification.clone(),
            });
            for (j, q) in p.quality.iter().enumerate() {
                let jdx = j.to_string();
                let qpath: Vec<&str> = [&ppath[..], &["quality", jdx.as_str()]].concat();
                if let Some(found) = rule(text, q, Some(&p.name), &qpath, &mut r) {
                    rules.push(found);
                }
            }
        }
        for (j, q) in object.quality.iter().enumerate() {
            let jdx = j.to_string();
            let qpath = ["schema", "0", "quality", jdx.as_str()];
            if let Some(found) = rule(text, q, None, &qpath, &mut r) {
                rules.push(found);
            }
        }
        // Rules naming columns must name documented ones.
        for rl in &rules {
            let named: Vec<&String> = match &rl.measure {
                Measure::NullValues { column }
                | Measure::MissingValues { column, .. }
                | Measure::InvalidValues { column, .. } => vec![column],
                Measure::DuplicateValues { columns: c } => c.iter().collect(),
                _ => vec![],
            };
            for c in named {
                if !columns.iter().any(|col| col.name == *c) {
                    r.diags.push(Diagnostic::new(
                        file,
                        rl.line,
                        rl.column,
                        format!(
                            "rule `{}` names `{c}`, which is not a property of the schema",
                            rl.name
                        ),
                    ));
                }
            }
        }
    }

    // Service levels.
    let (mut latency, mut frequency, mut schedule, mut availability) = (None, None, None, None);
    for (i, sla) in spec.sla_properties.iter().enumerate() {
        let idx = i.to_string();
        let spath = ["slaProperties", idx.as_str()];
        match sla.property.to_ascii_lowercase().as_str() {
            "latency" | "ly" | "frequency" | "fy" => {
                let d = duration(&sla.value, sla.unit.as_deref());
                if d.is_none() {
                    r.at(
                        &[&spath[..], &["value"]].concat(),
                        format!(
                            "`{}` needs a positive number and a time unit (s, m, h, d, w, y), found {} {}",
                            sla.property,
                            sla.value,
                            sla.unit.as_deref().unwrap_or("(no unit)")
                        ),
                    );
                }
                if sla.property.to_ascii_lowercase().starts_with('l') {
                    latency = d;
                } else {
                    frequency = d;
                    if let Some(s) = &sla.schedule {
                        if let Err(msg) = crate::spec::parse_schedule(s) {
                            r.at(&[&spath[..], &["schedule"]].concat(), msg);
                        }
                        schedule = Some(s.clone());
                    }
                }
            }
            "availability" | "av" => {
                availability = Some(match (&sla.value, &sla.unit) {
                    (v, Some(u)) if u == "percent" || u == "%" => format!("{}%", plain(v)),
                    (v, Some(u)) => format!("{} {u}", plain(v)),
                    (v, None) => plain(v),
                })
            }
            _ => {}
        }
    }

    let team = match &spec.team {
        Some(Value::Object(o)) => o.get("name").and_then(Value::as_str).map(str::to_string),
        _ => None,
    };
    let (dataset_line, dataset_column) = pos.value(&key(&["schema", "0", "physicalName"]));
    let (version_line, version_column) = pos.value(&key(&["version"]));
    if r.diags.len() > before {
        return None;
    }
    Some(Contract {
        file: file.to_path_buf(),
        id: spec.id,
        name: spec.name,
        version: version?,
        version_text: spec.version,
        status: spec.status,
        description: spec
            .description
            .and_then(|d| d.purpose)
            .or_else(|| object.and_then(|o| o.description.clone())),
        dataset: dataset?,
        team,
        columns,
        rules,
        latency,
        frequency,
        schedule,
        availability,
        dataset_line,
        dataset_column,
        version_line,
        version_column,
        fingerprint: {
            use sha2::{Digest, Sha256};
            Sha256::digest(text.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        },
    })
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A service level's duration from its value and unit.
fn duration(value: &Value, unit: Option<&str>) -> Option<Duration> {
    let n = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    if n <= 0.0 || !n.is_finite() {
        return None;
    }
    let secs = match unit?.to_ascii_lowercase().as_str() {
        "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600.0,
        "d" | "day" | "days" => 86_400.0,
        "w" | "wk" | "week" | "weeks" => 604_800.0,
        "y" | "yr" | "yrs" | "year" | "years" => 31_536_000.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(n * secs))
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Validates one quality rule at `path` (on property `column` when given).
fn rule(
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
struct Report<'a> {
    file: &'a Path,
    pos: &'a Positions,
    diags: &'a mut Vec<Diagnostic>,
}

impl Report<'_> {
    fn at(&mut self, path: &[&str], msg: String) {
        let owned: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        let (l, c) = self.pos.value(&owned);
        self.diags.push(Diagnostic::new(self.file, l, c, msg));
    }

    fn under(&mut self, path: &[&str], extra: &[&str], msg: String) {
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
