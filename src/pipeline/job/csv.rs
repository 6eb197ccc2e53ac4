//! CSV files read with Spark's options and Spark's type inference, as a table DataFusion scans.
//!
//! Schema inference (`inferSchema`) reads every row once, as Spark does; the scan then streams
//! batches from a blocking reader thread, so a file is never held in memory (files in another
//! encoding than UTF-8 are decoded whole first). Every bad row is found with its file, line and
//! field; what happens to it is the `mode` option ([`BadRows`]).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder,
    Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;

use crate::error::{Error, Result};
use crate::spec::job::{BadRows, ColumnType, CsvOptions};

const BATCH_ROWS: usize = 8192;

/// A row that did not fit, kept for the `<dataset>_rejects` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub file: String,
    pub line: u64,
    /// 1-based field number, when one value is at fault.
    pub column: Option<usize>,
    pub error: String,
    pub record: String,
}

/// Rejected rows by (file, line): a scan that runs twice records each row once.
pub type Rejects = Arc<Mutex<BTreeMap<(String, u64), Reject>>>;

/// One or more CSV files with an inferred or declared schema.
#[derive(Debug)]
pub struct CsvSource {
    files: Vec<PathBuf>,
    options: CsvOptions,
    types: Vec<ColumnType>,
    schema: SchemaRef,
    rejects: Rejects,
}

impl CsvSource {
    /// Lists the files at `location` (a file, or a folder of files) and works out their
    /// columns: declared (`schema`), inferred (`inferSchema`) or all strings.
    pub fn open(location: &Path, options: CsvOptions) -> Result<Self> {
        let files = list_files(location)?;
        let first = files
            .first()
            .ok_or_else(|| Error::user(format!("no CSV file in {}", location.display())))?;
        let header = read_header(first, &options)?;
        let (names, types) = match &options.schema {
            Some(cols) => (
                cols.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
                cols.iter().map(|(_, t)| *t).collect::<Vec<_>>(),
            ),
            None => {
                let width = header.len();
                let names = if options.header {
                    column_names(&header)
                } else {
                    (0..width).map(|i| format!("_c{i}")).collect()
                };
                let types = if options.infer_schema {
                    let mut types = vec![None; width];
                    for f in &files {
                        infer(f, &options, &mut types)?;
                    }
                    types
                        .into_iter()
                        .map(|t| t.unwrap_or(ColumnType::String))
                        .collect()
                } else {
                    vec![ColumnType::String; width]
                };
                (names, types)
            }
        };
        let fields: Vec<Field> = names
            .iter()
            .zip(&types)
            .map(|(n, t)| Field::new(n, arrow_type(*t), true))
            .collect();
        Ok(Self {
            files,
            options,
            types,
            schema: Arc::new(Schema::new(fields)),
            rejects: Arc::default(),
        })
    }

    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// Rows left out by `mode: REJECT`, in file and line order, once the scan has run.
    pub fn rejects(&self) -> Rejects {
        Arc::clone(&self.rejects)
    }

    /// One partition per file.
    pub fn partitions(self: &Arc<Self>) -> Vec<Arc<dyn PartitionStream>> {
        (0..self.files.len())
            .map(|i| {
                Arc::new(FilePartition {
                    source: Arc::clone(self),
                    index: i,
                }) as Arc<dyn PartitionStream>
            })
            .collect()
    }
}

#[derive(Debug)]
struct FilePartition {
    source: Arc<CsvSource>,
    index: usize,
}

impl PartitionStream for FilePartition {
    fn schema(&self) -> &SchemaRef {
        &self.source.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (tx, rx) = tokio::sync::mpsc::channel::<datafusion::error::Result<RecordBatch>>(2);
        let source = Arc::clone(&self.source);
        let index = self.index;
        // The reader runs on a blocking thread; it stops as soon as the scan is dropped.
        tokio::task::spawn_blocking(move || {
            let sent = convert(&source, index, &mut |batch| {
                tx.blocking_send(Ok(batch)).is_ok()
            });
            if let Err(e) = sent {
                let _ = tx.blocking_send(Err(DataFusionError::External(Box::new(e))));
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.source.schema),
            stream,
        ))
    }
}

