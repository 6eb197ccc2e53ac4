//! Connections a client can hold: at most `server.max_connections` at once (more are closed as
//! they arrive), each closed once neither side has sent a byte for `server.idle_timeout_secs`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Admission of connections.
#[derive(Clone)]
pub struct ConnectionLimits {
    slots: Arc<Semaphore>,
    max: usize,
    idle: Option<Duration>,
}

impl ConnectionLimits {
    pub fn new(max: usize, idle: Option<Duration>) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max.max(1))),
            max: max.max(1),
            idle,
        }
    }

    /// `stream` with its slot, or `None` (the stream is closed) when every slot is taken.
    pub fn admit(&self, stream: TcpStream) -> Option<Limited> {
        let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() else {
            tracing::warn!(
                max = self.max,
                peer = ?stream.peer_addr().ok(),
                "refusing a connection: server.max_connections are open"
            );
            return None;
        };
        Some(Limited {
            idle: self.idle,
            timer: self.idle.map(|d| Box::pin(tokio::time::sleep(d))),
            inner: stream,
            _permit: permit,
        })
    }
}

/// An admitted connection.
pub struct Limited {
    inner: TcpStream,
    _permit: OwnedSemaphorePermit,
    idle: Option<Duration>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Limited {
    fn touched(&mut self) {
        if let (Some(timer), Some(idle)) = (&mut self.timer, self.idle) {
            timer.as_mut().reset(Instant::now() + idle);
        }
    }

    /// An error once the connection has been idle too long.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        let timer = self.timer.as_mut()?;
        timer.as_mut().poll(cx).is_ready().then(|| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle for longer than server.idle_timeout_secs",
            )
        })
    }
}

impl AsyncRead for Limited {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                self.touched();
                Poll::Ready(r)
            }
            Poll::Pending => match self.idle_expired(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Limited {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        if written.is_ready() {
            self.touched();
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if written.is_ready() {
            self.touched();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl Connected for Limited {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}
