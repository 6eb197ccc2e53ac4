//! Metadata listings in Flight SQL's shapes: catalogs (domains), schemas (layers), tables
//! (datasets), table types and keys. What they hold comes from the query service's governed
//! listings; this file only encodes it.

use std::sync::Arc;

use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetTableTypes,
    CommandGetTables, ProstMessageExt,
};
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use datafusion::arrow::array::{Int32Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use prost::Message;

use super::state::FlightSql;
use super::wire::DoGetStream;
use super::wire::{one_batch, wire_schema};
use crate::error::{Error, Result};
use crate::service::{Call, TableFilter};

/// Table type of every mesh dataset.
const TABLE_TYPE: &str = "TABLE";

/// A FlightInfo whose single endpoint's ticket is the command itself (listings are cheap and
/// deterministic, so DoGet recomputes them).
pub fn flight_info<C: ProstMessageExt>(
    command: &C,
    schema: SchemaRef,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo> {
    let ticket = Ticket::new(command.as_any().encode_to_vec());
    Ok(FlightInfo::new()
        .try_with_schema(&schema)?
        .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
        .with_descriptor(descriptor)
        .with_ordered(true))
}

pub fn catalogs(flight: &FlightSql, call: &Call, q: CommandGetCatalogs) -> Result<DoGetStream> {
    let mut builder = q.into_builder();
    for name in flight.service.catalogs(call)? {
        builder.append(name);
    }
    one_batch(builder.build())
}

pub fn schemas(flight: &FlightSql, call: &Call, q: CommandGetDbSchemas) -> Result<DoGetStream> {
    // The builder applies the command's catalog and pattern filters.
    let mut builder = q.into_builder();
    for (domain, layer) in flight.service.schemas(call)? {
        builder.append(domain, layer);
    }
    one_batch(builder.build())
}

pub async fn tables(flight: &FlightSql, call: &Call, q: CommandGetTables) -> Result<DoGetStream> {
    let wants_tables = q.table_types.is_empty() || q.table_types.iter().any(|t| t == TABLE_TYPE);
    let filter = TableFilter {
        catalog: q.catalog.clone(),
        schema_pattern: q.db_schema_filter_pattern.clone(),
        table_pattern: q.table_name_filter_pattern.clone(),
    };
    let include_schema = q.include_schema;
    let mut builder = q.into_builder();
    let listed = match wants_tables {
        true => flight.service.tables(call, &filter, include_schema).await?,
        false => Vec::new(),
    };
    for table in listed {
        let schema = match &table.schema {
            Some(schema) => Arc::new(wire_schema(schema, flight.keep_views)),
            None => Arc::new(Schema::empty()),
        };
        let name = &table.name;
        builder
            .append(
                &name.domain,
                &name.layer,
                &name.dataset,
                TABLE_TYPE,
                &schema,
            )
            .map_err(|e| Error::internal(format!("encoding a table schema: {e}")))?;
    }
    one_batch(builder.build())
}

pub fn table_types(q: CommandGetTableTypes) -> Result<DoGetStream> {
    let mut builder = q.into_builder();
    builder.append(TABLE_TYPE);
    one_batch(builder.build())
}

/// Schema of GetPrimaryKeys results (Flight SQL protocol).
pub fn primary_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
}

/// Schema of GetImportedKeys, GetExportedKeys and GetCrossReference results.
pub fn foreign_keys_schema() -> SchemaRef {
    let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        text("pk_catalog_name", true),
        text("pk_db_schema_name", true),
        text("pk_table_name", false),
        text("pk_column_name", false),
        text("fk_catalog_name", true),
        text("fk_db_schema_name", true),
        text("fk_table_name", false),
        text("fk_column_name", false),
        Field::new("key_sequence", DataType::Int32, false),
        text("fk_key_name", true),
        text("pk_key_name", true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ]))
}

/// An empty result with `schema` (meshql declares no foreign keys).
pub fn empty(schema: SchemaRef) -> Result<DoGetStream> {
    one_batch(Ok(RecordBatch::new_empty(schema)))
}

/// GetPrimaryKeys: the `primaryKey` properties of the table's contract.
pub fn primary_keys(
    flight: &FlightSql,
    call: &Call,
    q: CommandGetPrimaryKeys,
) -> Result<DoGetStream> {
    let keys = flight.service.primary_keys(
        call,
        q.catalog.as_deref(),
        q.db_schema.as_deref(),
        &q.table,
    )?;
    let text = |f: &dyn Fn(&crate::service::KeyColumn) -> &str| {
        Arc::new(StringArray::from_iter_values(keys.iter().map(f))) as _
    };
    let batch = RecordBatch::try_new(
        primary_keys_schema(),
        vec![
            text(&|k| k.table.domain.as_str()),
            text(&|k| k.table.layer.as_str()),
            text(&|k| k.table.dataset.as_str()),
            text(&|k| k.column.as_str()),
            Arc::new(StringArray::from_iter(keys.iter().map(|_| None::<&str>))),
            Arc::new(Int32Array::from_iter_values(
                keys.iter().map(|k| k.sequence),
            )),
        ],
    )
    .map_err(|e| Error::internal(format!("encoding primary keys: {e}")))?;
    one_batch(Ok(batch))
}
