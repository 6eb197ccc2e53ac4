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
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::arrow::record_batch::RecordBatch;
use futures::{Stream, StreamExt, TryStreamExt};
use tonic::Status;

use crate::error::{Error, Result};
use crate::human;

/// What a DoGet answers: Flight data, or a status.
pub type DoGetStream = std::pin::Pin<
    Box<dyn Stream<Item = std::result::Result<arrow_flight::FlightData, Status>> + Send>,
>;

/// Flight SQL's column metadata keys (what the JDBC driver's `ResultSetMetaData` and
/// `DatabaseMetaData.getColumns` read).
const PRECISION: &str = "ARROW:FLIGHT:SQL:PRECISION";
const SCALE: &str = "ARROW:FLIGHT:SQL:SCALE";
const REMARKS: &str = "ARROW:FLIGHT:SQL:REMARKS";

/// The schema sent to clients: view types become their classic forms unless `keep_views`;
/// decimals carry their precision and scale, and columns their description (from the contract,
/// see [`crate::service::DESCRIPTION`]), as Flight SQL column metadata.
pub fn wire_schema(schema: &Schema, keep_views: bool) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let mut field = f.as_ref().clone();
            if !keep_views {
                field = field.with_data_type(unview(f.data_type()));
            }
            let mut metadata = field.metadata().clone();
            if let DataType::Decimal128(p, s) | DataType::Decimal256(p, s) = f.data_type() {
                metadata.insert(PRECISION.into(), p.to_string());
                metadata.insert(SCALE.into(), s.to_string());
            }
            if let Some(text) = metadata.remove(crate::service::DESCRIPTION) {
                metadata.insert(REMARKS.into(), text);
            }
            field.with_metadata(metadata)
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// The parameter schema of a prepared statement, as [`wire_schema`]; timestamps are declared
/// in milliseconds, the unit the Flight SQL JDBC driver (18.3) writes whatever the declared
/// one (binding casts values to the statement's own type).
pub fn wire_parameters(schema: &Schema) -> Schema {
    let wire = wire_schema(schema, false);
    let fields: Vec<Field> = wire
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Timestamp(_, tz) => f
                .as_ref()
                .clone()
                .with_data_type(DataType::Timestamp(TimeUnit::Millisecond, tz.clone())),
            _ => f.as_ref().clone(),
        })
        .collect();
    Schema::new(fields)
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
    encode_within(schema, batches, crate::server::MAX_MESSAGE_BYTES)
}

/// [`encode`] with messages of at most `max_bytes`. Batches are cut into messages of a few
/// megabytes by rows; a single row that still needs more than `max_bytes` (an `array_agg` of
/// millions of values) ends the stream with ResourceExhausted instead of a transport error.
fn encode_within(
    schema: SchemaRef,
    batches: impl Stream<Item = Result<RecordBatch>> + Send + 'static,
    max_bytes: usize,
) -> DoGetStream {
    const TARGET_MESSAGE_BYTES: usize = 2 << 20;
    let batches = batches.map_err(|e| FlightError::from(Status::from(e)));
    let flight = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .with_max_flight_data_size(TARGET_MESSAGE_BYTES.min(max_bytes / 2))
        .build(batches)
        .map(move |item| match item {
            Ok(data) if data.data_header.len() + data.data_body.len() > max_bytes => {
                Err(Status::from(Error::resource(format!(
                    "a result row takes {} and the largest message the server sends is {}: \
                     return less in one row (fewer values in one array_agg or string_agg)",
                    human::bytes((data.data_header.len() + data.data_body.len()) as u128),
                    human::bytes(max_bytes as u128)
                ))))
            }
            Ok(data) => Ok(data),
            Err(FlightError::Tonic(status)) => Err(*status),
            Err(other) => Err(Status::from(Error::internal(other.to_string()))),
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

    #[tokio::test]
    async fn a_row_too_large_for_one_message_is_refused_and_others_are_cut() {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, false)]));
        let batch = |rows: usize, width: usize| {
            let values = vec!["x".repeat(width); rows];
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(datafusion::arrow::array::StringArray::from(
                    values,
                ))],
            )
            .unwrap()
        };
        // 4,000 rows of 1 KiB: cut into messages under the limit, all rows arrive.
        let many = encode_within(
            Arc::clone(&schema),
            futures::stream::iter([Ok(batch(4_000, 1_024))]),
            256 * 1024,
        );
        let messages: Vec<_> = many.collect().await;
        assert!(messages.iter().all(|m| m.is_ok()), "{messages:?}");
        assert!(messages.len() > 10, "{}", messages.len());
        // One row of 300 KiB cannot be cut.
        let one = encode_within(
            Arc::clone(&schema),
            futures::stream::iter([Ok(batch(1, 300 * 1024))]),
            256 * 1024,
        );
        let messages: Vec<_> = one.collect().await;
        let status = messages.into_iter().find_map(|m| m.err()).unwrap();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
        assert!(
            status.message().contains("a result row takes 301 KiB"),
            "{status:?}"
        );
    }
}
