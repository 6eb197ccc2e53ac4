//! mu-pipelines job files: a JSON array of job items `{"execution": [...], "destination": [...]}`
//! (a single item object is accepted too), read exactly as mu-pipelines defines them.
//!
//! Execution steps run in order; each destination receives the last step's output. Step types
//! dispatch on `type` (or `exec_type`), case-insensitively. Every problem is reported with the
//! file, line and column of the offending value and its JSON path (`$[0].execution[1].type`).
//!
//! | step | keys |
//! |---|---|
//! | `IngestCSV`, `CSVReadCommand` | `file_location`, `delimiter`, `quotes`, `additional_attributes` (Spark CSV options) |
//! | `IngestJSON`, `IngestParquet` | `file_location`, `additional_attributes` |
//! | `TransformSQL` | `sql` / `query`, or `sql_file_location` (relative to the job file); `alias` |
//! | `DestinationDefaultCatalog`, `table` | `table_name`, `mode`, `additional_attributes` (`unique_key`, `watermark`) |
//! | `DestinationCSV`, `csv` | `file_location`, `delimiter`, `quotes`, `mode`, `additional_attributes` |
//! | `DestinationParquet` | `file_location`, `partition_columns`, `compression`, `mode`, `additional_attributes` |
//! | `print` | — |

use std::path::{Path, PathBuf};

use jsonc_parser::ast::{Array, Object, ObjectProp, Value};
use jsonc_parser::common::Ranged;
use jsonc_parser::{CollectOptions, ParseOptions, parse_to_ast};
use sha2::{Digest, Sha256};

use super::diagnostic::{Diagnostic, did_you_mean};
use super::transform::{DatasetName, parse_single_select};
use super::{Dependency, is_valid_name};

/// A 1-based line and column in a job file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// Every job item of one file.
#[derive(Debug, Clone)]
pub struct JobFile {
    pub path: PathBuf,
    pub jobs: Vec<Job>,
}

/// One job item: execution steps, then destinations.
#[derive(Debug, Clone)]
pub struct Job {
    pub file: PathBuf,
    /// Index of the item in the file's array (0 for a single object).
    pub index: usize,
    pub at: Pos,
    pub steps: Vec<Step>,
    pub destinations: Vec<Destination>,
    /// Hash of the item's text and of the SQL files it reads: a changed job is rebuilt.
    pub fingerprint: String,
}

impl Job {
    /// `file#index`, how runs and errors name a job.
    pub fn label(&self) -> String {
        format!("{}#{}", self.file.display(), self.index)
    }

    /// Mesh tables the job writes, in destination order.
    pub fn outputs(&self) -> impl Iterator<Item = &DatasetName> {
        self.destinations.iter().filter_map(|d| match &d.kind {
            DestinationKind::Table { name, .. } => Some(name),
            _ => None,
        })
    }

    /// Mesh tables the job's SQL reads (every name that is not a step alias).
    pub fn dependencies(&self) -> impl Iterator<Item = &Dependency> {
        self.steps.iter().flat_map(|s| match &s.kind {
            StepKind::Sql(sql) => sql.dependencies.as_slice(),
            _ => &[],
        })
    }
}

/// One execution step.
#[derive(Debug, Clone)]
pub struct Step {
    pub at: Pos,
    /// The `type` as written.
    pub type_name: String,
    pub kind: StepKind,
}

#[derive(Debug, Clone)]
pub enum StepKind {
    Csv(CsvRead),
    Json { location: String, multi_line: bool },
    Parquet { location: String },
    Sql(SqlStep),
}

/// `IngestCSV`: a file or folder of CSV files read with Spark's CSV options.
#[derive(Debug, Clone)]
pub struct CsvRead {
    pub location: String,
    pub options: CsvOptions,
}

/// What to do with a row that does not fit (wrong number of fields, a value not of its column's
/// type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRows {
    /// Stop the step naming file, line and column of the first bad value (meshql's default).
    FailFast,
    /// Keep the row with nulls where values do not fit (Spark's default).
    Permissive,
    /// Leave the row out.
    DropMalformed,
    /// Leave the row out and write it to the `<dataset>_rejects` table.
    Reject,
}

/// Spark's CSV reader options, with Spark's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvOptions {
    pub header: bool,
    pub infer_schema: bool,
    pub delimiter: u8,
    /// `None` turns quoting off.
    pub quote: Option<u8>,
    pub escape: Option<u8>,
    pub comment: Option<u8>,
    pub null_value: String,
    /// chrono format of dates (from Spark's `dateFormat`).
    pub date_format: String,
    /// chrono format of timestamps (from `timestampFormat`); `None`: ISO 8601 forms.
    pub timestamp_format: Option<String>,
    /// Encoding label (`UTF-8`, `ISO-8859-1`, `windows-1252`, ...).
    pub encoding: String,
    pub bad_rows: BadRows,
    pub ignore_leading_whitespace: bool,
    pub ignore_trailing_whitespace: bool,
    /// Declared columns (Spark DDL in the `schema` option); values must parse as their type.
    pub schema: Option<Vec<(String, ColumnType)>>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            header: false,
            infer_schema: false,
            delimiter: b',',
            quote: Some(b'"'),
            escape: Some(b'\\'),
            comment: None,
            null_value: String::new(),
            date_format: "%Y-%m-%d".into(),
            timestamp_format: None,
            encoding: "UTF-8".into(),
            bad_rows: BadRows::FailFast,
            ignore_leading_whitespace: false,
            ignore_trailing_whitespace: false,
            schema: None,
        }
    }
}

