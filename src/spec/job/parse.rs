//! Reading a job file: strict JSON, then every item, step and destination with its position.

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