fn list_files(location: &Path) -> Result<Vec<PathBuf>> {
    if location.is_file() {
        return Ok(vec![location.to_path_buf()]);
    }
    let entries = std::fs::read_dir(location)
        .map_err(|e| Error::user(format!("cannot read `{}`: {e}", location.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.') || n.starts_with('_'))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The file's text as UTF-8 bytes (decoded first when the encoding is another one).
fn open_text(path: &Path, options: &CsvOptions) -> Result<Box<dyn Read + Send>> {
    let encoding = encoding_rs::Encoding::for_label(options.encoding.as_bytes())
        .ok_or_else(|| Error::user(format!("unknown encoding `{}`", options.encoding)))?;
    let read_err =
        |e: std::io::Error| Error::user(format!("cannot read `{}`: {e}", path.display()));
    if encoding == encoding_rs::UTF_8 {
        let file = std::fs::File::open(path).map_err(read_err)?;
        return Ok(Box::new(std::io::BufReader::with_capacity(1 << 16, file)));
    }
    let bytes = std::fs::read(path).map_err(read_err)?;
    let (text, _, _) = encoding.decode(&bytes);
    Ok(Box::new(std::io::Cursor::new(
        text.into_owned().into_bytes(),
    )))
}

fn reader(path: &Path, options: &CsvOptions) -> Result<csv::Reader<Box<dyn Read + Send>>> {
    let mut b = csv::ReaderBuilder::new();
    b.has_headers(false)
        .flexible(true)
        .delimiter(options.delimiter)
        .comment(options.comment)
        .escape(options.escape)
        .double_quote(true);
    match options.quote {
        Some(q) => b.quote(q),
        None => b.quoting(false),
    };
    Ok(b.from_reader(open_text(path, options)?))
}

fn read_header(path: &Path, options: &CsvOptions) -> Result<Vec<String>> {
    let mut r = reader(path, options)?;
    let mut record = csv::ByteRecord::new();
    let found = r
        .read_byte_record(&mut record)
        .map_err(|e| csv_error(path, &e))?;
    if !found {
        return Err(Error::user(format!("{} is empty", path.display())));
    }
    Ok(record
        .iter()
        .map(|f| String::from_utf8_lossy(f).trim().to_string())
        .collect())
}

/// Spark's naming: empty names become `_c<i>`; a repeated name gets its position appended.
fn column_names(header: &[String]) -> Vec<String> {
    header
        .iter()
        .enumerate()
        .map(|(i, n)| {
            if n.is_empty() {
                format!("_c{i}")
            } else if header.iter().filter(|m| *m == n).count() > 1 {
                format!("{n}{i}")
            } else {
                n.clone()
            }
        })
        .collect()
}

fn csv_error(path: &Path, e: &csv::Error) -> Error {
    let at = e
        .position()
        .map(|p| format!(":{}", p.line()))
        .unwrap_or_default();
    Error::user(format!("{}{at}: unreadable CSV: {e}", path.display()))
}

fn arrow_type(t: ColumnType) -> DataType {
    match t {
        ColumnType::Int => DataType::Int32,
        ColumnType::Long => DataType::Int64,
        ColumnType::Double => DataType::Float64,
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::Date => DataType::Date32,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ColumnType::String => DataType::Utf8,
    }
}

/// A field's text after the whitespace options, or `None` for a null.
fn field<'a>(raw: &'a str, options: &CsvOptions) -> Option<&'a str> {
    let mut v = raw;
    if options.ignore_leading_whitespace {
        v = v.trim_start();
    }
    if options.ignore_trailing_whitespace {
        v = v.trim_end();
    }
    (v != options.null_value).then_some(v)
}

/// The narrowest type of one value, in Spark's order of preference.
fn value_type(v: &str, options: &CsvOptions) -> ColumnType {
    if v.parse::<i32>().is_ok() {
        ColumnType::Int
    } else if v.parse::<i64>().is_ok() {
        ColumnType::Long
    } else if looks_numeric(v) && v.parse::<f64>().is_ok() {
        ColumnType::Double
    } else if v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false") {
        ColumnType::Boolean
    } else if NaiveDate::parse_from_str(v, &options.date_format).is_ok() {
        ColumnType::Date
    } else if parse_timestamp(v, options).is_some() {
        ColumnType::Timestamp
    } else {
        ColumnType::String
    }
}

/// Rust parses `inf` and `NaN` as floats; Spark only its own spellings of them.
fn looks_numeric(v: &str) -> bool {
    matches!(v, "NaN" | "Infinity" | "-Infinity" | "+Infinity")
        || v.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
}

fn widen(a: ColumnType, b: ColumnType) -> ColumnType {
    use ColumnType::*;
    match (a, b) {
        (x, y) if x == y => x,
        (Int, Long) | (Long, Int) => Long,
        (Int | Long, Double) | (Double, Int | Long) => Double,
        (Date, Timestamp) | (Timestamp, Date) => Timestamp,
        _ => String,
    }
}

fn infer(path: &Path, options: &CsvOptions, types: &mut [Option<ColumnType>]) -> Result<()> {
    let mut r = reader(path, options)?;
    let mut record = csv::ByteRecord::new();
    let mut first = true;
    loop {
        match r.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_error(path, &e)),
        }
        if std::mem::take(&mut first) && options.header {
            continue;
        }
        if record.len() != types.len() {
            // Malformed rows do not shape the schema.
            continue;
        }
        for (slot, raw) in types.iter_mut().zip(record.iter()) {
            if *slot == Some(ColumnType::String) {
                continue;
            }
            let Ok(text) = std::str::from_utf8(raw) else {
                continue;
            };
            let Some(v) = field(text, options) else {
                continue;
            };
            let t = value_type(v, options);
            *slot = Some(slot.map_or(t, |s| widen(s, t)));
        }
    }
    Ok(())
}

