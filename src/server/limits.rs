//! What protects the node from its clients: request header limits answered with an OCI
//! body (hyper's own are set above them), and connections past `server.max_connections`.

use std::convert::Infallible;
use std::time::Duration;

use http::{HeaderValue, Request, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::error::{ApiError, Code, Side};

/// Says in the log that connections are being refused: the first at once, then at most one line
/// per 10 s with how many were refused meanwhile (a flood must not become a flood of lines).
#[derive(Default)]
pub(super) struct RefusalLog {
    last: Option<std::time::Instant>,
    since: u64,
}

impl RefusalLog {
    const EVERY: Duration = Duration::from_secs(10);

    pub(super) fn refused(&mut self, max: usize) {
        self.since += 1;
        if self.last.is_some_and(|t| t.elapsed() < Self::EVERY) {
            return;
        }
        tracing::warn!(
            max_connections = max,
            refused = self.since,
            "refusing client connections: {max} are open (server.max_connections); each refused one gets 503 TOOMANYREQUESTS with Retry-After: 1. Raise server.max_connections if this node pulls that much at once (an idle connection costs a few KiB)"
        );
        self.last = Some(std::time::Instant::now());
        self.since = 0;
    }
}

/// A connection past `server.max_connections`: HTTP/1.1 only, no keep-alive, every request
/// answered 503 `TOOMANYREQUESTS` with `Retry-After`, and the whole exchange bounded in time.
/// Plain TCP only (a TLS handshake would cost what the bound is there to save); a TLS client
/// sees the connection closed, and retries as for any dropped connection.
pub(super) async fn refuse_connection(stream: tokio::net::TcpStream, max: usize) {
    let svc = service_fn(move |_req: Request<Incoming>| async move {
        let e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::TooManyRequests,
            Side::Downstream,
            format!(
                "portcullis has {max} client connections open (server.max_connections); retry shortly"
            ),
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"));
        Ok::<_, Infallible>(e.into_response(false))
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), svc);
    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
}

/// Header fields per request (hyper's own default, which clients have long lived with).
pub const MAX_HEADER_FIELDS: usize = 100;
/// hyper's limits are this many times ours, so that it is our check that answers.
pub(super) const HYPER_HEADROOM: usize = 2;

/// The request header limits a client is told about in a 431 body.
#[derive(Debug, Clone, Copy)]
pub(super) struct HeaderLimits {
    pub(super) fields: usize,
    /// `server.max_header_bytes`.
    pub(super) bytes: usize,
}

impl HeaderLimits {
    pub(super) fn ceiling_bytes(self) -> usize {
        self.bytes.saturating_mul(HYPER_HEADROOM)
    }

    /// A 431 with an OCI body when the request is over either limit. The size is counted as
    /// on the HTTP/1.1 wire (request line, `name: value\r\n` per field), from lengths hyper
    /// already has: no copy, one pass over the fields.
    pub(super) fn check<B>(self, req: &Request<B>) -> Result<(), ApiError> {
        let headers = req.headers();
        let fields = headers.len();
        let request_line = req.method().as_str().len()
            + req.uri().path_and_query().map_or(1, |p| p.as_str().len())
            + 12;
        let bytes = request_line
            + headers
                .iter()
                .map(|(n, v)| n.as_str().len() + v.len() + 4)
                .sum::<usize>();
        if fields <= self.fields && bytes <= self.bytes {
            return Ok(());
        }
        let mut e = ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Code::Unsupported,
            Side::Downstream,
            format!(
                "request headers too large: {fields} fields, about {bytes} bytes; portcullis \
                 accepts at most {} fields and {} bytes (server.max_header_bytes)",
                self.fields, self.bytes
            ),
        );
        e.detail = Some(serde_json::json!({
            "max_header_fields": self.fields,
            "max_header_bytes": self.bytes,
        }));
        Err(e)
    }
}
