//! From a contract file to a [`Contract`]: every problem pinned to its line and column.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::file::ContractFile;
use super::quality::{Report, plain, rule};
use super::{Contract, ContractColumn, Measure, Version};
use crate::spec::diagnostic::{Diagnostic, did_you_mean};
use crate::spec::transform::DatasetName;
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
