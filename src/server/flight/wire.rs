//! How results travel over Flight: schemas and batches as clients receive them (view types as
//! their classic forms for older drivers), parameter batches inside signed handles, and result
//! streams encoded as FlightData with errors as statuses.

use std::sync::Arc;

use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::{IpcMessage, SchemaAsIpc};
use datafusion::arrow::array::{Array, ArrayRef, BinaryViewArray, StringViewArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::arrow::record_batch::RecordBatch;
use futures::{Stream, StreamExt, TryStreamExt};
use tonic::Status;

use crate::error::{Error, Result};

/// What a DoGet answers: Flight data, or a status.
pub type DoGetStream = std::pin::Pin<
    Box<dyn Stream<Item = std::result::Result<arrow_flight::FlightData, Status>> + Send>,
>;

/// The schema sent to clients: view types become their classic forms unless `keep_views`.
pub fn wire_schema(schema: &Schema, keep_views: bool) -> Schema {
    if keep_views {
        return schema.clone();
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_data_type(unview(f.data_type())))
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

fn unview(t: &DataType) -> DataType {
    let field = |f: &Field| Arc::new(f.clone().with_data_type(unview(f.data_type())));
    match t {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::List(f) => DataType::List(field(f)),
        DataType::LargeList(f) => DataType::LargeList(field(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(field(f), *n),
        DataType::Struct(fs) => DataType::Struct(fs.iter().map(|f| field(f)).collect()),
        other => other.clone(),
    }
}

/// Converts a batch to the wire schema. Kept view arrays are compacted, so a sliced array never
/// sends the buffers of rows it does not hold.
pub fn to_wire(batch: &RecordBatch, wire: &SchemaRef, keep_views: bool) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .zip(wire.fields())
        .map(|(column, field)| -> Result<ArrayRef> {
            if keep_views {
                if let Some(a) = column.as_any().downcast_ref::<StringViewArray>() {
                    return Ok(Arc::new(a.gc()));
                }
                if let Some(a) = column.as_any().downcast_ref::<BinaryViewArray>() {
                    return Ok(Arc::new(a.gc()));
                }
            }
            if column.data_type() == field.data_type() {
                Ok(Arc::clone(column))
            } else {
                Ok(arrow::compute::cast(column, field.data_type())?)
            }
        })
        .collect::<Result<_>>()?;
    Ok(RecordBatch::try_new(Arc::clone(wire), columns)?)
}

/// Batches in `schema` as a DoGet response; errors become statuses.
pub fn encode(
    schema: SchemaRef,
    batches: impl Stream<Item = Result<RecordBatch>> + Send + 'static,
) -> DoGetStream {
    let batches = batches.map_err(|e| FlightError::from(Status::from(e)));
    let flight = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(batches)
        .map_err(|e| match e {
            FlightError::Tonic(status) => *status,
            other => Status::from(Error::internal(other.to_string())),
        });
    Box::pin(flight.boxed())
}

/// One batch as a DoGet response (listings).
pub fn one_batch(batch: std::result::Result<RecordBatch, FlightError>) -> Result<DoGetStream> {
    let batch = batch.map_err(|e| Error::internal(format!("building a listing: {e}")))?;
    let schema = batch.schema();
    Ok(encode(schema, futures::stream::iter([Ok(batch)])))
}

/// A batch as Arrow IPC stream bytes (bound parameters inside signed handles).
pub fn encode_batch(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut writer = StreamWriter::try_new(&mut out, &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    Ok(out)
}

pub fn decode_batch(bytes: &[u8]) -> Result<RecordBatch> {
    let reader = StreamReader::try_new(bytes, None)?;
    let schema = reader.schema();
    let batches: Vec<RecordBatch> = reader.collect::<std::result::Result<_, _>>()?;
    Ok(arrow::compute::concat_batches(&schema, &batches)?)
}

/// A schema as the IPC message Flight SQL puts in prepared-statement results.
pub fn ipc_schema(schema: &Schema) -> Result<Vec<u8>> {
    let message: IpcMessage = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: datafusion::arrow::error::ArrowError| {
            Error::internal(format!("encoding a schema: {e}"))
        })?;
    Ok(message.0.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_become_classic_types_or_are_compacted() {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "s",
            DataType::Utf8View,
            false,
        )]));
        let long: Vec<String> = (0..1000)
            .map(|i| format!("a fairly long string value number {i:04}"))
            .collect();
        let array = StringViewArray::from_iter_values(long.iter());
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(array)]).unwrap();
        let slice = batch.slice(10, 2);

        let wire = Arc::new(wire_schema(&schema, false));
        assert_eq!(wire.field(0).data_type(), &DataType::Utf8);
        let out = to_wire(&slice, &wire, false).unwrap();
        assert_eq!(out.column(0).data_type(), &DataType::Utf8);

        let kept = to_wire(&slice, &schema, true).unwrap();
        let full = encode_batch(&slice).unwrap().len();
        let compact = encode_batch(&kept).unwrap().len();
        assert!(compact * 10 < full, "compacted {compact} bytes vs {full}");
    }
}
