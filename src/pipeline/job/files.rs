//! File destinations, laid out as Spark writes them: `file_location` is a folder of
//! `part-*.csv` / `*.parquet` files with a `_SUCCESS` marker.
//!
//! `overwrite` writes a new folder aside and swaps it in, so readers see the old files or the new
//! ones; `append` adds a part file that appears whole (written under a temporary name first).

use std::path::{Path, PathBuf};

use datafusion::config::TableParquetOptions;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::DataFrame;
use futures::StreamExt;

use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::spec::job::SaveMode;

/// How CSV files are written.
#[derive(Debug, Clone)]
pub struct CsvFormat {
    pub delimiter: u8,
    pub quote: u8,
    pub escape: Option<u8>,
    pub header: bool,
    pub null_value: String,
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!("cannot write {}: {e}", path.display()),
    )
}

/// Where to write, given the mode; `None`: nothing to do (`ignore` on an existing location).
enum Target {
    /// A new folder written aside, swapped in at the end.
    Replace { tmp: PathBuf },
    /// New files inside the existing folder.
    Add,
}

fn target(path: &Path, mode: SaveMode) -> Result<Option<Target>> {
    let exists = path.exists();
    let aside = || {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        path.with_file_name(format!(".{name}.meshql-{}", uuid::Uuid::now_v7()))
    };
    Ok(match mode {
        SaveMode::Ignore if exists => None,
        SaveMode::ErrorIfExists if exists => {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "{} already exists and the mode is errorifexists (Spark's default); set `mode` to overwrite, append or ignore",
                    path.display()
                ),
            ));
        }
        SaveMode::Append if exists => Some(Target::Add),
        _ => Some(Target::Replace { tmp: aside() }),
    })
}

/// Moves the folder written aside into place (replacing what was there).
fn swap_in(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::write(tmp.join("_SUCCESS"), b"").map_err(|e| io_error(tmp, e))?;
    if path.exists() {
        let old = tmp.with_extension("old");
        std::fs::rename(path, &old).map_err(|e| io_error(path, e))?;
        std::fs::rename(tmp, path).map_err(|e| io_error(path, e))?;
        if old.is_dir() {
            std::fs::remove_dir_all(&old).map_err(|e| io_error(&old, e))?;
        } else {
            std::fs::remove_file(&old).map_err(|e| io_error(&old, e))?;
        }
    } else {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
        }
        std::fs::rename(tmp, path).map_err(|e| io_error(path, e))?;
    }
    Ok(())
}

/// Writes the rows of `plan` as CSV under `path`; returns the row count.
pub async fn write_csv(
    engine: &Engine,
    plan: LogicalPlan,
    path: &Path,
    mode: SaveMode,
    format: &CsvFormat,
) -> Result<u64> {
    let Some(target) = target(path, mode)? else {
        return Ok(0);
    };
    let dir = match &target {
        Target::Replace { tmp } => tmp.clone(),
        Target::Add => path.to_path_buf(),
    };
    std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
    let part = format!("part-{}", uuid::Uuid::now_v7());
    let writing = dir.join(format!(".{part}.csv.tmp"));
    let result = write_csv_file(engine, plan, &writing, format).await;
    let rows = match result {
        Ok(rows) => rows,
        Err(e) => {
            let _ = match &target {
                Target::Replace { tmp } => std::fs::remove_dir_all(tmp),
                Target::Add => std::fs::remove_file(&writing),
            };
            return Err(e);
        }
    };
    let done = dir.join(format!("{part}.csv"));
    std::fs::rename(&writing, &done).map_err(|e| io_error(&done, e))?;
    if let Target::Replace { tmp } = &target {
        swap_in(tmp, path)?;
    }
    Ok(rows)
}

async fn write_csv_file(
    engine: &Engine,
    plan: LogicalPlan,
    file: &Path,
    format: &CsvFormat,
) -> Result<u64> {
    let state = engine.session();
    let (_, mut stream) = engine.execute_plan(plan, &state).await?;
    let out = std::fs::File::create(file).map_err(|e| io_error(file, e))?;
    let mut builder = datafusion::arrow::csv::WriterBuilder::new()
        .with_header(format.header)
        .with_delimiter(format.delimiter)
        .with_quote(format.quote)
        .with_null(format.null_value.clone());
    if let Some(e) = format.escape {
        builder = builder.with_escape(e).with_double_quote(false);
    }
    let mut writer = builder.build(std::io::BufWriter::new(out));
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        writer.write(&batch)?;
    }
    let mut inner = writer.into_inner();
    std::io::Write::flush(&mut inner).map_err(|e| io_error(file, e))?;
    Ok(rows)
}

/// Writes the rows of `plan` as Parquet under `path` (Hive-style folders per
/// `partition_columns`); returns the row count.
pub async fn write_parquet(
    engine: &Engine,
    plan: LogicalPlan,
    path: &Path,
    mode: SaveMode,
    partition_columns: &[String],
    compression: &str,
) -> Result<u64> {
    let Some(target) = target(path, mode)? else {
        return Ok(0);
    };
    let codec = match compression {
        "none" | "uncompressed" => "uncompressed",
        "gzip" => "gzip(6)",
        "zstd" => "zstd(3)",
        "brotli" => "brotli(4)",
        "lz4" => "lz4_raw",
        other => other,
    };
    let mut options = TableParquetOptions::default();
    options.global.compression = Some(codec.to_string());
    let (dir, cleanup) = match &target {
        Target::Replace { tmp } => (tmp.clone(), Some(tmp.clone())),
        Target::Add => (path.to_path_buf(), None),
    };
    std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
    let frame = DataFrame::new(engine.session(), plan);
    let write = DataFrameWriteOptions::new().with_partition_by(partition_columns.to_vec());
    // A trailing slash makes the destination a folder.
    let url = format!("{}/", dir.display());
    let result = frame.write_parquet(&url, write, Some(options)).await;
    let batches = match result {
        Ok(b) => b,
        Err(e) => {
            if let Some(tmp) = cleanup {
                let _ = std::fs::remove_dir_all(tmp);
            }
            return Err(e.into());
        }
    };
    let rows = batches
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::UInt64Array>()
                .map(|a| a.value(0))
        })
        .unwrap_or(0);
    if let Target::Replace { tmp } = &target {
        swap_in(tmp, path)?;
    }
    Ok(rows)
}
