//! The contract file as written: ODCS v3.1's keys (camelCase, with their nesting). serde reads
//! it, schemars turns it into `schemas/contract.schema.json`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
