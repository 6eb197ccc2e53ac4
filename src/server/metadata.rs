//! Metadata listings: catalogs (domains), schemas (layers), tables (datasets), table types and
//! SQL info. Listings come from the mesh declaration; table schemas from the catalog's cache.

use std::sync::Arc;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetTableTypes, CommandGetTables,
    ProstMessageExt,
};
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use tonic::{Response, Status};

use super::service::{DoGetStream, MeshFlightSql};
use crate::catalog::{SYSTEM_CATALOG, system_schema, system_tables};
use crate::error::Error;
use crate::governance::Principal;
use crate::spec::{Action, DatasetName};
use arrow_flight::sql::CommandGetPrimaryKeys;

/// Table type of every mesh dataset.
const TABLE_TYPE: &str = "TABLE";

/// A FlightInfo whose single endpoint's ticket is the command itself (listings are cheap and
/// deterministic, so DoGet recomputes them).
pub fn flight_info<C: ProstMessageExt>(
    command: &C,
    schema: SchemaRef,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let ticket = Ticket::new(command.as_any().encode_to_vec());
    let info = FlightInfo::new()
        .try_with_schema(&schema)
        .map_err(|e| Status::from(Error::from(e)))?
        .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
        .with_descriptor(descriptor)
        .with_ordered(true);
    Ok(Response::new(info))
}

pub fn catalogs_schema(q: &CommandGetCatalogs) -> SchemaRef {
    (*q).into_builder().schema()
}

pub fn schemas_schema(q: &CommandGetDbSchemas) -> SchemaRef {
    q.clone().into_builder().schema()
}

pub fn tables_schema(q: &CommandGetTables) -> SchemaRef {
    q.clone().into_builder().schema()
}

pub fn table_types_schema(q: &CommandGetTableTypes) -> SchemaRef {
    (*q).into_builder().schema()
}

pub fn one_batch(batch: Result<RecordBatch, FlightError>) -> Result<Response<DoGetStream>, Status> {
    let batch =
        batch.map_err(|e| Status::from(Error::internal(format!("building a listing: {e}"))))?;
    let schema = batch.schema();
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures::stream::iter([Ok(batch)]))
        .map_err(|e| Status::internal(e.to_string()));
    Ok(Response::new(Box::pin(stream.boxed())))
}

/// The datasets `principal` may read: what every listing shows.
fn readable(svc: &MeshFlightSql, principal: &Principal) -> Vec<DatasetName> {
    let access = svc.access(principal);
    svc.engine
        .catalog()
        .dataset_names()
        .into_iter()
        .filter(|n| access.can(Action::Read, n))
        .collect()
}

pub fn do_get_catalogs(
    svc: &MeshFlightSql,
    principal: &Principal,
    q: CommandGetCatalogs,
) -> Result<Response<DoGetStream>, Status> {
    let mut builder = q.into_builder();
    let readable = readable(svc, principal);
    let mut names: Vec<&str> = svc
        .engine
        .mesh()
        .domains
        .iter()
        .map(|d| d.name.as_str())
        .filter(|d| readable.iter().any(|n| n.domain == *d))
        .collect();
    names.push(SYSTEM_CATALOG);
    names.sort_unstable();
    for name in names {
        builder.append(name);
    }
    one_batch(builder.build())
}

pub fn do_get_schemas(
    svc: &MeshFlightSql,
    principal: &Principal,
    q: CommandGetDbSchemas,
) -> Result<Response<DoGetStream>, Status> {
    let mut builder = q.into_builder();
    let readable = readable(svc, principal);
    let mut pairs: Vec<(&str, &str)> = svc
        .engine
        .mesh()
        .domains
        .iter()
        .flat_map(|d| d.layers.iter().map(move |l| (d.name.as_str(), l.as_str())))
        .filter(|(d, l)| readable.iter().any(|n| n.domain == *d && n.layer == *l))
        .collect();
    let system: Vec<(String, String)> = system_tables().map(|n| (n.domain, n.layer)).collect();
    pairs.extend(system.iter().map(|(c, s)| (c.as_str(), s.as_str())));
    pairs.sort_unstable();
    pairs.dedup();
    for (domain, layer) in pairs {
        builder.append(domain, layer);
    }
    one_batch(builder.build())
}

pub async fn do_get_tables(
    svc: &MeshFlightSql,
    principal: &Principal,
    q: CommandGetTables,
) -> Result<Response<DoGetStream>, Status> {
    let catalog = svc.engine.catalog();
    let access = svc.access(principal);
    let wants_table_type =
        q.table_types.is_empty() || q.table_types.iter().any(|t| t == TABLE_TYPE);
    let (cat, schema_pat, table_pat) = (
        q.catalog.clone(),
        q.db_schema_filter_pattern.clone(),
        q.table_name_filter_pattern.clone(),
    );
    let include_schema = q.include_schema;
    let mut builder = q.into_builder();
    if wants_table_type {
        for name in &catalog.dataset_names() {
            if !access.can(Action::Read, name) {
                continue;
            }
            if cat.as_deref().is_some_and(|c| c != name.domain)
                || schema_pat.as_deref().is_some_and(|p| !like(p, &name.layer))
                || table_pat
                    .as_deref()
                    .is_some_and(|p| !like(p, &name.dataset))
            {
                continue;
            }
            // Only published datasets are tables a client can query. Schemas come from the
            // catalog's schema cache: a listing opens a table's storage once, not every time.
            let schema = match catalog.schema(name).await? {
                Some(schema) => schema,
                // System tables are listed before their first write, empty.
                None if name.domain == SYSTEM_CATALOG => {
                    match system_schema(&name.layer, &name.dataset) {
                        Some(schema) => schema,
                        None => continue,
                    }
                }
                None => continue,
            };
            let schema: Arc<Schema> = if include_schema {
                wire_schema_ref(&schema, svc.engine.mesh().server.view_types)
            } else {
                Arc::new(Schema::empty())
            };
            builder
                .append(
                    &name.domain,
                    &name.layer,
                    &name.dataset,
                    TABLE_TYPE,
                    &schema,
                )
                .map_err(|e| {
                    Status::from(Error::internal(format!("encoding a table schema: {e}")))
                })?;
        }
    }
    one_batch(builder.build())
}