/// Column types a CSV schema may declare or inference may find.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ColumnType {
    Int,
    Long,
    Double,
    Boolean,
    Date,
    Timestamp,
    String,
}

impl ColumnType {
    /// The Spark SQL name.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Int => "INT",
            ColumnType::Long => "BIGINT",
            ColumnType::Double => "DOUBLE",
            ColumnType::Boolean => "BOOLEAN",
            ColumnType::Date => "DATE",
            ColumnType::Timestamp => "TIMESTAMP",
            ColumnType::String => "STRING",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_uppercase().as_str() {
            "INT" | "INTEGER" | "SMALLINT" | "TINYINT" | "SHORT" | "BYTE" => ColumnType::Int,
            "BIGINT" | "LONG" => ColumnType::Long,
            "DOUBLE" | "FLOAT" | "REAL" | "DECIMAL" | "NUMERIC" => ColumnType::Double,
            "BOOLEAN" | "BOOL" => ColumnType::Boolean,
            "DATE" => ColumnType::Date,
            "TIMESTAMP" | "TIMESTAMP_LTZ" | "TIMESTAMP_NTZ" => ColumnType::Timestamp,
            "STRING" | "VARCHAR" | "CHAR" | "TEXT" => ColumnType::String,
            _ => return None,
        })
    }
}

/// `TransformSQL`: one SELECT over the previous step's output (named `alias`) and mesh tables.
#[derive(Debug, Clone)]
pub struct SqlStep {
    pub sql: String,
    /// Where the SQL came from, when it is a file.
    pub sql_file: Option<PathBuf>,
    /// Name under which the SQL reads the previous step's output. Default `input`.
    pub alias: String,
    /// Mesh tables read (`domain.layer.dataset`), with positions in the SQL.
    pub dependencies: Vec<Dependency>,
}

/// One destination.
#[derive(Debug, Clone)]
pub struct Destination {
    pub at: Pos,
    pub type_name: String,
    pub kind: DestinationKind,
}

#[derive(Debug, Clone)]
pub enum DestinationKind {
    /// A mesh table.
    Table {
        name: DatasetName,
        mode: SaveMode,
        /// Merge key (`mode: merge`).
        unique_key: Vec<String>,
        /// `append` only adds rows whose value of this column is past the table's maximum.
        watermark: Option<String>,
    },
    Csv {
        location: String,
        mode: SaveMode,
        delimiter: u8,
        quote: u8,
        /// Escape character for quotes; `None`: quotes are doubled (RFC 4180).
        escape: Option<u8>,
        header: bool,
        null_value: String,
    },
    Parquet {
        location: String,
        mode: SaveMode,
        partition_columns: Vec<String>,
        compression: String,
    },
    Print,
}

/// Spark's save modes, plus `merge` for tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveMode {
    Overwrite,
    Append,
    Ignore,
    ErrorIfExists,
    Merge,
}

impl SaveMode {
    pub fn name(self) -> &'static str {
        match self {
            SaveMode::Overwrite => "overwrite",
            SaveMode::Append => "append",
            SaveMode::Ignore => "ignore",
            SaveMode::ErrorIfExists => "errorifexists",
            SaveMode::Merge => "merge",
        }
    }
}

/// Execution step types meshql runs (lower-case) and what they are called in messages.
const STEP_TYPES: &[(&str, &str)] = &[
    ("ingestcsv", "IngestCSV"),
    ("csvreadcommand", "CSVReadCommand"),
    ("ingestjson", "IngestJSON"),
    ("ingestparquet", "IngestParquet"),
    ("transformsql", "TransformSQL"),
];

const DESTINATION_TYPES: &[(&str, &str)] = &[
    ("destinationdefaultcatalog", "DestinationDefaultCatalog"),
    ("table", "table"),
    ("destinationcsv", "DestinationCSV"),
    ("csv", "csv"),
    ("destinationparquet", "DestinationParquet"),
    ("print", "print"),
];

/// mu-pipelines step types meshql knows of but does not run.
const NOT_RUN: &[&str] = &[
    "ingestkafka",
    "kafkareadcommand",
    "kafkaread",
    "ingestjdbc",
    "jdbcread",
    "ingestrestapi",
    "streamkafkaiceberg",
    "jdbc",
    "destinationjdbc",
    "jdbcwrite",
    "postgres",
    "destinationiceberg",
];

const CSV_READ_OPTIONS: &[&str] = &[
    "header",
    "inferSchema",
    "sep",
    "delimiter",
    "quote",
    "escape",
    "comment",
    "nullValue",
    "dateFormat",
    "timestampFormat",
    "encoding",
    "charset",
    "mode",
    "ignoreLeadingWhiteSpace",
    "ignoreTrailingWhiteSpace",
    "multiLine",
    "schema",
];

const CSV_WRITE_OPTIONS: &[&str] = &["header", "sep", "delimiter", "quote", "escape", "nullValue"];

