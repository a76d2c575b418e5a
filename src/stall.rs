//! A deadline on a client that stops reading.
//!
//! hyper has a deadline for reading a request's headers but none for writing a response: a
//! client that stops reading (or reads a byte a second, which TCP turns into no progress at
//! all for minutes, as the receiver only reopens its window once a segment's worth is free)
//! would hold its connection, the upstream stream behind it and that stream's concurrency
//! permit for as long as it likes. [`WriteDeadline`] wraps the accepted socket: when a write
//! has made no progress for `limit`, the write fails with `TimedOut`, hyper closes the
//! connection, and everything the response held is released.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

pub struct WriteDeadline<S> {
    inner: S,
    limit: Duration,
    /// Armed when a write first returns `Pending`; cleared by any progress.
    stalled_since: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteDeadline<S> {
    pub fn new(inner: S, limit: Duration) -> Self {
        WriteDeadline {
            inner,
            limit,
            stalled_since: None,
        }
    }

    /// `Pending` from the socket: start (or keep) the clock; past the limit, fail the write.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let limit = self.limit;
        let sleep = self
            .stalled_since
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.stalled_since = None;
                crate::metrics::client_stalled();
                tracing::warn!(
                    secs = limit.as_secs(),
                    "client accepted no response bytes for server.client_stall_timeout_secs; closing its connection"
                );
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "client stopped reading the response",
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        match Pin::new(&mut me.inner).poll_write(cx, buf) {
            Poll::Pending => me.pending(cx),
            ready => {
                me.stalled_since = None;
                ready
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        match Pin::new(&mut me.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => me.pending(cx),
            ready => {
                me.stalled_since = None;
                ready
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        match Pin::new(&mut me.inner).poll_flush(cx) {
            Poll::Pending => me.pending(cx),
            ready => {
                me.stalled_since = None;
                ready
            }
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_reader_that_stops_fails_the_write_after_the_limit() {
        // A 64 KiB pipe: once it is full and nobody reads, writes stay pending.
        let (a, mut b) = tokio::io::duplex(64 * 1024);
        let mut w = WriteDeadline::new(a, Duration::from_millis(500));
        let chunk = vec![0u8; 16 * 1024];
        let started = tokio::time::Instant::now();
        let err = loop {
            if let Err(e) = w.write_all(&chunk).await {
                break e;
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(500));
        // The bytes written before the stall are intact.
        let mut got = vec![0u8; 64 * 1024];
        b.read_exact(&mut got).await.unwrap();
    }

    #[tokio::test]
    async fn a_reader_that_keeps_up_never_trips_it() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut w = WriteDeadline::new(a, Duration::from_millis(500));
        let reader = tokio::spawn(async move {
            let mut total = 0usize;
            let mut buf = [0u8; 512];
            loop {
                // Slower than the writer, but never silent for the whole limit.
                tokio::time::sleep(Duration::from_millis(200)).await;
                match b.read(&mut buf).await {
                    Ok(0) | Err(_) => return total,
                    Ok(n) => total += n,
                }
            }
        });
        for _ in 0..8 {
            w.write_all(&[1u8; 512]).await.unwrap();
        }
        w.shutdown().await.unwrap();
        drop(w);
        assert_eq!(reader.await.unwrap(), 8 * 512);
    }
}
