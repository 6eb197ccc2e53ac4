//! Result streams that survive a panic in the engine: the query ends with an error, the server
//! goes on. DataFusion re-raises the panics of its spawned tasks where the stream is polled, so
//! one catch around every poll covers them all.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result as DfResult;
use datafusion::execution::RecordBatchStream;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::Stream;

use crate::error::Error;

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