/// Parses a job file; problems go to `diags`. Table names are checked for shape only; whether
/// their domain exists is the caller's business.
pub fn parse(path: &Path, text: &str, diags: &mut Vec<Diagnostic>) -> Option<JobFile> {
    // Strict JSON first (serde_json), then the syntax tree with positions (jsonc-parser, which
    // tolerates some mistakes, such as a missing comma).
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg);
        diags.push(Diagnostic::new(
            path,
            e.line(),
            e.column(),
            format!("invalid JSON: {msg}"),
        ));
        return None;
    }
    let options = ParseOptions {
        allow_comments: false,
        allow_loose_object_property_names: false,
        allow_trailing_commas: false,
    };
    let ast = match parse_to_ast(text, &CollectOptions::default(), &options) {
        Ok(r) => r,
        Err(e) => {
            diags.push(Diagnostic::new(
                path,
                e.line_display(),
                e.column_display(),
                format!("invalid JSON: {}", e.kind()),
            ));
            return None;
        }
    };
    let mut cx = Cx {
        file: path,
        text,
        diags,
    };
    let Some(root) = ast.value else {
        cx.err(
            0,
            "$",
            "the job file is empty; expected an array of job items",
        );
        return None;
    };
    let items: Vec<(&Value, String)> = match &root {
        Value::Array(a) => a
            .elements
            .iter()
            .enumerate()
            .map(|(i, v)| (v, format!("$[{i}]")))
            .collect(),
        Value::Object(_) => vec![(&root, "$".to_string())],
        other => {
            cx.err(
                other.start(),
                "$",
                "expected an array of job items `{\"execution\": [...], \"destination\": [...]}`",
            );
            return None;
        }
    };
    let mut jobs = Vec::new();
    for (index, (value, path_str)) in items.into_iter().enumerate() {
        if let Some(job) = cx.job(index, value, &path_str) {
            jobs.push(job);
        }
    }
    Some(JobFile {
        path: path.to_path_buf(),
        jobs,
    })
}

struct Cx<'a> {
    file: &'a Path,
    text: &'a str,
    diags: &'a mut Vec<Diagnostic>,
}

