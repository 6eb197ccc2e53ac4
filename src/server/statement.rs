//! Statement queries: GetFlightInfo plans (never executes) and hands out signed tickets; DoGet
//! re-plans and streams batches as they are produced, in the schema FlightInfo announced.
//!
//! Running DoGets are registered by ticket, so CancelFlightInfo can stop them; a client that
//! disconnects drops the stream, which stops the query.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::{ProstMessageExt, TicketStatementQuery};
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use datafusion::arrow::array::{Array, ArrayRef, BinaryViewArray, StringViewArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::LogicalPlan;
use futures::stream::{AbortHandle, Abortable};
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use sha2::{Digest, Sha256};
use tonic::{Response, Status};

use super::audit::{AuditLog, AuditRecord};
use super::service::{DoGetStream, MeshFlightSql};
use super::ticket::{Purpose, SignedStatement};
use crate::engine::SearchPath;
use crate::error::{Error, Result};
use crate::governance::Principal;

/// FlightInfo for `sql`, with one endpoint per row of `params` (one when there are none).
pub async fn flight_info(
    svc: &MeshFlightSql,
    principal: &Principal,
    path: &SearchPath,
    sql: &str,
    params: Option<RecordBatch>,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let (governed, state) = svc.governed_plan(principal, path, sql).await?;
    let plan = governed.plan;
    let rows: Vec<Option<RecordBatch>> = match &params {
        None => vec![None],
        Some(batch) if batch.num_rows() == 0 => {
            return Err(Error::user(
                "no parameter values were bound (the parameter batch is empty)",
            )
            .into());
        }
        Some(batch) => (0..batch.num_rows())
            .map(|i| Some(batch.slice(i, 1)))
            .collect(),
    };
    // The schema comes from the plan with the first row bound, analysed exactly as DoGet will
    // run it.
    let bound = match &rows[0] {
        Some(row) => bind(plan, row)?,
        None => plan,
    };
    let schema = svc.engine.result_schema(&bound, &state).await?;
    let schema = wire_schema(&schema, svc.engine.mesh().server.view_types);
    let mut info = FlightInfo::new()
        .try_with_schema(&schema)
        .map_err(|e| Status::from(Error::from(e)))?
        .with_descriptor(descriptor)
        .with_ordered(true);
    for row in rows {
        let mut statement = SignedStatement::new(sql, principal, path);
        statement.params = row.as_ref().map(encode_batch).transpose()?;
        let handle = statement.sign(&svc.signer, Purpose::Ticket)?;
        let ticket = TicketStatementQuery {
            statement_handle: handle.into(),
        };
        info = info.with_endpoint(
            FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec())),
        );
    }
    Ok(Response::new(info))
}

