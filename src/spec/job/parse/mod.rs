//! Reading a job file: strict JSON, then every item, step and destination with its position.

mod destinations;
mod steps;

use std::path::Path;

use jsonc_parser::ast::{Array, Object, ObjectProp, Value};
use jsonc_parser::common::Ranged;
use jsonc_parser::{CollectOptions, ParseOptions, parse_to_ast};
use sha2::{Digest, Sha256};

use super::spark::{parse_ddl, spark_to_chrono};
use super::{
    BadRows, CsvOptions, CsvRead, Destination, DestinationKind, Job, JobFile, Pos, SaveMode,
    SqlStep, Step, StepKind,
};
use crate::spec::diagnostic::{Diagnostic, did_you_mean};
use crate::spec::transform::{DatasetName, parse_single_select};
use crate::spec::{Dependency, is_valid_name};

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
