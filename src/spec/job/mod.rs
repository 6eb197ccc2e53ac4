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

mod parse;
mod spark;

use std::path::PathBuf;

pub use parse::parse;
pub use spark::{parse_ddl, spark_to_chrono};

use super::Dependency;
use super::transform::DatasetName;

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
