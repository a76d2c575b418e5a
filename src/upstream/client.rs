//! The HTTP client toward registries, token services and notary servers: hyper-util's pooled
//! client over hyper-rustls (HTTP/1.1 and HTTP/2 by ALPN), with bounded buffers per stream,
//! redirects followed here, and a response [`Body`] with an idle deadline and reads bounded in
//! size.
//!
//! Why not reqwest: it gives no handle on hyper's HTTP/1 read buffer, which grows to about
//! 400 KiB per connection; with hundreds of blob streams that was most of the proxy's memory.
//! Here it is capped at [`H1_MAX_BUF`], and HTTP/2 flow-control windows are fixed (no
//! adaptive growth) at [`H2_STREAM_WINDOW`] per stream and [`H2_CONN_WINDOW`] per connection.
//! A blob download may read with the larger [`H1_WIDE_BUF`] while it holds one of
//! [`WIDE_STREAMS`] slots ([`HttpClient::send_reading`]): most of a stream's system calls and
//! context switches for a fixed, small amount of memory.
//!
//! Redirects: at most [`MAX_REDIRECTS`] (301, 302, 303, 307, 308; a relative `Location` is
//! resolved against the URL that answered). `Authorization` (and `Cookie`) are dropped when a
//! redirect leaves the origin (scheme, host, port): object storage behind a registry must not
//! see the registry's credentials. A 303 turns the request into a GET (a HEAD stays a HEAD).
//! Proxy variables (`HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY`) are not read.

use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::Empty;
use hyper::body::{Body as _, Incoming};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use url::Url;

use super::error_chain;

/// Largest HTTP/1 read buffer of one connection, so of one upstream stream (hyper's default
/// is 8 KiB + 400 KiB). Also the largest response head an upstream may send.
pub const H1_MAX_BUF: usize = 64 * 1024;
/// Largest HTTP/1 read buffer of a blob download holding a [`Wide`] slot (about hyper's own
/// default). A stream that reads 64 KiB at a time makes four times the reads and writes of one
/// reading up to 512 KiB, and twice the context switches: measured on one 512 MiB stream,
/// 15-16 k reads and 23 k switches per GB against 2-2.5 k and 11-12 k, and 0.2 s/GB less CPU
/// for both an uncached stream and a cold fill (bench/PROFILE.md section 6).
pub const H1_WIDE_BUF: usize = 512 * 1024;
/// Blob downloads of the whole process that may read with [`H1_WIDE_BUF`] at once; the others
/// read with [`H1_MAX_BUF`]. What wide buffers hold thus stays within 4 x 512 KiB, however many
/// streams run (a node pulls a few layers at a time: containerd's default is 3).
pub const WIDE_STREAMS: usize = 4;
/// HTTP/2 receive window of one stream: what one slow stream may have buffered.
pub const H2_STREAM_WINDOW: u32 = 256 * 1024;
/// HTTP/2 receive window of one connection, shared by its streams.
pub const H2_CONN_WINDOW: u32 = 8 * 1024 * 1024;
/// Idle pooled connections kept per host.
pub const MAX_IDLE_PER_HOST: usize = 32;
/// An idle pooled connection is closed after this long.
pub const POOL_IDLE: Duration = Duration::from_secs(90);
/// Redirects followed for one request; one more is an error.
pub const MAX_REDIRECTS: usize = 10;

/// Why a request produced no response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No response head within the deadline (redirects included).
    #[error("no response within {} s", .0.as_secs())]
    Timeout(Duration),
    /// No TCP connection within the connect timeout.
    #[error("no connection within {} s", .0.as_secs())]
    ConnectTimeout(Duration),
    /// Connecting, TLS or the protocol failed; the whole cause chain.
    #[error("{0}")]
    Transport(String),
    #[error("too many redirects (more than {0})")]
    TooManyRedirects(usize),
    #[error("bad redirect: {0}")]
    BadRedirect(String),
    #[error("bad URL {0}")]
    BadUrl(String),
}

/// The process's [`WIDE_STREAMS`] slots.
static WIDE: LazyLock<Arc<Semaphore>> = LazyLock::new(|| Arc::new(Semaphore::new(WIDE_STREAMS)));

/// One of the [`WIDE_STREAMS`] slots, held by the [`Body`] that reads with a wide buffer.
pub struct Wide {
    _slot: OwnedSemaphorePermit,
}

type Pool = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// A pooled client. Cheap to clone (the pools are shared).
#[derive(Clone)]
pub struct HttpClient {
    client: Pool,
    /// Connections reading with [`H1_WIDE_BUF`]: only blob downloads holding a slot use them.
    wide: Pool,
    slots: Arc<Semaphore>,
    redirects: usize,
    connect_timeout: Duration,
}

