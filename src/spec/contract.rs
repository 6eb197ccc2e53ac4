//! Data contracts: `catalog/<domain>/products/*.yaml`, aligned with the Open Data Contract
//! Standard (ODCS) v3.1.
//!
//! A contract makes a dataset a product: an owner, a semver version, a status, a documented
//! schema, quality rules and service levels. The file structs below follow ODCS's keys (camelCase,
//! with their nesting); [`Contract`] is the validated form the pipeline audits against.
//!
//! What meshql evaluates: the schema (names, logical and physical types, `required` → no nulls,
//! `unique`), the library metrics `nullValues`, `missingValues`, `invalidValues`,
//! `duplicateValues` and `rowCount`, and `sql` rules (`{object}` is the dataset being audited,
//! `{property}` the property a rule sits on), each with one operator (`mustBe`, `mustNotBe`,
//! `mustBeGreaterThan`, `mustBeGreaterOrEqualTo`, `mustBeLessThan`, `mustBeLessOrEqualTo`,
//! `mustBeBetween`, `mustNotBeBetween`). `text` and `custom` rules are recorded, not run.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::diagnostic::{Diagnostic, did_you_mean};
use super::transform::{DatasetName, parse_single_select};
use super::yaml::Positions;

/// An ODCS data contract, as written.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
#[schemars(title = "meshql data contract (ODCS v3.1)")]
pub struct ContractFile {
    /// ODCS version of the file: `v3.1.0` (or `v3.0.2`, `v3.0.1`, `v3.0.0`).
    pub api_version: String,
    /// Always `DataContract`.
    pub kind: String,
    /// Stable identifier of the contract.
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Semantic version `MAJOR.MINOR.PATCH`: a breaking change needs a major bump, an addition
    /// a minor one (`meshql check` enforces it against what was last published).
    pub version: String,
    /// `proposed`, `draft`, `active`, `deprecated` or `retired`. Every principal may read the
    /// `active` products of every domain.
    pub status: String,
    /// The domain owning the product (must be the folder's domain).
    #[serde(default)]
    pub domain: Option<String>,
    /// Deprecated in ODCS 3.1; accepted.
    #[serde(default)]
    pub data_product: Option<String>,
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub description: Option<DescriptionFile>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Exactly one schema object: the dataset, named by `physicalName: domain.layer.dataset`.
    #[serde(default)]
    pub schema: Vec<SchemaObjectFile>,
    /// Service levels: `latency` (freshness), `frequency`, `availability`, ...
    #[serde(default)]
    pub sla_properties: Vec<SlaPropertyFile>,
    /// Deprecated in ODCS 3.1; accepted.
    #[serde(default)]
    pub sla_default_element: Option<String>,
    /// The team: an object with `name` and `members` (ODCS 3.1) or a list of members (3.0).
    #[serde(default)]
    pub team: Option<Value>,
    #[serde(default)]
    pub roles: Vec<RoleFile>,
    #[serde(default)]
    pub support: Vec<Value>,
    #[serde(default)]
    pub price: Option<Value>,
    #[serde(default)]
    pub servers: Vec<Value>,
    #[serde(default)]
    pub custom_properties: Vec<CustomPropertyFile>,
    #[serde(default)]
    pub authoritative_definitions: Vec<Value>,
    #[serde(default)]
    pub contract_created_ts: Option<String>,
}

/// `description`: what the product is for.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct DescriptionFile {
    #[serde(default)]
    pub purpose: Option<String>,
    #[serde(default)]
    pub usage: Option<String>,
    #[serde(default)]
    pub limitations: Option<String>,
    #[serde(default)]
    pub authoritative_definitions: Vec<Value>,
    #[serde(default)]
    pub custom_properties: Vec<CustomPropertyFile>,
}

/// A schema object: the dataset.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct SchemaObjectFile {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    /// `domain.layer.dataset` of the product.
    #[serde(default)]
    pub physical_name: Option<String>,
    /// `object`.
    #[serde(default)]
    pub logical_type: Option<String>,
    /// `table`, `view`, ...
    #[serde(default)]
    pub physical_type: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub business_name: Option<String>,
    #[serde(default)]
    pub data_granularity_description: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub custom_properties: Vec<CustomPropertyFile>,
    #[serde(default)]
    pub authoritative_definitions: Vec<Value>,
    #[serde(default)]
    pub relationships: Vec<Value>,
    /// The columns.
    #[serde(default)]
    pub properties: Vec<PropertyFile>,
    /// Rules on the whole dataset (`rowCount`, `duplicateValues` over several properties, `sql`).
    #[serde(default)]
    pub quality: Vec<QualityFile>,
}

