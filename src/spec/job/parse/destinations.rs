//! The `destination` steps of a job item: catalog tables, files and `print`.

use super::*;

impl Cx<'_> {
    pub(super) fn destination(&mut self, value: &Value, path: &str) -> Option<Destination> {
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

    pub(super) fn save_mode(
        &mut self,
        s: &str,
        at: usize,
        path: &str,
        table: bool,
    ) -> Option<SaveMode> {
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
    pub(super) fn file_mode(&mut self, obj: &Object, path: &str) -> Option<SaveMode> {
        match self.optional_string(obj, path, "mode") {
            Some((m, at)) => self.save_mode(&m, at, path, false),
            None => Some(SaveMode::ErrorIfExists),
        }
    }
}