impl HttpClient {
    /// A client verifying servers with `tls` (ALPN is set here: h2, http/1.1), following up
    /// to [`MAX_REDIRECTS`] redirects.
    pub fn new(tls: rustls::ClientConfig, connect_timeout: Duration) -> HttpClient {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp);
        // The wide pool keeps no more idle connections than there are slots: an idle
        // connection keeps its read buffer.
        let pool = |h1_buf, idle_per_host| {
            Client::builder(TokioExecutor::new())
                .timer(TokioTimer::new())
                .pool_timer(TokioTimer::new())
                .pool_idle_timeout(POOL_IDLE)
                .pool_max_idle_per_host(idle_per_host)
                .http1_max_buf_size(h1_buf)
                .http2_initial_stream_window_size(H2_STREAM_WINDOW)
                .http2_initial_connection_window_size(H2_CONN_WINDOW)
                .build(https.clone())
        };
        HttpClient {
            client: pool(H1_MAX_BUF, MAX_IDLE_PER_HOST),
            wide: pool(H1_WIDE_BUF, WIDE_STREAMS),
            slots: WIDE.clone(),
            redirects: MAX_REDIRECTS,
            connect_timeout,
        }
    }

    /// The same client with slots of its own instead of the process's (tests).
    #[cfg(test)]
    pub(crate) fn with_slots(mut self, slots: Arc<Semaphore>) -> HttpClient {
        self.slots = slots;
        self
    }

    /// The same client, answering a redirect with the 3xx itself (for the notary fetcher).
    pub fn without_redirects(mut self) -> HttpClient {
        self.redirects = 0;
        self
    }

    /// Sends a request with an empty body and `headers`, following redirects; `timeout`
    /// bounds everything up to the final response's head (the body is read afterwards).
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        timeout: Duration,
    ) -> Result<http::Response<Incoming>, SendError> {
        tokio::time::timeout(timeout, self.follow(&self.client, method, url, headers))
            .await
            .map_err(|_| SendError::Timeout(timeout))?
    }

    /// [`send`](Self::send), but a blob download (a GET of `.../blobs/<digest>`) takes a
    /// [`Wide`] slot when one is free and then reads with [`H1_WIDE_BUF`]; its body must hold
    /// the slot ([`Body::holding`]) until it is done.
    pub async fn send_reading(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        timeout: Duration,
    ) -> Result<(http::Response<Incoming>, Option<Wide>), SendError> {
        let slot = (method == Method::GET && is_blob_path(url.path()))
            .then(|| self.slots.clone().try_acquire_owned().ok())
            .flatten()
            .map(|s| Wide { _slot: s });
        let pool = if slot.is_some() {
            &self.wide
        } else {
            &self.client
        };
        let resp = tokio::time::timeout(timeout, self.follow(pool, method, url, headers))
            .await
            .map_err(|_| SendError::Timeout(timeout))??;
        Ok((resp, slot))
    }

    async fn follow(
        &self,
        pool: &Pool,
        mut method: Method,
        mut url: Url,
        mut headers: HeaderMap,
    ) -> Result<http::Response<Incoming>, SendError> {
        if !headers.contains_key(header::ACCEPT) {
            headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        }
        let mut hops = 0;
        loop {
            let resp = self.once(pool, &method, &url, &headers).await?;
            let status = resp.status();
            if self.redirects == 0 || !is_redirect(status) {
                return Ok(resp);
            }
            // A 3xx without a Location is an answer, not a redirect.
            let Some(location) = resp.headers().get(header::LOCATION) else {
                return Ok(resp);
            };
            if hops == self.redirects {
                return Err(SendError::TooManyRedirects(self.redirects));
            }
            hops += 1;
            let location = location
                .to_str()
                .map_err(|_| SendError::BadRedirect("Location is not text".into()))?;
            let next = url
                .join(location)
                .map_err(|e| SendError::BadRedirect(format!("Location {location:?}: {e}")))?;
            if !matches!(next.scheme(), "http" | "https") {
                return Err(SendError::BadRedirect(format!(
                    "Location {location:?} is not HTTP"
                )));
            }
            if next.origin() != url.origin() {
                for h in [
                    header::AUTHORIZATION,
                    header::COOKIE,
                    header::PROXY_AUTHORIZATION,
                ] {
                    headers.remove(h);
                }
            }
            if status == StatusCode::SEE_OTHER && method != Method::HEAD {
                method = Method::GET;
            }
            url = next;
        }
    }

    async fn once(
        &self,
        pool: &Pool,
        method: &Method,
        url: &Url,
        headers: &HeaderMap,
    ) -> Result<http::Response<Incoming>, SendError> {
        let mut url = url.clone();
        url.set_fragment(None);
        let uri: http::Uri = url
            .as_str()
            .parse()
            .map_err(|e| SendError::BadUrl(format!("{url}: {e}")))?;
        let mut req = Request::new(Empty::new());
        *req.method_mut() = method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = headers.clone();
        pool.request(req).await.map_err(|e| {
            if is_timeout(&e) {
                SendError::ConnectTimeout(self.connect_timeout)
            } else {
                SendError::Transport(error_chain(&e))
            }
        })
    }
}

