//! Data contracts: `catalog/<domain>/products/*.yaml`, aligned with the Open Data Contract
//! Standard (ODCS) v3.1.
//!
//! A contract makes a dataset a product: an owner, a semver version, a status, a documented
//! schema, quality rules and service levels. [`ContractFile`] follows ODCS's keys (camelCase, with
//! their nesting); [`Contract`] is the validated form the pipeline audits against.
//!
//! What meshql evaluates: the schema (names, logical and physical types, `required` → no nulls,
//! `unique`), the library metrics `nullValues`, `missingValues`, `invalidValues`,
//! `duplicateValues` and `rowCount`, and `sql` rules (`{object}` is the dataset being audited,
//! `{property}` the property a rule sits on), each with one operator (`mustBe`, `mustNotBe`,
//! `mustBeGreaterThan`, `mustBeGreaterOrEqualTo`, `mustBeLessThan`, `mustBeLessOrEqualTo`,
//! `mustBeBetween`, `mustNotBeBetween`). `text` and `custom` rules are recorded, not run.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::transform::DatasetName;

mod file;
mod quality;
mod validate;

pub use file::{
    ContractFile, CustomPropertyFile, DescriptionFile, PropertyFile, QualityFile, RoleFile,
    SchemaObjectFile, SlaPropertyFile,
};
pub use validate::validate;

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
            parts.push(format!("latency {}", crate::human::duration(l)));
        }
        if let Some(f) = self.frequency {
            parts.push(format!("frequency {}", crate::human::duration(f)));
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

/// The query with `{object}` bound to `table` (a SQL identifier).
pub fn bind_object(query: &str, table: &str) -> String {
    query.replace("{object}", table)
}
