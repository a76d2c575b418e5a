//! The access log: one line per request, written when the response body ends (or is dropped
//! because the client went away, or aborted because verification failed), so a blob's line
//! has its real duration and the bytes actually sent.
//!
//! Fields: method, route, repository, reference, registry, status, bytes, duration_ms,
//! outcome (`complete`, `client_gone`, `aborted`), decision (`allow`, `deny`, `error`), reason
//! (the denial's `policy::Reason`), cache (`hit` / `miss`, when the handler consulted the disk
//! cache; `inflight` for a blob GET that followed another request's download in progress). The handlers note the cache result with [`note_cache`] (a task-local, so nothing
//! has to be threaded through their return types).

use std::cell::Cell;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use crate::body::{Body, BoxError};

tokio::task_local! {
    static CACHE: Cell<Option<&'static str>>;
}

/// Records whether the disk cache served this request (`"hit"`), or a download in progress
/// did (`"inflight"`), or neither (`"miss"`); the last note wins. Outside a request (tests calling handlers directly) it does nothing.
pub fn note_cache(result: &'static str) {
    let _ = CACHE.try_with(|c| c.set(Some(result)));
}

/// Runs a request's handling with a place for [`note_cache`]; returns what was noted.
pub async fn scoped<F: std::future::Future>(f: F) -> (F::Output, Option<&'static str>) {
    CACHE
        .scope(Cell::new(None), async {
            let out = f.await;
            (out, CACHE.with(|c| c.get()))
        })
        .await
}

/// What the line says besides bytes, duration and outcome (known when the headers go out).
#[derive(Debug, Clone)]
pub struct Line {
    pub method: String,
    pub route: &'static str,
    pub repository: String,
    pub reference: String,
    pub registry: String,
    pub status: u16,
    pub decision: &'static str,
    pub reason: Option<&'static str>,
    pub cache: Option<&'static str>,
    pub started: Instant,
}

impl Line {
    fn write(&self, bytes: u64, outcome: &'static str) {
        tracing::info!(
            target: "portcullis::access",
            method = %self.method,
            route = self.route,
            repository = %self.repository,
            reference = %self.reference,
            registry = %self.registry,
            status = self.status,
            bytes,
            duration_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            outcome,
            decision = self.decision,
            reason = self.reason.unwrap_or(""),
            cache = self.cache.unwrap_or(""),
            "request"
        );
    }
}

/// A response body that writes its access-log line when it ends.
pub struct Logged {
    inner: Body,
    line: Option<Line>,
    bytes: u64,
    /// The response's `Content-Length`: hyper stops polling once it has sent that many bytes
    /// and drops the body without asking for its end, so reaching it is completion.
    expected: Option<u64>,
}

impl Logged {
    pub fn wrap(inner: Body, line: Line, expected: Option<u64>) -> Body {
        Logged {
            inner,
            line: Some(line),
            bytes: 0,
            expected,
        }
        .boxed_unsync()
    }

    fn done(&self) -> bool {
        self.inner.is_end_stream() || self.expected == Some(self.bytes)
    }

    fn finish(&mut self, outcome: &'static str) {
        if let Some(line) = self.line.take() {
            line.write(self.bytes, outcome);
        }
    }
}

impl HttpBody for Logged {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    self.bytes += d.len() as u64;
                }
                if self.done() {
                    self.finish("complete");
                }
            }
            Poll::Ready(Some(Err(_))) => self.finish("aborted"),
            Poll::Ready(None) => self.finish("complete"),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        // hyper drops a body it never polled (HEAD, an empty body it knew was empty), one it
        // sent whole (Content-Length reached), and one whose client went away.
        let outcome = if self.done() {
            "complete"
        } else {
            "client_gone"
        };
        self.finish(outcome);
    }
}
