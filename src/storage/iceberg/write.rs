//! Writing Iceberg tables: the rows of a plan streamed into Parquet data files with
//! iceberg-rust's writers, then one snapshot committed through the catalog (a compare-and-swap
//! of the table's metadata pointer, or a REST commit with requirements).
//!
//! iceberg-rust 0.10 commits appends only, so the snapshot is built here from the crate's public
//! parts — a manifest of the new files, a manifest list (the new manifest alone for an
//! overwrite, beside the current snapshot's manifests for an append), the snapshot, the next
//! metadata file — and published by [`IcebergCatalog::commit`]. Until then, readers (meshql,
//! PyIceberg, Spark) see the previous snapshot; a process killed before it leaves unreferenced
//! files, never a half-committed table. A lost race is retried on the new metadata: the data
//! files stay valid.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{
    DataType, Field, Fields, Schema as ArrowSchema, SchemaRef, TimeUnit,
};
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::physical_plan::execute_stream;
use futures::TryStreamExt;
use iceberg::MetadataLocation;
use iceberg::TableIdent;
use iceberg::arrow::{arrow_schema_to_schema_auto_assign_ids, schema_to_arrow_schema};
use iceberg::spec::{
    DataFile, DataFileFormat, MAIN_BRANCH, ManifestListWriter, ManifestWriterBuilder, Operation,
    Snapshot, SnapshotReference, SnapshotRetention, SnapshotSummaryCollector, Summary,
};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};

use super::catalog::{IcebergCatalog, Next};
use crate::error::{Error, Result};

/// Commits tried before a writer gives up on a table other writers keep moving.
const COMMIT_ATTEMPTS: usize = 8;

/// The Arrow schema an Iceberg table stores for rows of `schema`: every type mapped to the one
/// Iceberg has for it (text as Utf8, binary as LargeBinary, timestamps in microseconds, small
/// and unsigned integers widened). A type Iceberg cannot hold is the user's error, named.
pub fn storable_schema(schema: &ArrowSchema) -> Result<ArrowSchema> {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| storable_field(f, f.name()))
        .collect::<Result<_>>()?;
    Ok(ArrowSchema::new(fields))
}

fn storable_field(field: &Field, column: &str) -> Result<Field> {
    Ok(Field::new(
        field.name(),
        storable_type(field.data_type(), column)?,
        field.is_nullable(),
    ))
}

fn storable_type(data_type: &DataType, column: &str) -> Result<DataType> {
    use DataType as D;
    let micros = |tz: &Option<Arc<str>>| {
        D::Timestamp(TimeUnit::Microsecond, tz.as_ref().map(|_| "+00:00".into()))
    };
    Ok(match data_type {
        D::Boolean | D::Int32 | D::Int64 | D::Float32 | D::Float64 | D::Date32 | D::Utf8 => {
            data_type.clone()
        }
        D::Int8 | D::Int16 | D::UInt8 | D::UInt16 => D::Int32,
        D::UInt32 | D::UInt64 => D::Int64,
        D::Float16 => D::Float32,
        D::Utf8View | D::LargeUtf8 => D::Utf8,
        D::Binary | D::BinaryView | D::LargeBinary => D::LargeBinary,
        D::FixedSizeBinary(n) => D::FixedSizeBinary(*n),
        D::Date64 => D::Date32,
        D::Time32(_) | D::Time64(_) => D::Time64(TimeUnit::Microsecond),
        D::Timestamp(_, tz) => micros(tz),
        D::Decimal32(p, s) | D::Decimal64(p, s) | D::Decimal128(p, s) => D::Decimal128(*p, *s),
        D::Decimal256(p, s) if *p <= 38 => D::Decimal128(*p, *s),
        D::Dictionary(_, values) => storable_type(values, column)?,
        D::List(item)
        | D::LargeList(item)
        | D::FixedSizeList(item, _)
        | D::ListView(item)
        | D::LargeListView(item) => D::List(Arc::new(storable_field(item, column)?)),
        D::Struct(fields) => D::Struct(Fields::from(
            fields
                .iter()
                .map(|f| storable_field(f, column))
                .collect::<Result<Vec<_>>>()?,
        )),
        D::Map(entries, sorted) => D::Map(Arc::new(storable_field(entries, column)?), *sorted),
        other => {
            return Err(Error::user(format!(
                "column `{column}` is of type {other}, which an Iceberg table cannot hold; cast it \
                 (e.g. to BIGINT, DOUBLE, DECIMAL(38, s), VARCHAR or TIMESTAMP)"
            )));
        }
    })
}