/// A property: one column.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct PropertyFile {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub business_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub physical_name: Option<String>,
    /// `string`, `date`, `timestamp`, `time`, `number`, `integer`, `object`, `array`, `boolean`.
    #[serde(default)]
    pub logical_type: Option<String>,
    #[serde(default)]
    pub logical_type_options: Option<Value>,
    /// The storage type: `date`, `decimal(14,2)`, `bigint`, `varchar`, ...
    #[serde(default)]
    pub physical_type: Option<String>,
    /// No value may be null.
    #[serde(default)]
    pub required: bool,
    /// No value may repeat.
    #[serde(default)]
    pub unique: bool,
    #[serde(default)]
    pub primary_key: bool,
    #[serde(default)]
    pub primary_key_position: Option<i64>,
    #[serde(default)]
    pub partitioned: bool,
    #[serde(default)]
    pub partition_key_position: Option<i64>,
    /// `pii`, `confidential`, `restricted`, `public`, ... (policies can mask by it).
    #[serde(default)]
    pub classification: Option<String>,
    #[serde(default)]
    pub critical_data_element: bool,
    #[serde(default)]
    pub encrypted_name: Option<String>,
    #[serde(default)]
    pub transform_source_objects: Vec<String>,
    #[serde(default)]
    pub transform_logic: Option<String>,
    #[serde(default)]
    pub transform_description: Option<String>,
    #[serde(default)]
    pub examples: Vec<Value>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub custom_properties: Vec<CustomPropertyFile>,
    #[serde(default)]
    pub authoritative_definitions: Vec<Value>,
    #[serde(default)]
    pub relationships: Vec<Value>,
    /// Rules on this column.
    #[serde(default)]
    pub quality: Vec<QualityFile>,
}

/// A quality rule.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct QualityFile {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// `library` (default when `metric` is set), `sql`, `text` or `custom`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// `nullValues`, `missingValues`, `invalidValues`, `duplicateValues` or `rowCount`.
    #[serde(default)]
    pub metric: Option<String>,
    /// ODCS 3.0's name of `metric`; deprecated.
    #[serde(default)]
    pub rule: Option<String>,
    /// `validValues`, `pattern`, `missingValues`, `properties`.
    #[serde(default)]
    pub arguments: Option<Value>,
    /// SQL returning one number (`type: sql`).
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub must_be: Option<Value>,
    #[serde(default)]
    pub must_not_be: Option<Value>,
    #[serde(default)]
    pub must_be_greater_than: Option<f64>,
    #[serde(default)]
    pub must_be_greater_or_equal_to: Option<f64>,
    #[serde(default)]
    pub must_be_less_than: Option<f64>,
    #[serde(default)]
    pub must_be_less_or_equal_to: Option<f64>,
    #[serde(default)]
    pub must_be_between: Option<Vec<f64>>,
    #[serde(default)]
    pub must_not_be_between: Option<Vec<f64>>,
    /// `rows` (default) or `percent`.
    #[serde(default)]
    pub unit: Option<String>,
    /// `error` (default: the publish is blocked), `warning` or `info` (recorded only).
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub dimension: Option<String>,
    #[serde(default)]
    pub business_impact: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub schedule: Option<String>,
    #[serde(default)]
    pub scheduler: Option<String>,
    #[serde(default)]
    pub engine: Option<String>,
    #[serde(default)]
    pub implementation: Option<Value>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub custom_properties: Vec<CustomPropertyFile>,
    #[serde(default)]
    pub authoritative_definitions: Vec<Value>,
}