fn parse_timestamp(v: &str, options: &CsvOptions) -> Option<i64> {
    if let Some(fmt) = &options.timestamp_format {
        if fmt.contains('z') || fmt.contains("%Z") {
            return DateTime::parse_from_str(v, fmt)
                .ok()
                .map(|t| t.timestamp_micros());
        }
        return NaiveDateTime::parse_from_str(v, fmt)
            .ok()
            .map(|t| t.and_utc().timestamp_micros());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.timestamp_micros());
    }
    const FORMATS: &[&str] = &[
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ];
    FORMATS.iter().find_map(|f| {
        NaiveDateTime::parse_from_str(v, f)
            .ok()
            .map(|t| t.and_utc().timestamp_micros())
    })
}

/// Column builders for one batch.
struct Columns {
    builders: Vec<Box<dyn ArrayBuilder>>,
    rows: usize,
}

impl Columns {
    fn new(types: &[ColumnType]) -> Self {
        let builders = types
            .iter()
            .map(|t| -> Box<dyn ArrayBuilder> {
                match t {
                    ColumnType::Int => Box::new(Int32Builder::with_capacity(BATCH_ROWS)),
                    ColumnType::Long => Box::new(Int64Builder::with_capacity(BATCH_ROWS)),
                    ColumnType::Double => Box::new(Float64Builder::with_capacity(BATCH_ROWS)),
                    ColumnType::Boolean => Box::new(BooleanBuilder::with_capacity(BATCH_ROWS)),
                    ColumnType::Date => Box::new(Date32Builder::with_capacity(BATCH_ROWS)),
                    ColumnType::Timestamp => Box::new(
                        TimestampMicrosecondBuilder::with_capacity(BATCH_ROWS).with_timezone("UTC"),
                    ),
                    ColumnType::String => Box::new(StringBuilder::new()),
                }
            })
            .collect();
        Self { builders, rows: 0 }
    }

    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let arrays: Vec<ArrayRef> = self.builders.iter_mut().map(|b| b.finish()).collect();
        self.rows = 0;
        Ok(RecordBatch::try_new(Arc::clone(schema), arrays)?)
    }
}

/// A typed value, or why it does not fit its column.
enum Value {
    Null,
    Int(i32),
    Long(i64),
    Double(f64),
    Bool(bool),
    Date(i32),
    Timestamp(i64),
    Text(String),
}

fn parse_value(v: Option<&str>, t: ColumnType, options: &CsvOptions) -> Option<Value> {
    let Some(v) = v else {
        return Some(Value::Null);
    };
    Some(match t {
        ColumnType::Int => Value::Int(v.trim().parse().ok()?),
        ColumnType::Long => Value::Long(v.trim().parse().ok()?),
        ColumnType::Double => {
            let v = v.trim();
            if !looks_numeric(v) {
                return None;
            }
            Value::Double(v.parse().ok()?)
        }
        ColumnType::Boolean => match v.trim().to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return None,
        },
        ColumnType::Date => {
            let d = NaiveDate::parse_from_str(v.trim(), &options.date_format).ok()?;
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
            Value::Date((d - epoch).num_days() as i32)
        }
        ColumnType::Timestamp => Value::Timestamp(parse_timestamp(v.trim(), options)?),
        ColumnType::String => Value::Text(v.to_string()),
    })
}

fn append(builder: &mut dyn ArrayBuilder, value: Value) {
    let any = builder.as_any_mut();
    macro_rules! put {
        ($b:ty, $v:expr) => {
            if let Some(b) = any.downcast_mut::<$b>() {
                b.append_option($v);
            }
        };
    }
    match value {
        Value::Int(v) => put!(Int32Builder, Some(v)),
        Value::Long(v) => put!(Int64Builder, Some(v)),
        Value::Double(v) => put!(Float64Builder, Some(v)),
        Value::Bool(v) => put!(BooleanBuilder, Some(v)),
        Value::Date(v) => put!(Date32Builder, Some(v)),
        Value::Timestamp(v) => put!(TimestampMicrosecondBuilder, Some(v)),
        Value::Text(v) => put!(StringBuilder, Some(v)),
        Value::Null => {
            put!(Int32Builder, None::<i32>);
            put!(Int64Builder, None::<i64>);
            put!(Float64Builder, None::<f64>);
            put!(BooleanBuilder, None::<bool>);
            put!(Date32Builder, None::<i32>);
            put!(TimestampMicrosecondBuilder, None::<i64>);
            put!(StringBuilder, None::<String>);
        }
    }
}