/// Whether rows of `storable` can be written as they are into a table of `current`: the same
/// columns with the same types, where a column the table has as optional may come non-null.
pub fn same_columns(storable: &ArrowSchema, current: &ArrowSchema) -> bool {
    storable.fields().len() == current.fields().len()
        && storable
            .fields()
            .iter()
            .zip(current.fields())
            .all(|(new, old)| {
                new.name() == old.name()
                    && equal_types(new.data_type(), old.data_type())
                    && (old.is_nullable() || !new.is_nullable())
            })
}

/// Types equal apart from field metadata (Iceberg's field ids) and names of list items.
fn equal_types(a: &DataType, b: &DataType) -> bool {
    use DataType as D;
    match (a, b) {
        (D::List(x), D::List(y)) => equal_types(x.data_type(), y.data_type()),
        (D::Map(x, _), D::Map(y, _)) => equal_types(x.data_type(), y.data_type()),
        (D::Struct(x), D::Struct(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|(f, g)| f.name() == g.name() && equal_types(f.data_type(), g.data_type()))
        }
        _ => a == b,
    }
}

/// An Iceberg schema for `storable` whose field ids all come after `last_column_id` (a replaced
/// table's new columns never reuse the ids of its old ones).
pub fn fresh_schema(storable: &ArrowSchema, last_column_id: i32) -> Result<iceberg::spec::Schema> {
    let numbered = schema_to_arrow_schema(&arrow_schema_to_schema_auto_assign_ids(storable)?)?;
    let shifted: Vec<Field> = numbered
        .fields()
        .iter()
        .map(|f| shift_ids(f, last_column_id))
        .collect();
    Ok(iceberg::arrow::arrow_schema_to_schema(&ArrowSchema::new(
        shifted,
    ))?)
}

/// The key of a field's Iceberg id in Arrow field metadata.
const FIELD_ID: &str = "PARQUET:field_id";

fn shift_ids(field: &Field, by: i32) -> Field {
    map_field_ids(field, &|id| id.map(|id| id + by))
}

/// `schema` without Iceberg's field ids in its fields' metadata (what clients are shown).
pub fn without_field_ids(schema: &ArrowSchema) -> ArrowSchema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| map_field_ids(f, &|_| None))
        .collect();
    ArrowSchema::new(fields)
}

/// `field` with each (nested) field's id replaced by `f(id)`; `None` drops it.
fn map_field_ids(field: &Field, f: &dyn Fn(Option<i32>) -> Option<i32>) -> Field {
    use DataType as D;
    let mut metadata = field.metadata().clone();
    let id = metadata
        .remove(FIELD_ID)
        .and_then(|v| v.parse::<i32>().ok());
    if let Some(id) = f(id) {
        metadata.insert(FIELD_ID.to_string(), id.to_string());
    }
    let data_type = match field.data_type() {
        D::List(item) => D::List(Arc::new(map_field_ids(item, f))),
        D::LargeList(item) => D::LargeList(Arc::new(map_field_ids(item, f))),
        D::FixedSizeList(item, n) => D::FixedSizeList(Arc::new(map_field_ids(item, f)), *n),
        D::Map(entries, sorted) => D::Map(Arc::new(map_field_ids(entries, f)), *sorted),
        D::Struct(fields) => D::Struct(Fields::from(
            fields
                .iter()
                .map(|g| map_field_ids(g, f))
                .collect::<Vec<_>>(),
        )),
        other => other.clone(),
    };
    Field::new(field.name(), data_type, field.is_nullable()).with_metadata(metadata)
}