impl Cx<'_> {
    fn pos(&self, offset: usize) -> Pos {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        Pos {
            line,
            column: before[line_start..].chars().count() + 1,
        }
    }

    fn err(&mut self, offset: usize, path: &str, msg: impl std::fmt::Display) {
        let p = self.pos(offset);
        self.diags.push(Diagnostic::new(
            self.file,
            p.line,
            p.column,
            format!("{path}: {msg}"),
        ));
    }

    fn object<'v, 'a>(&mut self, value: &'v Value<'a>, path: &str) -> Option<&'v Object<'a>> {
        match value {
            Value::Object(o) => Some(o),
            other => {
                self.err(other.start(), path, "expected an object");
                None
            }
        }
    }

    fn array<'v, 'a>(&mut self, value: &'v Value<'a>, path: &str) -> Option<&'v Array<'a>> {
        match value {
            Value::Array(a) => Some(a),
            other => {
                self.err(other.start(), path, "expected an array");
                None
            }
        }
    }

    fn string(&mut self, value: &Value, path: &str) -> Option<String> {
        match value {
            Value::StringLit(s) => Some(s.value.to_string()),
            other => {
                self.err(other.start(), path, "expected a string");
                None
            }
        }
    }

    /// Reports keys of `obj` outside `allowed`, listing them with a did-you-mean.
    fn known_keys(&mut self, obj: &Object, path: &str, what: &str, allowed: &[&str]) {
        for prop in &obj.properties {
            let key = prop.name.as_str();
            if !allowed.contains(&key) {
                let hint = did_you_mean(key, allowed.iter().copied())
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                self.err(
                    prop.range.start,
                    &format!("{path}.{key}"),
                    format!(
                        "unknown parameter `{key}` for {what}; expected one of: {}{hint}",
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    fn job(&mut self, index: usize, value: &Value, path: &str) -> Option<Job> {
        let obj = self.object(value, path)?;
        self.known_keys(obj, path, "a job item", &["execution", "destination"]);
        let range = value.range();
        let mut hasher = Sha256::new();
        hasher.update(&self.text.as_bytes()[range.start..range.end]);

        let mut steps = Vec::new();
        match prop(obj, "execution") {
            None => self.err(
                range.start,
                path,
                "missing `execution`: the steps producing the job's output",
            ),
            Some(p) => {
                let epath = format!("{path}.execution");
                if let Some(arr) = self.array(&p.value, &epath) {
                    if arr.elements.is_empty() {
                        self.err(arr.range.start, &epath, "a job needs at least one step");
                    }
                    for (i, v) in arr.elements.iter().enumerate() {
                        if let Some(step) = self.step(v, &format!("{epath}[{i}]"), &mut hasher) {
                            steps.push(step);
                        }
                    }
                }
            }
        }
        let mut destinations = Vec::new();
        match prop(obj, "destination") {
            None => self.err(
                range.start,
                path,
                "missing `destination`: where the job's output goes",
            ),
            Some(p) => {
                let dpath = format!("{path}.destination");
                if let Some(arr) = self.array(&p.value, &dpath) {
                    if arr.elements.is_empty() {
                        self.err(
                            arr.range.start,
                            &dpath,
                            "a job needs at least one destination",
                        );
                    }
                    for (i, v) in arr.elements.iter().enumerate() {
                        if let Some(d) = self.destination(v, &format!("{dpath}[{i}]")) {
                            destinations.push(d);
                        }
                    }
                }
            }
        }
        let fingerprint = hex(&hasher.finalize());
        Some(Job {
            file: self.file.to_path_buf(),
            index,
            at: self.pos(range.start),
            steps,
            destinations,
            fingerprint,
        })
    }

    /// The step type (`type` or `exec_type`), lower-cased, with its position.
    fn type_of(&mut self, obj: &Object, path: &str) -> Option<(String, String, usize)> {
        let p = prop(obj, "type").or_else(|| prop(obj, "exec_type"));
        let Some(p) = p else {
            self.err(obj.range.start, path, "missing `type`");
            return None;
        };
        let written = self.string(&p.value, &format!("{path}.{}", p.name.as_str()))?;
        Some((written.to_ascii_lowercase(), written, p.value.start()))
    }

    fn unsupported(
        &mut self,
        offset: usize,
        path: &str,
        written: &str,
        lower: &str,
        kinds: &[(&str, &str)],
        what: &str,
    ) {
        let supported: Vec<&str> = kinds.iter().map(|(_, n)| *n).collect();
        let msg = if NOT_RUN.contains(&lower) {
            format!(
                "the mu-pipelines {what} `{written}` is not run by meshql; supported: {}",
                supported.join(", ")
            )
        } else {
            let hint = did_you_mean(lower, kinds.iter().map(|(l, _)| *l))
                .and_then(|l| kinds.iter().find(|(k, _)| *k == l))
                .map(|(_, n)| format!("; did you mean `{n}`?"))
                .unwrap_or_default();
            format!(
                "unknown {what} `{written}`; supported: {}{hint}",
                supported.join(", ")
            )
        };
        self.err(offset, &format!("{path}.type"), msg);
    }

    fn step(&mut self, value: &Value, path: &str, hasher: &mut Sha256) -> Option<Step> {
        let obj = self.object(value, path)?;
        let (lower, written, type_at) = self.type_of(obj, path)?;
        let at = self.pos(obj.range.start);
        let with_type = |keys: &[&'static str]| -> Vec<&'static str> {
            let mut all = vec!["type", "exec_type"];
            all.extend_from_slice(keys);
            all
        };
        let kind = match lower.as_str() {
            "ingestcsv" | "csvreadcommand" => {
                self.known_keys(
                    obj,
                    path,
                    &written,
                    &with_type(&[
                        "file_location",
                        "delimiter",
                        "quotes",
                        "additional_attributes",
                    ]),
                );
                let location = self.required_string(obj, path, "file_location")?;
                let options = self.csv_read_options(obj, path);
                StepKind::Csv(CsvRead { location, options })
            }
            "ingestjson" => {
                self.known_keys(
                    obj,
                    path,
                    &written,
                    &with_type(&["file_location", "additional_attributes"]),
                );
                let location = self.required_string(obj, path, "file_location")?;
                let attrs = self.attributes(obj, path);
                let mut multi_line = false;
                for a in &attrs {
                    if a.key.eq_ignore_ascii_case("multiLine") {
                        multi_line = self.boolean(a);
                    } else {
                        self.unknown_option(a, &written, &["multiLine"]);
                    }
                }
                StepKind::Json {
                    location,
                    multi_line,
                }
            }
            "ingestparquet" => {
                self.known_keys(
                    obj,
                    path,
                    &written,
                    &with_type(&["file_location", "additional_attributes"]),
                );
                let location = self.required_string(obj, path, "file_location")?;
                for a in self.attributes(obj, path) {
                    self.unknown_option(&a, &written, &[]);
                }
                StepKind::Parquet { location }
            }
            "transformsql" => {
                self.known_keys(
                    obj,
                    path,
                    &written,
                    &with_type(&["sql", "query", "sql_file_location", "alias"]),
                );
                StepKind::Sql(self.sql_step(obj, path, hasher)?)
            }
            _ => {
                self.unsupported(
                    type_at,
                    path,
                    &written,
                    &lower,
                    STEP_TYPES,
                    "execution step",
                );
                return None;
            }
        };
        Some(Step {
            at,
            type_name: written,
            kind,
        })
    }

    fn required_string(&mut self, obj: &Object, path: &str, key: &str) -> Option<String> {
        let Some(p) = prop(obj, key) else {
            self.err(obj.range.start, path, format!("missing `{key}`"));
            return None;
        };
        let s = self.string(&p.value, &format!("{path}.{key}"))?;
        if s.trim().is_empty() {
            self.err(
                p.value.start(),
                &format!("{path}.{key}"),
                format!("`{key}` is empty"),
            );
            return None;
        }
        Some(s)
    }

    fn optional_string(&mut self, obj: &Object, path: &str, key: &str) -> Option<(String, usize)> {
        let p = prop(obj, key)?;
        let s = self.string(&p.value, &format!("{path}.{key}"))?;
        Some((s, p.value.start()))
    }

    /// `additional_attributes`: `[{"key": ..., "value": ...}]`; values may be strings, numbers or
    /// booleans.
    fn attributes(&mut self, obj: &Object, path: &str) -> Vec<Attribute> {
        let Some(p) = prop(obj, "additional_attributes") else {
            return Vec::new();
        };
        let apath = format!("{path}.additional_attributes");
        let Some(arr) = self.array(&p.value, &apath) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, v) in arr.elements.iter().enumerate() {
            let ipath = format!("{apath}[{i}]");
            let Some(o) = self.object(v, &ipath) else {
                continue;
            };
            self.known_keys(o, &ipath, "an attribute", &["key", "value"]);
            let Some(key) = self.required_string(o, &ipath, "key") else {
                continue;
            };
            let Some(vp) = prop(o, "value") else {
                self.err(o.range.start, &ipath, "missing `value`");
                continue;
            };
            let value = match &vp.value {
                Value::StringLit(s) => s.value.to_string(),
                Value::NumberLit(n) => n.value.to_string(),
                Value::BooleanLit(b) => b.value.to_string(),
                other => {
                    self.err(
                        other.start(),
                        &format!("{ipath}.value"),
                        "expected a string, number or boolean",
                    );
                    continue;
                }
            };
            let at = vp.value.start();
            out.push(Attribute {
                key,
                value,
                key_at: o.range.start,
                value_at: at,
                path: ipath,
            });
        }
        out
    }

    fn unknown_option(&mut self, a: &Attribute, what: &str, allowed: &[&str]) {
        let hint = did_you_mean(&a.key, allowed.iter().copied())
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        let list = if allowed.is_empty() {
            "none".to_string()
        } else {
            allowed.join(", ")
        };
        self.err(
            a.key_at,
            &a.path,
            format!(
                "unknown option `{}` for {what}; supported: {list}{hint}",
                a.key
            ),
        );
    }

    fn boolean(&mut self, a: &Attribute) -> bool {
        match a.value.to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => {
                self.err(
                    a.value_at,
                    &format!("{}.value", a.path),
                    format!("`{}` expects true or false, found `{}`", a.key, a.value),
                );
                false
            }
        }
    }

    /// One character option (`sep`, `quote`, ...); `allow_empty` turns an empty value into `None`.
    fn single_char(
        &mut self,
        value: &str,
        at: usize,
        path: &str,
        key: &str,
        allow_empty: bool,
    ) -> Option<u8> {
        match value.as_bytes() {
            [] if allow_empty => None,
            [b] if b.is_ascii() => Some(*b),
            _ => {
                self.err(
                    at,
                    path,
                    format!("`{key}` must be a single ASCII character, found `{value}`"),
                );
                None
            }
        }
    }

    fn csv_read_options(&mut self, obj: &Object, path: &str) -> CsvOptions {
        let mut o = CsvOptions::default();
        if let Some((d, at)) = self.optional_string(obj, path, "delimiter")
            && let Some(b) =
                self.single_char(&d, at, &format!("{path}.delimiter"), "delimiter", false)
        {
            o.delimiter = b;
        }
        if let Some((q, at)) = self.optional_string(obj, path, "quotes") {
            o.quote = self.single_char(&q, at, &format!("{path}.quotes"), "quotes", true);
        }
        for a in self.attributes(obj, path) {
            let vpath = format!("{}.value", a.path);
            match a.key.to_ascii_lowercase().as_str() {
                "header" => o.header = self.boolean(&a),
                "inferschema" => o.infer_schema = self.boolean(&a),
                "multiline" => {
                    // Quoted values may always span lines.
                    self.boolean(&a);
                }
                "ignoreleadingwhitespace" => o.ignore_leading_whitespace = self.boolean(&a),
                "ignoretrailingwhitespace" => o.ignore_trailing_whitespace = self.boolean(&a),
                "sep" | "delimiter" => {
                    let v = unescape(&a.value);
                    if let Some(b) = self.single_char(&v, a.value_at, &vpath, &a.key, false) {
                        o.delimiter = b;
                    }
                }
                "quote" => o.quote = self.single_char(&a.value, a.value_at, &vpath, "quote", true),
                "escape" => {
                    o.escape = self.single_char(&a.value, a.value_at, &vpath, "escape", true)
                }
                "comment" => {
                    o.comment = self.single_char(&a.value, a.value_at, &vpath, "comment", true)
                }
                "nullvalue" => o.null_value = a.value.clone(),
                "dateformat" => match spark_to_chrono(&a.value) {
                    Ok(f) => o.date_format = f,
                    Err(e) => self.err(a.value_at, &vpath, e),
                },
                "timestampformat" => match spark_to_chrono(&a.value) {
                    Ok(f) => o.timestamp_format = Some(f),
                    Err(e) => self.err(a.value_at, &vpath, e),
                },
                "encoding" | "charset" => {
                    if encoding_rs::Encoding::for_label(a.value.as_bytes()).is_none() {
                        self.err(
                            a.value_at,
                            &vpath,
                            format!("unknown encoding `{}`", a.value),
                        );
                    }
                    o.encoding = a.value.clone();
                }
                "mode" => {
                    o.bad_rows = match a.value.to_ascii_uppercase().as_str() {
                        "FAILFAST" => BadRows::FailFast,
                        "PERMISSIVE" => BadRows::Permissive,
                        "DROPMALFORMED" => BadRows::DropMalformed,
                        "REJECT" => BadRows::Reject,
                        _ => {
                            self.err(
                                a.value_at,
                                &vpath,
                                format!(
                                    "invalid mode `{}`; expected FAILFAST (default), PERMISSIVE, DROPMALFORMED or REJECT",
                                    a.value
                                ),
                            );
                            BadRows::FailFast
                        }
                    }
                }
                "schema" => match parse_ddl(&a.value) {
                    Ok(s) => o.schema = Some(s),
                    Err(e) => self.err(a.value_at, &vpath, e),
                },
                _ => self.unknown_option(&a, "CSV reading", CSV_READ_OPTIONS),
            }
        }
        o
    }

    fn sql_step(&mut self, obj: &Object, path: &str, hasher: &mut Sha256) -> Option<SqlStep> {
        let inline = prop(obj, "sql").or_else(|| prop(obj, "query"));
        let file = prop(obj, "sql_file_location");
        let (sql, sql_file, sql_at) = match (inline, file) {
            (Some(_), Some(f)) => {
                self.err(
                    f.range.start,
                    path,
                    "give either `sql` (or `query`) or `sql_file_location`, not both",
                );
                return None;
            }
            (Some(p), None) => {
                let sql = self.string(&p.value, &format!("{path}.{}", p.name.as_str()))?;
                (sql, None, Some(p.value.start()))
            }
            (None, Some(p)) => {
                let rel = self.string(&p.value, &format!("{path}.sql_file_location"))?;
                let base = self.file.parent().unwrap_or(Path::new("."));
                let full = base.join(&rel);
                match std::fs::read_to_string(&full) {
                    Ok(sql) => {
                        hasher.update(sql.as_bytes());
                        (sql, Some(full), None)
                    }
                    Err(e) => {
                        self.err(
                            p.value.start(),
                            &format!("{path}.sql_file_location"),
                            format!("cannot read `{}`: {e}", full.display()),
                        );
                        return None;
                    }
                }
            }
            (None, None) => {
                self.err(
                    obj.range.start,
                    path,
                    "TransformSQL needs `sql` (or `query`) or `sql_file_location`",
                );
                return None;
            }
        };
        let alias = match self.optional_string(obj, path, "alias") {
            Some((a, at)) if !is_valid_name(&a) => {
                self.err(
                    at,
                    &format!("{path}.alias"),
                    format!("invalid alias `{a}`; expected lower-case letters, digits and `_`"),
                );
                return None;
            }
            Some((a, _)) => a,
            None => "input".to_string(),
        };
        let statement = match parse_single_select(&sql) {
            Ok(s) => s,
            Err((line, column, msg)) => {
                // Inline SQL: point into the JSON string; a file: point into the file.
                match (&sql_file, sql_at) {
                    (Some(f), _) => self.diags.push(Diagnostic::new(f, line, column, msg)),
                    (None, Some(at)) => self.err(at, path, msg),
                    (None, None) => {}
                }
                return None;
            }
        };
        let mut dependencies = Vec::new();
        let tables = match table_positions(&statement) {
            Ok(t) => t,
            Err(e) => {
                self.err(
                    obj.range.start,
                    path,
                    format!("cannot resolve table names: {e}"),
                );
                return None;
            }
        };
        for (t, line, column) in tables {
            use datafusion::common::TableReference;
            match &t {
                TableReference::Bare { table } if table.as_ref() == alias => {}
                TableReference::Full { .. } => {
                    if !dependencies
                        .iter()
                        .any(|d: &Dependency| d.name == DatasetName::resolve(&t, "", ""))
                    {
                        dependencies.push(Dependency {
                            name: DatasetName::resolve(&t, "", ""),
                            line,
                            column,
                        });
                    }
                }
                other => {
                    let msg = format!(
                        "table `{other}` is neither the previous step's output (`{alias}`) nor a mesh table; \
                         name mesh tables in full as domain.layer.dataset"
                    );
                    match (&sql_file, sql_at) {
                        (Some(f), _) => self.diags.push(Diagnostic::new(f, line, column, msg)),
                        // One-line inline SQL: point at the name inside the JSON string.
                        (None, Some(at)) if line == 1 => self.err(at + column, path, msg),
                        (None, Some(at)) => self.err(at, path, msg),
                        (None, None) => {}
                    }
                }
            }
        }
        Some(SqlStep {
            sql,
            sql_file,
            alias,
            dependencies,
        })
    }

    fn destination(&mut self, value: &Value, path: &str) -> Option<Destination> {
        let obj = self.object(value, path)?;
        let (lower, written, type_at) = self.type_of(obj, path)?;
        let at = self.pos(obj.range.start);
        let keys = |extra: &[&'static str]| -> Vec<&'static str> {
            let mut all = vec!["type", "exec_type"];
            all.extend_from_slice(extra);
            all
        };
        let kind = match lower.as_str() {
            "destinationdefaultcatalog" | "table" => {
                self.known_keys(
                    obj,
                    path,
                    &written,
                    &keys(&["table_name", "mode", "additional_attributes"]),
                );
                let table = self.required_string(obj, path, "table_name")?;
                let table_at = prop(obj, "table_name")
                    .map(|p| p.value.start())
                    .unwrap_or(0);
                let name = match DatasetName::parse(&table) {
                    Some(n)
                        if is_valid_name(&n.domain)
                            && is_valid_name(&n.layer)
                            && is_valid_name(&n.dataset) =>
                    {
                        n
                    }
                    _ => {
                        self.err(
                            table_at,
                            &format!("{path}.table_name"),
                            format!(
                                "invalid table name `{table}`; expected domain.layer.dataset in lower-case letters, digits and `_`"
                            ),
                        );
                        return None;
                    }
                };
                let Some(mode_prop) = prop(obj, "mode") else {
                    self.err(
                        obj.range.start,
                        path,
                        "missing `mode`; expected overwrite, append, ignore, error, errorifexists or merge",
                    );
                    return None;
                };
                let mode_str = self.string(&mode_prop.value, &format!("{path}.mode"))?;
                let mode = self.save_mode(&mode_str, mode_prop.value.start(), path, true)?;
                let mut unique_key = Vec::new();
                let mut watermark = None;
                for a in self.attributes(obj, path) {
                    match a.key.as_str() {
                        "unique_key" => {
                            unique_key = a
                                .value
                                .split(',')
                                .map(|s| s.trim().to_string())
                                .filter(|s| !s.is_empty())
                                .collect()
                        }
                        "watermark" => watermark = Some(a.value.trim().to_string()),
                        _ => self.unknown_option(&a, &written, &["unique_key", "watermark"]),
                    }
                }
                if mode == SaveMode::Merge && unique_key.is_empty() {
                    self.err(
                        mode_prop.value.start(),
                        &format!("{path}.mode"),
                        "mode `merge` needs the merge key: add {\"key\": \"unique_key\", \"value\": \"col1,col2\"} to additional_attributes",
                    );
                }
                if watermark.is_some() && mode != SaveMode::Append {
                    self.err(
                        mode_prop.value.start(),
                        &format!("{path}.mode"),
                        "`watermark` applies to mode `append` only",
                    );
                }
                DestinationKind::Table {
                    name,
                    mode,
                    unique_key,
                    watermark,
                }
            }
            "destinationcsv" | "csv" => {
                self.known_keys(
                    obj,
                    path,
                    &written,
                    &keys(&[
                        "file_location",
                        "delimiter",
                        "quotes",
                        "mode",
                        "additional_attributes",
                    ]),
                );
                let location = self.required_string(obj, path, "file_location")?;
                let mode = self.file_mode(obj, path)?;
                let (mut delimiter, mut quote, mut escape, mut header, mut null_value) =
                    (b',', b'"', None, false, String::new());
                if let Some((d, at)) = self.optional_string(obj, path, "delimiter")
                    && let Some(b) =
                        self.single_char(&d, at, &format!("{path}.delimiter"), "delimiter", false)
                {
                    delimiter = b;
                }
                if let Some((q, at)) = self.optional_string(obj, path, "quotes")
                    && let Some(b) =
                        self.single_char(&q, at, &format!("{path}.quotes"), "quotes", false)
                {
                    quote = b;
                }
                for a in self.attributes(obj, path) {
                    let vpath = format!("{}.value", a.path);
                    match a.key.to_ascii_lowercase().as_str() {
                        "header" => header = self.boolean(&a),
                        "sep" | "delimiter" => {
                            let v = unescape(&a.value);
                            if let Some(b) = self.single_char(&v, a.value_at, &vpath, &a.key, false)
                            {
                                delimiter = b;
                            }
                        }
                        "quote" => {
                            if let Some(b) =
                                self.single_char(&a.value, a.value_at, &vpath, "quote", false)
                            {
                                quote = b;
                            }
                        }
                        "escape" => {
                            escape =
                                self.single_char(&a.value, a.value_at, &vpath, "escape", false);
                        }
                        "nullvalue" => null_value = a.value.clone(),
                        _ => self.unknown_option(&a, "CSV writing", CSV_WRITE_OPTIONS),
                    }
                }
                DestinationKind::Csv {
                    location,
                    mode,
                    delimiter,
                    quote,
                    escape,
                    header,
                    null_value,
                }
            }
            "destinationparquet" => {
                self.known_keys(
                    obj,
                    path,
                    &written,
                    &keys(&[
                        "file_location",
                        "partition_columns",
                        "compression",
                        "mode",
                        "additional_attributes",
                    ]),
                );
                let location = self.required_string(obj, path, "file_location")?;
                let mode = self.file_mode(obj, path)?;
                let mut partition_columns = Vec::new();
                if let Some(p) = prop(obj, "partition_columns") {
                    let ppath = format!("{path}.partition_columns");
                    if let Some(arr) = self.array(&p.value, &ppath) {
                        for (i, v) in arr.elements.iter().enumerate() {
                            if let Some(s) = self.string(v, &format!("{ppath}[{i}]")) {
                                partition_columns.push(s);
                            }
                        }
                    }
                }
                let compression = match self.optional_string(obj, path, "compression") {
                    Some((c, at)) => {
                        let c = c.to_ascii_lowercase();
                        const CODECS: &[&str] = &[
                            "none",
                            "uncompressed",
                            "snappy",
                            "gzip",
                            "zstd",
                            "lz4",
                            "brotli",
                        ];
                        if !CODECS.contains(&c.as_str()) {
                            self.err(
                                at,
                                &format!("{path}.compression"),
                                format!(
                                    "unknown compression `{c}`; expected one of: {}",
                                    CODECS.join(", ")
                                ),
                            );
                        }
                        c
                    }
                    None => "snappy".to_string(),
                };
                for a in self.attributes(obj, path) {
                    self.unknown_option(&a, &written, &[]);
                }
                DestinationKind::Parquet {
                    location,
                    mode,
                    partition_columns,
                    compression,
                }
            }
            "print" => {
                self.known_keys(obj, path, &written, &keys(&[]));
                DestinationKind::Print
            }
            _ => {
                self.unsupported(
                    type_at,
                    path,
                    &written,
                    &lower,
                    DESTINATION_TYPES,
                    "destination",
                );
                return None;
            }
        };
        Some(Destination {
            at,
            type_name: written,
            kind,
        })
    }

    fn save_mode(&mut self, s: &str, at: usize, path: &str, table: bool) -> Option<SaveMode> {
        let mode = match s.to_ascii_lowercase().as_str() {
            "overwrite" => SaveMode::Overwrite,
            "append" => SaveMode::Append,
            "ignore" => SaveMode::Ignore,
            "error" | "errorifexists" | "default" => SaveMode::ErrorIfExists,
            "merge" if table => SaveMode::Merge,
            _ => {
                let list = if table {
                    "overwrite, append, ignore, error, errorifexists or merge"
                } else {
                    "overwrite, append, ignore, error or errorifexists"
                };
                self.err(
                    at,
                    &format!("{path}.mode"),
                    format!("invalid mode `{s}`; expected {list}"),
                );
                return None;
            }
        };
        Some(mode)
    }

    /// `mode` of a file destination; Spark's default is to refuse an existing location.
    fn file_mode(&mut self, obj: &Object, path: &str) -> Option<SaveMode> {
        match self.optional_string(obj, path, "mode") {
            Some((m, at)) => self.save_mode(&m, at, path, false),
            None => Some(SaveMode::ErrorIfExists),
        }
    }
}

/// Tables a statement reads (CTE names excluded), each with the 1-based line and column of its
/// first mention.
fn table_positions(
    statement: &datafusion::sql::parser::Statement,
) -> Result<Vec<(datafusion::common::TableReference, usize, usize)>, String> {
    use datafusion::sql::parser::Statement as DfStatement;
    use datafusion::sql::planner::object_name_to_table_reference;
    use datafusion::sql::sqlparser::ast::{Spanned, visit_relations};
    use std::ops::ControlFlow;

    let (tables, _) = datafusion::sql::resolve::resolve_table_references(statement, true)
        .map_err(|e| e.to_string())?;
    let mut spans = Vec::new();
    if let DfStatement::Statement(inner) = statement {
        let _ = visit_relations(inner.as_ref(), |name| {
            if let Ok(r) = object_name_to_table_reference(name.clone(), true) {
                let start = name.span().start;
                spans.push((r, start.line as usize, start.column as usize));
            }
            ControlFlow::<()>::Continue(())
        });
    }
    Ok(tables
        .into_iter()
        .map(|t| {
            let (line, column) = spans
                .iter()
                .find(|(r, ..)| *r == t)
                .map(|(_, l, c)| (*l, *c))
                .unwrap_or((1, 1));
            (t, line, column)
        })
        .collect())
}

struct Attribute {
    key: String,
    value: String,
    key_at: usize,
    value_at: usize,
    path: String,
}

fn prop<'v, 'a>(obj: &'v Object<'a>, key: &str) -> Option<&'v ObjectProp<'a>> {
    obj.properties.iter().find(|p| p.name.as_str() == key)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `\t` written as two characters in a properties value means a tab, as in Spark.
fn unescape(s: &str) -> String {
    match s {
        "\\t" => "\t".into(),
        "\\u0001" => "\u{1}".into(),
        _ => s.to_string(),
    }
}

/// Turns a Spark datetime pattern (`yyyy-MM-dd HH:mm:ss.SSS`) into a chrono format string.
pub fn spark_to_chrono(pattern: &str) -> Result<String, String> {
    let mut out = String::new();
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // Quoted literal; '' is a single quote.
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '\'' {
                out.push(chars[j]);
                j += 1;
            }
            if j == i + 1 {
                out.push('\'');
            }
            i = j + 1;
            continue;
        }
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == c {
            n += 1;
        }
        let piece = match (c, n) {
            ('y', 2) => "%y",
            ('y', _) => "%Y",
            ('M', 1 | 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', _) => "%d",
            ('H', _) => "%H",
            ('h', _) => "%I",
            ('m', _) => "%M",
            ('s', _) => "%S",
            ('S', 1..=9) => {
                // A preceding `.` is part of chrono's `%.Nf`.
                if out.ends_with('.') {
                    out.pop();
                }
                out.push_str(&format!("%.{n}f"));
                i += n;
                continue;
            }
            ('a', _) => "%p",
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            ('X' | 'x', 1) => "%#z",
            ('X' | 'x' | 'Z', _) => "%:z",
            ('z', _) => "%Z",
            (c, _) if c.is_ascii_alphabetic() => {
                return Err(format!(
                    "unsupported letter `{c}` in datetime pattern `{pattern}`; supported: y M d H h m s S a E X x Z z and quoted text"
                ));
            }
            (c, _) => {
                for _ in 0..n {
                    if c == '%' {
                        out.push_str("%%");
                    } else {
                        out.push(c);
                    }
                }
                i += n;
                continue;
            }
        };
        out.push_str(piece);
        i += n;
    }
    Ok(out)
}

/// Parses a Spark DDL schema: `id INT, name STRING, amount DOUBLE`.
pub fn parse_ddl(ddl: &str) -> Result<Vec<(String, ColumnType)>, String> {
    let mut cols = Vec::new();
    // Split on commas outside parentheses (`DECIMAL(10,2)`).
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in ddl.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&ddl[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&ddl[start..]);
    for part in parts {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let mut words = part.split_whitespace();
        let (Some(name), Some(ty)) = (words.next(), words.next()) else {
            return Err(format!(
                "invalid column `{part}` in schema; expected `name TYPE`"
            ));
        };
        let name = name.trim_matches('`').to_string();
        let ty_word = ty.split('(').next().unwrap_or(ty);
        let Some(t) = ColumnType::parse(ty_word) else {
            return Err(format!(
                "unsupported type `{ty}` for column `{name}`; expected INT, BIGINT, DOUBLE, BOOLEAN, DATE, TIMESTAMP or STRING"
            ));
        };
        if cols.iter().any(|(n, _)| *n == name) {
            return Err(format!("column `{name}` is declared twice in schema"));
        }
        cols.push((name, t));
    }
    if cols.is_empty() {
        return Err("the schema declares no column".into());
    }
    Ok(cols)
}