pub async fn do_get(
    svc: &MeshFlightSql,
    principal: &Principal,
    handle: &[u8],
) -> Result<Response<DoGetStream>, Status> {
    let statement = SignedStatement::verify(&svc.signer, Purpose::Ticket, handle, principal)?;
    let key = ticket_key(handle);
    if svc.running.is_cancelled(&key) {
        return Err(Status::cancelled(
            "this query was cancelled (CancelFlightInfo)",
        ));
    }
    let permit = svc.admission.admit().await?;
    let limits = svc.stream_limits;
    let path = statement.search_path();
    let mut record = AuditRecord::new(&principal.name, "DoGet");
    record.sql = Some(statement.sql.clone());
    let governed = svc.governed_plan(principal, &path, &statement.sql).await;
    let (governed, state) = match governed {
        Ok(g) => g,
        Err(status) => {
            svc.audit.record(record.outcome::<()>(&Err(status.clone())));
            return Err(status);
        }
    };
    record.tables = governed.read.iter().cloned().collect();
    record.masked = governed.masked.iter().cloned().collect();
    let mut plan = governed.plan;
    if let Some(bytes) = &statement.params {
        plan = bind(plan, &decode_batch(bytes)?)?;
    }
    // The stream is sent in the schema FlightInfo announced (the analysed plan's): the optimiser
    // may narrow a decimal or a nullability on the way, which the conversion widens back.
    let announced = svc.engine.result_schema(&plan, &state).await?;
    let (_, stream) = svc.engine.execute_plan(plan, &state).await?;
    let keep_views = svc.engine.mesh().server.view_types;
    let wire = Arc::new(wire_schema(&announced, keep_views));
    let announced = Arc::clone(&wire);
    let batches = stream
        .map_err(|e| FlightError::from(Status::from(Error::from(e))))
        .and_then(move |batch| {
            let converted = to_wire(&batch, &announced, keep_views)
                .map_err(|e| FlightError::from(Status::from(e)));
            futures::future::ready(converted)
        });
    let (abort, registration) = AbortHandle::new_pair();
    let guard = svc.running.register(key, abort);
    // The guard and the admission permit live as long as the stream: dropping the stream
    // unregisters the query and frees its slot. A cancelled, timed-out or oversized query ends
    // with an error status, never as a silently short result.
    let deadline = limits.timeout.map(|t| tokio::time::Instant::now() + t);
    let state = Guarded {
        stream: Abortable::new(batches, registration),
        _guard: guard,
        _permit: permit,
        deadline,
        rows: 0,
        max_rows: limits.max_rows,
        done: false,
        audit: Audited {
            log: svc.audit.clone(),
            record: Some(record),
            bytes: 0,
            rows: 0,
        },
    };
    let batches = futures::stream::unfold(state, move |mut s| async move {
        if s.done {
            return None;
        }
        let next = match s.deadline {
            Some(at) => match tokio::time::timeout_at(at, s.stream.next()).await {
                Ok(next) => next,
                Err(_) => {
                    s.done = true;
                    let secs = limits.timeout.map(|t| t.as_secs()).unwrap_or_default();
                    let status = Status::deadline_exceeded(format!(
                        "the query ran longer than {secs} s (server.query_timeout_secs)"
                    ));
                    s.audit.fail(&status);
                    return Some((Err(FlightError::from(status)), s));
                }
            },
            None => s.stream.next().await,
        };
        match next {
            Some(Ok(batch)) => {
                s.rows += batch.num_rows() as u64;
                s.audit.rows = s.rows;
                s.audit.bytes += batch.get_array_memory_size() as u64;
                if let Some(max) = s.max_rows
                    && s.rows > max
                {
                    s.done = true;
                    let status = Status::from(Error::resource(format!(
                        "the result has more than {max} rows (server.max_result_rows); narrow the query or add LIMIT"
                    )));
                    s.audit.fail(&status);
                    return Some((Err(FlightError::from(status)), s));
                }
                Some((Ok(batch), s))
            }
            Some(Err(e)) => {
                if let FlightError::Tonic(status) = &e {
                    s.audit.fail(status);
                } else {
                    s.audit.fail(&Status::internal(e.to_string()));
                }
                Some((Err(e), s))
            }
            None if s.stream.is_aborted() => {
                s.done = true;
                let status = Status::cancelled("the query was cancelled (CancelFlightInfo)");
                s.audit.fail(&status);
                Some((Err(FlightError::from(status)), s))
            }
            None => None,
        }
    });
    let flight = FlightDataEncoderBuilder::new()
        .with_schema(wire)
        .build(batches)
        .map_err(|e| match e {
            FlightError::Tonic(status) => *status,
            other => Status::from(Error::internal(other.to_string())),
        });
    Ok(Response::new(Box::pin(flight.boxed())))
}

/// A result stream with what must live as long as it, and the limits it runs under.
struct Guarded<S> {
    stream: Abortable<S>,
    _guard: RunningGuard,
    _permit: tokio::sync::OwnedSemaphorePermit,
    deadline: Option<tokio::time::Instant>,
    rows: u64,
    max_rows: Option<u64>,
    done: bool,
    audit: Audited,
}

/// The audit record of a result stream, written when the stream ends or is dropped.
struct Audited {
    log: AuditLog,
    record: Option<AuditRecord>,
    rows: u64,
    bytes: u64,
}