/// Streams the rows of `plan` into new Parquet data files of `table`, laid out by `schema` (the
/// table's schema after the commit); nothing is committed. Returns the files and their rows.
pub async fn write_files(
    table: &Table,
    schema: &iceberg::spec::SchemaRef,
    plan: LogicalPlan,
    session: &SessionState,
) -> Result<(Vec<DataFile>, u64)> {
    let target: SchemaRef = Arc::new(schema_to_arrow_schema(schema)?);
    // Snappy, as the Delta tables are written: the quickest to decode (measured against
    // Zstandard, Iceberg's own default, on TPC-H lineitem: benches/README.md).
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let parquet = ParquetWriterBuilder::new(properties, Arc::clone(schema));
    let locations = DefaultLocationGenerator::new(table.metadata())?;
    // A prefix of its own per write: file names never collide with an earlier commit's.
    let names = DefaultFileNameGenerator::new(
        uuid::Uuid::now_v7().to_string(),
        None,
        DataFileFormat::Parquet,
    );
    let rolling = RollingFileWriterBuilder::new_with_default_file_size(
        parquet,
        table.file_io().clone(),
        locations,
        names,
    );
    let mut writer = DataFileWriterBuilder::new(rolling).build(None).await?;
    let physical = session.create_physical_plan(&plan).await?;
    let mut stream = execute_stream(physical, session.task_ctx())?;
    let mut rows = 0u64;
    // Safe casts: a value the table's type cannot hold (an unsigned integer past BIGINT) fails.
    let cast = CastOptions {
        safe: false,
        ..Default::default()
    };
    while let Some(batch) = stream.try_next().await? {
        rows += batch.num_rows() as u64;
        let columns = batch
            .columns()
            .iter()
            .zip(target.fields())
            .map(|(column, field)| cast_with_options(column, field.data_type(), &cast))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        writer
            .write(RecordBatch::try_new(Arc::clone(&target), columns)?)
            .await?;
    }
    Ok((writer.close().await?, rows))
}

/// A new snapshot to commit.
pub struct Commit {
    /// `Append` keeps the current snapshot's files; `Overwrite` replaces them all.
    pub operation: Operation,
    pub files: Vec<DataFile>,
    /// The snapshot the files were computed from (a merge's), when the commit is only valid on
    /// top of it: once another writer has committed, [`commit`] answers `None` instead of
    /// replacing that writer's rows.
    pub based_on: Option<Option<i64>>,
    /// The table's schema from this snapshot on, when it changes.
    pub schema: Option<iceberg::spec::Schema>,
    /// Recorded in the snapshot's summary.
    pub properties: HashMap<String, String>,
}

/// Commits `commit` on top of `table`, retrying on the newest metadata when another writer
/// committed first. Returns the snapshot's sequence number; `None` when the commit is
/// [`Commit::based_on`] a snapshot that is no longer the current one.
pub async fn commit(
    catalog: &IcebergCatalog,
    ident: &TableIdent,
    mut table: Table,
    commit: &Commit,
) -> Result<Option<i64>> {
    for attempt in 0..COMMIT_ATTEMPTS {
        if let Some(base) = commit.based_on
            && table.metadata().current_snapshot_id() != base
        {
            return Ok(None);
        }
        let (next, sequence) = next_metadata(&table, commit, attempt).await?;
        if catalog.commit(ident, &table, &next).await? {
            return Ok(Some(sequence));
        }
        tracing::debug!(table = %ident, attempt, "Iceberg commit lost a race; retrying");
        table = catalog.load(ident).await?.ok_or_else(|| {
            Error::conflict(format!("table `{ident}` was dropped during the write"))
        })?;
    }
    Err(Error::conflict(format!(
        "table `{ident}` kept changing under {COMMIT_ATTEMPTS} commit attempts; try again"
    )))
}

