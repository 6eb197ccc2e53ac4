//! A query's result stream with everything that must live and be checked as long as it runs:
//! its admission slot, its cancellation registration, its deadline, its row cap, the recording
//! of its answer for the result cache and its audit record (written when the stream ends or is
//! dropped). A cancelled, timed-out or oversized
//! query ends with an error, never as a silently short result.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::Stream;
use futures::stream::{AbortRegistration, Abortable};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};

use super::admission::StreamLimits;
use super::audit::{AuditLog, AuditRecord};
use super::cancel::Registered;
use super::results::ResultFill;
use crate::error::{Error, Result};

/// The batches of a running query, in [`QueryStream::schema`].
pub struct QueryStream {
    schema: SchemaRef,
    inner: Abortable<SendableRecordBatchStream>,
    deadline: Option<(Pin<Box<Sleep>>, u64)>,
    max_rows: Option<u64>,
    rows: u64,
    bytes: u64,
    done: bool,
    audit: Option<(AuditLog, AuditRecord)>,
    /// Records the answer for the result cache, when it may be kept.
    fill: Option<ResultFill>,
    _registered: Option<Registered>,
    _permit: OwnedSemaphorePermit,
}

impl QueryStream {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
        abort: AbortRegistration,
        registered: Option<Registered>,
        permit: OwnedSemaphorePermit,
        limits: StreamLimits,
        deadline: Option<Instant>,
        audit: (AuditLog, AuditRecord),
    ) -> Self {
        Self {
            schema,
            inner: Abortable::new(stream, abort),
            deadline: deadline.map(|at| {
                let secs = limits.timeout.map(|t| t.as_secs()).unwrap_or_default();
                (Box::pin(tokio::time::sleep_until(at)), secs)
            }),
            max_rows: limits.max_rows,
            rows: 0,
            bytes: 0,
            done: false,
            audit: Some(audit),
            fill: None,
            _registered: registered,
            _permit: permit,
        }
    }

    /// Records the answer into `fill` as it streams; kept if the stream ends cleanly.
    pub(super) fn keeping(mut self, fill: Option<ResultFill>) -> Self {
        self.fill = fill;
        self
    }

    /// The schema every batch has: the one announced before the query ran.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn finish(&mut self, e: Error) -> Poll<Option<Result<RecordBatch>>> {
        self.done = true;
        self.fill = None;
        if let Some((_, record)) = &mut self.audit {
            record.fail(&e);
        }
        Poll::Ready(Some(Err(e)))
    }

    /// `batch` in the announced schema: optimisation may narrow a type on the way (a decimal's
    /// precision, a nullability), which is widened back here.
    fn announced(&self, batch: RecordBatch) -> Result<RecordBatch> {
        if batch.schema().fields() == self.schema.fields() {
            return Ok(batch);
        }
        let columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .zip(self.schema.fields())
            .map(|(c, f)| {
                if c.data_type() == f.data_type() {
                    Ok(Arc::clone(c))
                } else {
                    Ok(datafusion::arrow::compute::cast(c, f.data_type())?)
                }
            })
            .collect::<Result<_>>()?;
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

impl Stream for QueryStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        // Checked before every batch (a fast producer is never pending) and woken by the timer
        // while the query computes.
        if let Some((sleep, secs)) = &mut self.deadline
            && (sleep.is_elapsed() || sleep.as_mut().poll(cx).is_ready())
        {
            let secs = *secs;
            return self.finish(Error::deadline(format!(
                "the query ran longer than {secs} s (server.query_timeout_secs)"
            )));
        }
        let next = match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(next) => next,
            Poll::Pending => return Poll::Pending,
        };
        match next {
            Some(Ok(batch)) => {
                self.rows += batch.num_rows() as u64;
                self.bytes += batch.get_array_memory_size() as u64;
                if let Some(max) = self.max_rows
                    && self.rows > max
                {
                    return self.finish(Error::resource(format!(
                        "the result has more than {max} rows (server.max_result_rows); narrow the query or add LIMIT"
                    )));
                }
                match self.announced(batch) {
                    Ok(batch) => {
                        if let Some(fill) = &mut self.fill
                            && !fill.offer(&batch)
                        {
                            self.fill = None;
                        }
                        Poll::Ready(Some(Ok(batch)))
                    }
                    Err(e) => self.finish(e),
                }
            }
            Some(Err(e)) => self.finish(Error::from(e)),
            None if self.inner.is_aborted() => self.finish(Error::cancelled(
                "the query was cancelled (CancelFlightInfo)",
            )),
            None => {
                self.done = true;
                if let Some(fill) = self.fill.take() {
                    fill.complete();
                }
                Poll::Ready(None)
            }
        }
    }
}

impl Drop for QueryStream {
    fn drop(&mut self) {
        if let Some((log, mut record)) = self.audit.take() {
            record.rows = Some(self.rows);
            record.bytes = Some(self.bytes);
            record.duration = (chrono::Utc::now() - record.at)
                .to_std()
                .unwrap_or_default();
            log.record(record);
        }
    }
}