pub fn do_get_table_types(q: CommandGetTableTypes) -> Result<Response<DoGetStream>, Status> {
    let mut builder = q.into_builder();
    builder.append(TABLE_TYPE);
    one_batch(builder.build())
}

/// A table schema as clients will receive its columns (view types converted).
fn wire_schema_ref(schema: &Schema, keep_views: bool) -> Arc<Schema> {
    Arc::new(super::statement::wire_schema(schema, keep_views))
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
    Arc::new(Schema::new(vec![
        Field::new("pk_catalog_name", DataType::Utf8, true),
        Field::new("pk_db_schema_name", DataType::Utf8, true),
        Field::new("pk_table_name", DataType::Utf8, false),
        Field::new("pk_column_name", DataType::Utf8, false),
        Field::new("fk_catalog_name", DataType::Utf8, true),
        Field::new("fk_db_schema_name", DataType::Utf8, true),
        Field::new("fk_table_name", DataType::Utf8, false),
        Field::new("fk_column_name", DataType::Utf8, false),
        Field::new("key_sequence", DataType::Int32, false),
        Field::new("fk_key_name", DataType::Utf8, true),
        Field::new("pk_key_name", DataType::Utf8, true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ]))
}

/// An empty result with `schema` (meshql declares no foreign keys).
pub fn empty(schema: SchemaRef) -> Result<Response<DoGetStream>, Status> {
    one_batch(Ok(RecordBatch::new_empty(schema)))
}

/// GetPrimaryKeys: the `primaryKey` properties of the table's contract, in
/// `primaryKeyPosition` order (declaration order without positions).
pub fn do_get_primary_keys(
    svc: &MeshFlightSql,
    principal: &Principal,
    q: CommandGetPrimaryKeys,
) -> Result<Response<DoGetStream>, Status> {
    let access = svc.access(principal);
    use datafusion::arrow::array::{Int32Array, StringArray};
    let mesh = svc.engine.mesh();
    let matches = |d: &crate::spec::Dataset| {
        d.name.dataset == q.table
            && q.catalog.as_deref().is_none_or(|c| c == d.name.domain)
            && q.db_schema.as_deref().is_none_or(|s| s == d.name.layer)
    };
    let mut rows: Vec<(crate::spec::DatasetName, String, i32)> = Vec::new();
    for (ds, contract) in mesh
        .products()
        .filter(|(d, _)| matches(d) && access.can(Action::Read, &d.name))
    {
        let mut keys: Vec<(i64, usize, &str)> = contract
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.primary_key)
            .map(|(i, c)| {
                (
                    c.primary_key_position
                        .filter(|p| *p > 0)
                        .unwrap_or(i64::MAX),
                    i,
                    c.name.as_str(),
                )
            })
            .collect();
        keys.sort();
        for (seq, (_, _, col)) in keys.into_iter().enumerate() {
            rows.push((ds.name.clone(), col.to_string(), seq as i32 + 1));
        }
    }
    let batch = RecordBatch::try_new(
        primary_keys_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.0.domain.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.0.layer.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.0.dataset.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.1.as_str()),
            )),
            Arc::new(StringArray::from_iter(rows.iter().map(|_| None::<&str>))),
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.2))),
        ],
    )
    .map_err(|e| Status::from(Error::internal(format!("encoding primary keys: {e}"))))?;
    one_batch(Ok(batch))
}

/// SQL `LIKE` matching with `%`, `_` and `\` as escape, as Flight SQL filter patterns use.
pub fn like(pattern: &str, value: &str) -> bool {
    fn go(p: &[char], v: &[char]) -> bool {
        match p.split_first() {
            None => v.is_empty(),
            Some(('%', rest)) => (0..=v.len()).any(|i| go(rest, &v[i..])),
            Some(('_', rest)) => !v.is_empty() && go(rest, &v[1..]),
            Some(('\\', rest)) if !rest.is_empty() => {
                v.first() == Some(&rest[0]) && go(&rest[1..], &v[1..])
            }
            Some((c, rest)) => v.first() == Some(c) && go(rest, &v[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    go(&p, &v)
}

#[cfg(test)]
mod tests {
    use super::like;

    #[test]
    fn like_patterns() {
        assert!(like("%", "gold"));
        assert!(like("go%", "gold"));
        assert!(like("g_ld", "gold"));
        assert!(!like("g_ld", "gld"));
        assert!(like("daily\\_%", "daily_revenue"));
        assert!(!like("daily\\_%", "dailyXrevenue"));
        assert!(!like("silver", "gold"));
    }
}
