//! The `execution` steps of a job item: ingest steps (CSV, JSON, Parquet) and SQL transforms.

use sha2::Sha256;

use super::*;

impl Cx<'_> {
    pub(super) fn step(&mut self, value: &Value, path: &str, hasher: &mut Sha256) -> Option<Step> {
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

    pub(super) fn csv_read_options(&mut self, obj: &Object, path: &str) -> CsvOptions {
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

    pub(super) fn sql_step(
        &mut self,
        obj: &Object,
        path: &str,
        hasher: &mut Sha256,
    ) -> Option<SqlStep> {
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
}