/// Whether `path` ends in `/blobs/<algorithm>:<hex>` (a repository name has no `:`).
fn is_blob_path(path: &str) -> bool {
    path.rsplit_once("/blobs/")
        .is_some_and(|(_, d)| d.contains(':') && !d.contains('/'))
}

fn is_redirect(s: StatusCode) -> bool {
    matches!(
        s,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    )
}

/// Whether an I/O timeout (the connect timeout) is somewhere in the cause chain.
fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        cur = c.source();
    }
    false
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The connection failed mid-body (cut, reset, protocol error); the whole cause chain.
    #[error("{0}")]
    Read(String),
    /// Nothing arrived for this long (`upstream.idle_timeout_secs`).
    #[error("no data for {} s (idle timeout)", .0.as_secs())]
    Idle(Duration),
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
}

/// A response body as a stream of data chunks (trailers are skipped), failing when nothing
/// arrives for the idle timeout. An HTTP/1 chunk is what one read brought: about the read
/// buffer's cap ([`H1_MAX_BUF`], or [`H1_WIDE_BUF`] with a slot), up to twice that when a
/// partial chunk was left in the buffer; an HTTP/2 chunk is one DATA frame (16 KiB unless the
/// server negotiates more).
pub struct Body {
    inner: Incoming,
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
    done: bool,
    /// The wide slot of a blob download, given back when the body ends or is dropped.
    wide: Option<Wide>,
}

impl Body {
    /// `idle`: the longest silence allowed between chunks, counted from now.
    pub fn new(inner: Incoming, idle: Option<Duration>) -> Body {
        Body {
            inner,
            idle: idle.map(|d| (d, Box::pin(tokio::time::sleep(d)))),
            done: false,
            wide: None,
        }
    }

    /// The body holds `wide` (from [`HttpClient::send_reading`]) until it ends.
    pub fn holding(mut self, wide: Option<Wide>) -> Body {
        self.wide = wide;
        self
    }

    /// Whether the body reads with a wide buffer (holds a slot); for the tests.
    #[cfg(test)]
    pub(crate) fn is_wide(&self) -> bool {
        self.wide.is_some()
    }

    /// No more chunks: the slot goes back now, not when the stream around the body ends.
    fn end(&mut self) {
        self.done = true;
        self.wide = None;
    }

    /// `Content-Length` as the body announced it, when it did.
    pub fn exact_len(&self) -> Option<u64> {
        self.inner.size_hint().exact()
    }

    /// Reads the whole body, failing with [`BodyError::TooLarge`] past `limit` bytes (before
    /// reading anything when the length is announced).
    pub async fn read_limited(mut self, limit: usize) -> Result<Bytes, BodyError> {
        if self.exact_len().is_some_and(|n| n > limit as u64) {
            return Err(BodyError::TooLarge(limit));
        }
        let mut buf = BytesMut::new();
        while let Some(chunk) = self.next().await {
            let chunk = chunk?;
            if buf.len() + chunk.len() > limit {
                return Err(BodyError::TooLarge(limit));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }
}

impl Stream for Body {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(None) => {
                    this.end();
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(e))) => {
                    this.end();
                    return Poll::Ready(Some(Err(BodyError::Read(error_chain(&e)))));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some((d, sleep)) = &mut this.idle {
                        sleep.as_mut().reset(Instant::now() + *d);
                    }
                    match frame.into_data() {
                        Ok(data) if !data.is_empty() => return Poll::Ready(Some(Ok(data))),
                        _ => continue,
                    }
                }
                Poll::Pending => {
                    if let Some((d, sleep)) = &mut this.idle
                        && sleep.as_mut().poll(cx).is_ready()
                    {
                        let d = *d;
                        this.end();
                        return Poll::Ready(Some(Err(BodyError::Idle(d))));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
