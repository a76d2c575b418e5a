//! The HTTP client toward registries, token services and notary servers: hyper-util's pooled
//! client over hyper-rustls (HTTP/1.1 and HTTP/2 by ALPN), with bounded buffers per stream,
//! redirects followed here, and a response [`Body`] with an idle deadline and reads bounded in
//! size.
//!
//! Why not reqwest: it gives no handle on hyper's HTTP/1 read buffer, which grows to about
//! 400 KiB per connection; with hundreds of blob streams that was most of the proxy's memory.
//! Here it is capped at [`H1_MAX_BUF`], and HTTP/2 flow-control windows are fixed (no
//! adaptive growth) at [`H2_STREAM_WINDOW`] per stream and [`H2_CONN_WINDOW`] per connection.
//!
//! Redirects: at most [`MAX_REDIRECTS`] (301, 302, 303, 307, 308; a relative `Location` is
//! resolved against the URL that answered). `Authorization` (and `Cookie`) are dropped when a
//! redirect leaves the origin (scheme, host, port): object storage behind a registry must not
//! see the registry's credentials. A 303 turns the request into a GET (a HEAD stays a HEAD).
//! Proxy variables (`HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY`) are not read.

use std::pin::Pin;
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
use tokio::time::{Instant, Sleep};
use url::Url;

use super::error_chain;

/// Largest HTTP/1 read buffer of one connection, so of one upstream stream (hyper's default
/// is 8 KiB + 400 KiB). Also the largest response head an upstream may send.
pub const H1_MAX_BUF: usize = 64 * 1024;
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

/// A pooled client. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
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
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .http1_max_buf_size(H1_MAX_BUF)
            .http2_initial_stream_window_size(H2_STREAM_WINDOW)
            .http2_initial_connection_window_size(H2_CONN_WINDOW)
            .build(https);
        HttpClient {
            client,
            redirects: MAX_REDIRECTS,
            connect_timeout,
        }
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
        tokio::time::timeout(timeout, self.follow(method, url, headers))
            .await
            .map_err(|_| SendError::Timeout(timeout))?
    }

    async fn follow(
        &self,
        mut method: Method,
        mut url: Url,
        mut headers: HeaderMap,
    ) -> Result<http::Response<Incoming>, SendError> {
        if !headers.contains_key(header::ACCEPT) {
            headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        }
        let mut hops = 0;
        loop {
            let resp = self.once(&method, &url, &headers).await?;
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
        self.client.request(req).await.map_err(|e| {
            if is_timeout(&e) {
                SendError::ConnectTimeout(self.connect_timeout)
            } else {
                SendError::Transport(error_chain(&e))
            }
        })
    }
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
/// arrives for the idle timeout. Chunks are at most [`H1_MAX_BUF`] (HTTP/1) or one DATA frame
/// (HTTP/2, 16 KiB unless the server negotiates more).
pub struct Body {
    inner: Incoming,
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
    done: bool,
}

impl Body {
    /// `idle`: the longest silence allowed between chunks, counted from now.
    pub fn new(inner: Incoming, idle: Option<Duration>) -> Body {
        Body {
            inner,
            idle: idle.map(|d| (d, Box::pin(tokio::time::sleep(d)))),
            done: false,
        }
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
                    this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
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
                        this.done = true;
                        return Poll::Ready(Some(Err(BodyError::Idle(*d))));
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