/// What `commit` makes of `table` (its manifests written), and the new snapshot's sequence number.
async fn next_metadata(table: &Table, commit: &Commit, attempt: usize) -> Result<(Next, i64)> {
    let current = table.metadata_location_result()?.to_string();
    let file_io = table.file_io();
    // The new schema first: the manifest and the snapshot are written against it.
    let mut base = table.metadata().clone();
    if let Some(schema) = &commit.schema {
        base = base
            .into_builder(Some(current.clone()))
            .add_current_schema(schema.clone())?
            .build()?
            .metadata;
    }
    let schema = base.current_schema().clone();
    let spec = base.default_partition_spec().clone();
    let snapshot_id = loop {
        let id = (rand::random::<u64>() >> 1) as i64;
        if id != 0 && base.snapshot_by_id(id).is_none() {
            break id;
        }
    };
    let sequence = base.next_sequence_number();
    let parent = base.current_snapshot_id();
    let commit_id = uuid::Uuid::now_v7();
    let folder = format!("{}/metadata", base.location().trim_end_matches('/'));

    let mut manifests = Vec::new();
    if !commit.files.is_empty() {
        let output = file_io.new_output(format!("{folder}/{commit_id}-m0.avro"))?;
        let mut writer = ManifestWriterBuilder::new(
            output,
            Some(snapshot_id),
            schema.clone(),
            spec.as_ref().clone(),
        )
        .build_v2_data();
        for file in &commit.files {
            writer.add_file(file.clone(), sequence)?;
        }
        manifests.push(writer.write_manifest_file().await?);
    }
    let previous = base.current_snapshot();
    if commit.operation == Operation::Append
        && let Some(previous) = previous
    {
        let list = table.manifest_list_reader(previous).load().await?;
        manifests.extend(list.entries().iter().cloned());
    }
    let list_path = format!("{folder}/snap-{snapshot_id}-{attempt}-{commit_id}.avro");
    let mut list = ManifestListWriter::v2(
        file_io.new_output(list_path.clone())?.writer().await?,
        snapshot_id,
        parent,
        sequence,
    );
    list.add_manifests(manifests.into_iter())?;
    list.close().await?;

    let mut summary = SnapshotSummaryCollector::default();
    for file in &commit.files {
        summary.add_file(file, schema.clone(), spec.clone());
    }
    let added_rows: u64 = commit.files.iter().map(|f| f.record_count()).sum();
    let added_files = commit.files.len() as u64;
    let total = |key: &str, added: u64| -> String {
        let before = match commit.operation {
            Operation::Append => previous
                .and_then(|s| s.summary().additional_properties.get(key))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0),
            _ => 0,
        };
        (before + added).to_string()
    };
    let mut properties = commit.properties.clone();
    properties.extend(summary.build());
    properties.insert("total-records".into(), total("total-records", added_rows));
    properties.insert(
        "total-data-files".into(),
        total("total-data-files", added_files),
    );
    let snapshot = Snapshot::builder()
        .with_snapshot_id(snapshot_id)
        .with_parent_snapshot_id(parent)
        .with_sequence_number(sequence)
        .with_timestamp_ms(chrono::Utc::now().timestamp_millis())
        .with_manifest_list(list_path)
        .with_summary(Summary {
            operation: commit.operation.clone(),
            additional_properties: properties,
        })
        .with_schema_id(schema.schema_id())
        .build();
    let added_schema = commit.schema.as_ref().map(|_| schema.as_ref().clone());
    let next = base
        .into_builder(commit.schema.is_none().then_some(current.clone()))
        .add_snapshot(snapshot.clone())?
        .set_ref(
            MAIN_BRANCH,
            SnapshotReference::new(snapshot_id, SnapshotRetention::branch(None, None, None)),
        )?
        .build()?
        .metadata;
    let location = MetadataLocation::from_str(&current)?
        .with_next_version()
        .with_new_metadata(&next);
    let next = Next {
        metadata: next,
        location,
        snapshot,
        schema: added_schema,
    };
    Ok((next, sequence))
}