/// A service level.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct SlaPropertyFile {
    #[serde(default)]
    pub id: Option<String>,
    /// `latency` (the product's freshness), `frequency`, `availability`, `retention`, ...
    pub property: String,
    pub value: Value,
    #[serde(default)]
    pub value_ext: Option<Value>,
    /// `d`/`day`/`days`, `h`/`hr`/`hours`, `m`/`min`/`minutes`, `s`, `w`, `y`, `percent`, ...
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub element: Option<String>,
    #[serde(default)]
    pub driver: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// `cron`: with `schedule` on the `frequency` property, `meshql serve` runs the product's
    /// node on that schedule.
    #[serde(default)]
    pub scheduler: Option<String>,
    #[serde(default)]
    pub schedule: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct RoleFile {
    #[serde(default)]
    pub id: Option<String>,
    pub role: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub access: Option<String>,
    #[serde(default)]
    pub first_level_approvers: Option<String>,
    #[serde(default)]
    pub second_level_approvers: Option<String>,
    #[serde(default)]
    pub custom_properties: Vec<CustomPropertyFile>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct CustomPropertyFile {
    #[serde(default)]
    pub id: Option<String>,
    pub property: String,
    pub value: Value,
    #[serde(default)]
    pub description: Option<String>,
}

/// `MAJOR.MINOR.PATCH` (with an optional `-pre` suffix, ignored in comparisons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl Version {
    pub fn parse(s: &str) -> Option<Self> {
        let core = s.split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let v = Self {
            major: parts.next()?.parse().ok()?,
            minor: parts.next()?.parse().ok()?,
            patch: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(v)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A column the contract documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContractColumn {
    pub name: String,
    #[serde(default)]
    pub logical_type: Option<String>,
    #[serde(default)]
    pub physical_type: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub unique: bool,
    #[serde(default)]
    pub primary_key: bool,
    #[serde(default)]
    pub primary_key_position: Option<i64>,
    #[serde(default)]
    pub classification: Option<String>,
}

/// How much a failing rule matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The publish is blocked.
    Error,
    /// Recorded; the data is published.
    Warning,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// What a rule measures.
#[derive(Debug, Clone, PartialEq)]
pub enum Measure {
    NullValues {
        column: String,
    },
    MissingValues {
        column: String,
        missing: Vec<Value>,
    },
    InvalidValues {
        column: String,
        valid: Vec<Value>,
        pattern: Option<String>,
    },
    DuplicateValues {
        columns: Vec<String>,
    },
    RowCount,
    /// SQL returning one number; placeholders already replaced by `{object}`.
    Sql {
        query: String,
    },
    /// `text` and `custom` rules: documented, not run by meshql.
    NotRun {
        kind: String,
    },
}

/// The operator a measured value must satisfy.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Equal(f64),
    NotEqual(f64),
    Greater(f64),
    GreaterOrEqual(f64),
    Less(f64),
    LessOrEqual(f64),
    Between(f64, f64),
    NotBetween(f64, f64),
}

impl Condition {
    pub fn holds(&self, v: f64) -> bool {
        match *self {
            Condition::Equal(x) => v == x,
            Condition::NotEqual(x) => v != x,
            Condition::Greater(x) => v > x,
            Condition::GreaterOrEqual(x) => v >= x,
            Condition::Less(x) => v < x,
            Condition::LessOrEqual(x) => v <= x,
            Condition::Between(a, b) => v >= a && v <= b,
            Condition::NotBetween(a, b) => v < a || v > b,
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Equal(x) => write!(f, "mustBe {x}"),
            Condition::NotEqual(x) => write!(f, "mustNotBe {x}"),
            Condition::Greater(x) => write!(f, "mustBeGreaterThan {x}"),
            Condition::GreaterOrEqual(x) => write!(f, "mustBeGreaterOrEqualTo {x}"),
            Condition::Less(x) => write!(f, "mustBeLessThan {x}"),
            Condition::LessOrEqual(x) => write!(f, "mustBeLessOrEqualTo {x}"),
            Condition::Between(a, b) => write!(f, "mustBeBetween [{a}, {b}]"),
            Condition::NotBetween(a, b) => write!(f, "mustNotBeBetween [{a}, {b}]"),
        }
    }
}

/// A quality rule, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// `id`, else `name`, else a name made from the metric and the column.
    pub name: String,
    pub measure: Measure,
    /// `None` for rules that are not run.
    pub condition: Option<Condition>,
    /// Measure in percent of the rows instead of rows.
    pub percent: bool,
    pub severity: Severity,
    /// Where the rule is written.
    pub line: usize,
    pub column: usize,
}

/// A validated contract.
#[derive(Debug, Clone)]
pub struct Contract {
    pub file: PathBuf,
    pub id: String,
    pub name: Option<String>,
    pub version: Version,
    /// As written, with any pre-release suffix.
    pub version_text: String,
    pub status: String,
    pub description: Option<String>,
    pub dataset: DatasetName,
    /// The team's name, when the contract names one.
    pub team: Option<String>,
    pub columns: Vec<ContractColumn>,
    pub rules: Vec<Rule>,
    /// Largest age of the latest publish before the product is stale.
    pub latency: Option<Duration>,
    /// How often the product is refreshed, as declared.
    pub frequency: Option<Duration>,
    /// Cron schedule of the product's node (on the `frequency` service level).
    pub schedule: Option<String>,
    pub availability: Option<String>,
    /// Where `physicalName` is written, for errors about the dataset.
    pub dataset_line: usize,
    pub dataset_column: usize,
    pub version_line: usize,
    pub version_column: usize,
    /// Hash of the file: a changed contract re-runs its product's node.
    pub fingerprint: String,
}

impl Contract {
    /// A service level summary: `latency 1d, frequency 1d, availability 99.9%`.
    pub fn sla_text(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(l) = self.latency {
            parts.push(format!("latency {}", human(l)));
        }
        if let Some(f) = self.frequency {
            parts.push(format!("frequency {}", human(f)));
        }
        if let Some(a) = &self.availability {
            parts.push(format!("availability {a}"));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// `fresh`, `stale`, `unpublished` (never published) or `no_sla` (no latency declared).
pub fn freshness(
    latency: Option<Duration>,
    last_publish: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> &'static str {
    match (latency, last_publish) {
        (None, _) => "no_sla",
        (Some(_), None) => "unpublished",
        (Some(latency), Some(t)) => {
            let age = now
                .signed_duration_since(t)
                .to_std()
                .unwrap_or(Duration::ZERO);
            if age > latency { "stale" } else { "fresh" }
        }
    }
}

/// `90000s` as `1d 1h`.
pub fn human(d: Duration) -> String {
    let mut s = d.as_secs();
    let mut out = Vec::new();
    for (unit, secs) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if s >= secs {
            out.push(format!("{}{unit}", s / secs));
            s %= secs;
        }
    }
    if out.is_empty() {
        "0s".into()
    } else {
        out.join(" ")
    }
}

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
                        if let Err(msg) = super::parse_schedule(s) {
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

/// The query with `{object}` bound to `table` (a SQL identifier).
pub fn bind_object(query: &str, table: &str) -> String {
    query.replace("{object}", table)
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