impl Audited {
    fn fail(&mut self, status: &Status) {
        if let Some(r) = &mut self.record
            && r.status == "ok"
        {
            r.status = format!("{:?}", status.code());
            r.message = Some(status.message().to_string());
        }
    }
}

impl Drop for Audited {
    fn drop(&mut self) {
        if let Some(mut r) = self.record.take() {
            r.rows = Some(self.rows);
            r.bytes = Some(self.bytes);
            r.duration = (chrono::Utc::now() - r.at).to_std().unwrap_or_default();
            self.log.record(r);
        }
    }
}

/// Binds one row of parameter values to the plan's placeholders, `$1` first.
pub fn bind(plan: LogicalPlan, row: &RecordBatch) -> Result<LogicalPlan> {
    let types = plan.get_parameter_types()?;
    if row.num_columns() != types.len() {
        return Err(Error::user(format!(
            "the statement has {} parameter(s) but {} value(s) were bound",
            types.len(),
            row.num_columns()
        )));
    }
    let mut values = Vec::with_capacity(row.num_columns());
    for (i, column) in row.columns().iter().enumerate() {
        let value = ScalarValue::try_from_array(column, 0)?;
        let value = match types.get(&format!("${}", i + 1)) {
            Some(Some(wanted)) if *wanted != value.data_type() && !value.is_null() => {
                value.cast_to(wanted).map_err(|e| {
                    Error::user(format!(
                        "parameter ${} cannot be used as {wanted}: {e}",
                        i + 1
                    ))
                })?
            }
            _ => value,
        };
        values.push(value);
    }
    Ok(plan.with_param_values(values)?)
}

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
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>()?;
    Ok(arrow::compute::concat_batches(&schema, &batches)?)
}

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
fn to_wire(batch: &RecordBatch, wire: &SchemaRef, keep_views: bool) -> Result<RecordBatch> {
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

fn ticket_key(handle: &[u8]) -> [u8; 32] {
    Sha256::digest(handle).into()
}

/// The DoGets running one ticket, each with its registration id.
type Aborts = Vec<(u64, AbortHandle)>;

/// DoGet streams in flight, by ticket, and tickets cancelled before or while they ran.
pub struct Running {
    active: Mutex<HashMap<[u8; 32], Aborts>>,
    cancelled: moka::sync::Cache<[u8; 32], ()>,
    next_id: std::sync::atomic::AtomicU64,
}

impl Running {
    pub fn new() -> Self {
        Self {
            active: Mutex::default(),
            // A cancelled ticket stays refused for a day; tickets are otherwise stateless.
            cancelled: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(24 * 3600))
                .build(),
            next_id: Default::default(),
        }
    }

    fn register(self: &Arc<Self>, key: [u8; 32], abort: AbortHandle) -> RunningGuard {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut active) = self.active.lock() {
            active.entry(key).or_default().push((id, abort));
        }
        RunningGuard {
            running: Arc::clone(self),
            key,
            id,
        }
    }

    fn is_cancelled(&self, key: &[u8; 32]) -> bool {
        self.cancelled.contains_key(key)
    }

    /// Stops every running DoGet of the ticket and refuses later ones; true if one was running.
    pub fn cancel(&self, handle: &[u8]) -> bool {
        let key = ticket_key(handle);
        self.cancelled.insert(key, ());
        let aborted = self
            .active
            .lock()
            .ok()
            .and_then(|mut a| a.remove(&key))
            .unwrap_or_default();
        for (_, abort) in &aborted {
            abort.abort();
        }
        !aborted.is_empty()
    }
}

struct RunningGuard {
    running: Arc<Running>,
    key: [u8; 32],
    id: u64,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        if let Ok(mut active) = self.running.active.lock()
            && let Some(list) = active.get_mut(&self.key)
        {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                active.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringViewArray;

    #[test]
    fn views_become_classic_types_or_are_compacted() {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8View, true)]));
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