/// Reads file `index` of `source` into batches handed to `emit` (which answers whether to go
/// on). Bad rows follow `mode`.
fn convert(
    source: &CsvSource,
    index: usize,
    emit: &mut dyn FnMut(RecordBatch) -> bool,
) -> Result<()> {
    let path = &source.files[index];
    let options = &source.options;
    let shown = path.display().to_string();
    let mut r = reader(path, options)?;
    let mut record = csv::ByteRecord::new();
    let mut columns = Columns::new(&source.types);
    let mut first = true;
    let width = source.types.len();
    let mut values: Vec<Value> = Vec::with_capacity(width);
    loop {
        match r.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_error(path, &e)),
        }
        if std::mem::take(&mut first) && options.header {
            continue;
        }
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        values.clear();
        // The first problem of the row: (1-based field, message).
        let mut problem: Option<(Option<usize>, String)> = None;
        if record.len() != width {
            problem = Some((
                Some(record.len().min(width) + 1),
                format!("expected {width} fields, found {}", record.len()),
            ));
        }
        for (i, t) in source.types.iter().enumerate() {
            let raw = record.get(i);
            let text = match raw.map(std::str::from_utf8) {
                None => None,
                Some(Ok(s)) => field(s, options),
                Some(Err(_)) => {
                    problem.get_or_insert((
                        Some(i + 1),
                        format!("field {} is not valid {}", i + 1, options.encoding),
                    ));
                    values.push(Value::Null);
                    continue;
                }
            };
            match parse_value(text, *t, options) {
                Some(v) => values.push(v),
                None => {
                    let name = source.schema.field(i).name();
                    problem.get_or_insert((
                        Some(i + 1),
                        format!(
                            "column {} (`{name}`): `{}` is not a valid {}",
                            i + 1,
                            text.unwrap_or_default(),
                            t.name()
                        ),
                    ));
                    values.push(Value::Null);
                }
            }
        }
        if let Some((column, message)) = problem {
            match options.bad_rows {
                BadRows::FailFast => {
                    let col = column.map(|c| format!(":{c}")).unwrap_or_default();
                    return Err(Error::user(format!(
                        "{shown}:{line}{col}: bad row: {message} (set the CSV option mode to \
                         PERMISSIVE, DROPMALFORMED or REJECT to load the other rows)"
                    )));
                }
                BadRows::DropMalformed => continue,
                BadRows::Reject => {
                    let text: Vec<String> = record
                        .iter()
                        .map(|f| String::from_utf8_lossy(f).into_owned())
                        .collect();
                    let sep = (options.delimiter as char).to_string();
                    if let Ok(mut rejects) = source.rejects.lock() {
                        rejects.insert(
                            (shown.clone(), line),
                            Reject {
                                file: shown.clone(),
                                line,
                                column,
                                error: message,
                                record: text.join(&sep),
                            },
                        );
                    }
                    continue;
                }
                BadRows::Permissive => {}
            }
        }
        for (b, v) in columns.builders.iter_mut().zip(values.drain(..)) {
            append(b.as_mut(), v);
        }
        columns.rows += 1;
        if columns.rows == BATCH_ROWS && !emit(columns.finish(&source.schema)?) {
            return Ok(());
        }
    }
    if columns.rows > 0 {
        emit(columns.finish(&source.schema)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inference_follows_spark() {
        let o = CsvOptions::default();
        assert_eq!(value_type("12", &o), ColumnType::Int);
        assert_eq!(value_type("12345678901", &o), ColumnType::Long);
        assert_eq!(value_type("1.5", &o), ColumnType::Double);
        assert_eq!(value_type("inf", &o), ColumnType::String);
        assert_eq!(value_type("TRUE", &o), ColumnType::Boolean);
        assert_eq!(value_type("2024-02-29", &o), ColumnType::Date);
        assert_eq!(value_type("2024-02-29 10:00:00", &o), ColumnType::Timestamp);
        assert_eq!(
            widen(ColumnType::Int, ColumnType::Double),
            ColumnType::Double
        );
        assert_eq!(
            widen(ColumnType::Int, ColumnType::Boolean),
            ColumnType::String
        );
        assert_eq!(
            column_names(&["a".into(), "".into(), "a".into()]),
            ["a0", "_c1", "a2"]
        );
    }
}
