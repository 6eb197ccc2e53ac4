//! Result streams that survive a panic in the engine: the query ends with an error, the server
//! goes on. DataFusion re-raises the panics of its spawned tasks where the stream is polled, so
//! one catch around every poll covers them all. And streams that start over another way when
//! their first answer is an error a second plan avoids.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use std::future::Future;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::RecordBatchStream;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{Stream, StreamExt};

use crate::error::{Error, Result};

/// `stream`, ending with an error (and nothing after it) where polling it panics.
pub fn catch_panics(stream: SendableRecordBatchStream) -> SendableRecordBatchStream {
    Box::pin(CatchPanics {
        schema: stream.schema(),
        inner: Some(stream),
    })
}

struct CatchPanics {
    schema: SchemaRef,
    /// Dropped after a panic: its state is not to be trusted.
    inner: Option<SendableRecordBatchStream>,
}

impl Stream for CatchPanics {
    type Item = DfResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll_next(cx))) {
            Ok(poll) => poll,
            Err(panic) => {
                self.inner = None;
                let err = Error::from_panic(panic.as_ref());
                tracing::error!(error = %err, "a query panicked");
                Poll::Ready(Some(Err(err.into_datafusion())))
            }
        }
    }
}

impl RecordBatchStream for CatchPanics {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// Starts a stream that replaces one which failed.
pub type Restart = Pin<Box<dyn Future<Output = Result<SendableRecordBatchStream>> + Send>>;

/// `stream`, unless its first item is an error for which `retry` answers a restart: then the
/// failed stream is dropped (freeing what it held) and the restarted one is answered instead.
/// Nothing has reached the caller before the first item, so the answer is the same either way.
pub fn retry_first(
    stream: SendableRecordBatchStream,
    retry: impl FnOnce(&DataFusionError) -> Option<Restart> + Send + 'static,
) -> SendableRecordBatchStream {
    let schema = stream.schema();
    let started = async move {
        let mut stream = stream;
        let first = stream.next().await;
        let restart = match &first {
            Some(Err(e)) => retry(e),
            _ => None,
        };
        let Some(restart) = restart else {
            return futures::stream::iter(first).chain(stream).boxed();
        };
        drop(stream);
        match restart.await {
            Ok(restarted) => restarted.boxed(),
            Err(e) => futures::stream::iter([Err(e.into_datafusion())]).boxed(),
        }
    };
    Box::pin(RecordBatchStreamAdapter::new(
        schema,
        futures::stream::once(started).flatten(),
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::error::DataFusionError;
    use datafusion::physical_plan::SendableRecordBatchStream;
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use futures::TryStreamExt;

    use super::{Restart, retry_first};

    fn batch(v: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![v]))]).unwrap()
    }

    fn of(items: Vec<Result<RecordBatch, DataFusionError>>) -> SendableRecordBatchStream {
        Box::pin(RecordBatchStreamAdapter::new(
            batch(0).schema(),
            futures::stream::iter(items),
        ))
    }

    fn restart(v: i64) -> Option<Restart> {
        Some(Box::pin(async move { Ok(of(vec![Ok(batch(v))])) }))
    }

    async fn values(s: SendableRecordBatchStream) -> Result<Vec<i64>, DataFusionError> {
        let batches: Vec<RecordBatch> = s.try_collect().await?;
        Ok(batches
            .iter()
            .map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .value(0)
            })
            .collect())
    }

    #[tokio::test]
    async fn a_first_error_the_retry_accepts_restarts_the_stream() {
        let failed = of(vec![
            Err(DataFusionError::ResourcesExhausted("big".into())),
            Ok(batch(1)),
        ]);
        let s = retry_first(failed, |e| {
            matches!(e, DataFusionError::ResourcesExhausted(_))
                .then(|| restart(7))
                .flatten()
        });
        assert_eq!(values(s).await.unwrap(), vec![7]);
    }

    #[tokio::test]
    async fn other_errors_and_later_errors_pass_through_and_answers_are_kept() {
        let ok = of(vec![Ok(batch(1)), Ok(batch(2))]);
        assert_eq!(
            values(retry_first(ok, |_| restart(7))).await.unwrap(),
            vec![1, 2]
        );
        let other = of(vec![Err(DataFusionError::Plan("no".into()))]);
        let s = retry_first(other, |e| {
            matches!(e, DataFusionError::ResourcesExhausted(_))
                .then(|| restart(7))
                .flatten()
        });
        assert!(matches!(values(s).await, Err(DataFusionError::Plan(_))));
        // After a first answer, an error is the query's: nothing runs twice.
        let late = of(vec![
            Ok(batch(1)),
            Err(DataFusionError::ResourcesExhausted("big".into())),
        ]);
        let s = retry_first(late, |_| restart(7));
        assert!(values(s).await.is_err());
    }
}
