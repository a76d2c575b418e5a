//! Listeners: the registry API (plain or rustls TLS, optionally mTLS), client authentication,
//! the admin listener (`/healthz`, `/readyz`, `/metrics`), and graceful shutdown on SIGTERM
//! that lets in-flight pulls finish within `server.shutdown_grace_secs`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use sha2::Digest as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::api::Proxy;
use crate::body::{Body, full};
use crate::config::{ClientAuth, Config, shown};
use crate::error::{ApiError, Code, Side};
use crate::stall::WriteDeadline;

/// Checks clients' HTTP basic credentials against an htpasswd file (bcrypt only).
pub struct Htpasswd {
    users: HashMap<String, String>,
    /// bcrypt is slow on purpose; remember recent successes (by hash of the credentials) so a
    /// pull of 50 blobs does not cost 50 bcrypt runs.
    ok_cache: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Htpasswd {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading htpasswd {}: {e}", path.display()))?;
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (u, h) = line.split_once(':').ok_or_else(|| {
                anyhow::anyhow!(
                    "htpasswd {} line {}: expected user:hash",
                    path.display(),
                    i + 1
                )
            })?;
            if !(h.starts_with("$2y$") || h.starts_with("$2b$") || h.starts_with("$2a$")) {
                anyhow::bail!(
                    "htpasswd {} line {}: only bcrypt entries are accepted (htpasswd -B)",
                    path.display(),
                    i + 1
                );
            }
            users.insert(u.to_owned(), h.to_owned());
        }
        if users.is_empty() {
            anyhow::bail!("htpasswd {} has no users", path.display());
        }
        Ok(Htpasswd {
            users,
            ok_cache: Mutex::new(HashMap::new()),
        })
    }

    /// True when `authorization` is `Basic` with a user and password from the file.
    pub fn check(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(v) = authorization.and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let Some(b64) = v
            .strip_prefix("Basic ")
            .or_else(|| v.strip_prefix("basic "))
        else {
            return false;
        };
        use base64::Engine;
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
            return false;
        };
        let key: [u8; 32] = sha2::Sha256::digest(&raw).into();
        {
            let cache = self.ok_cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache
                .get(&key)
                .is_some_and(|t| t.elapsed() < Duration::from_secs(300))
            {
                return true;
            }
        }
        let Ok(s) = std::str::from_utf8(&raw) else {
            return false;
        };
        let Some((user, pass)) = s.split_once(':') else {
            return false;
        };
        let ok = self
            .users
            .get(user)
            .is_some_and(|h| bcrypt::verify(pass, h).unwrap_or(false));
        if ok {
            let mut cache = self.ok_cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(key, Instant::now());
        }
        ok
    }
}

/// Loads the TLS acceptor for the API listener (mTLS when configured).
fn tls_acceptor(cfg: &Config) -> anyhow::Result<Option<TlsAcceptor>> {
    let (Some(cert), Some(key)) = (&cfg.server.tls_cert, &cfg.server.tls_key) else {
        return Ok(None);
    };
    let certs = rustls_pemfile::certs(&mut read_named("server.tls_cert", cert)?.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            anyhow::anyhow!(
                "config key `server.tls_cert`: {}: {e}",
                shown(cert).display()
            )
        })?;
    if certs.is_empty() {
        anyhow::bail!(
            "config key `server.tls_cert`: {} holds no PEM certificate",
            shown(cert).display()
        );
    }
    let key = rustls_pemfile::private_key(&mut read_named("server.tls_key", key)?.as_slice())
        .map_err(|e| anyhow::anyhow!("config key `server.tls_key`: {}: {e}", shown(key).display()))?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "config key `server.tls_key`: {} holds no PEM private key",
                shown(key).display()
            )
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &cfg.server.client_auth {
        ClientAuth::Mtls { ca_file } => {
            let mut roots = rustls::RootCertStore::empty();
            let named = |e: &dyn std::fmt::Display| {
                anyhow::anyhow!(
                    "config key `server.client_auth.ca_file`: {}: {e}",
                    shown(ca_file).display()
                )
            };
            let pem = read_named("server.client_auth.ca_file", ca_file)?;
            for c in rustls_pemfile::certs(&mut pem.as_slice()) {
                let c = c.map_err(|e| named(&e))?;
                roots.add(c).map_err(|e| named(&e))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut sc = builder.with_single_cert(certs, key)?;
    sc.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(sc))))
}

/// Reads a file the config names; the error names the key and the path (as `preflight` does).
fn read_named(key: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        anyhow::anyhow!(
            "config key `{key}`: cannot read {}: {e}",
            shown(path).display()
        )
    })
}

/// Runs the API and admin listeners until `shutdown` fires, then drains.
pub async fn run(
    cfg: Config,
    proxy: Arc<Proxy>,
    api: TcpListener,
    admin: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let tls = tls_acceptor(&cfg)?;
    let htpasswd = match &cfg.server.client_auth {
        ClientAuth::Basic { htpasswd } => Some(Arc::new(Htpasswd::load(htpasswd)?)),
        _ => None,
    };
    let ready = Arc::new(AtomicBool::new(true));
    let admin_task = tokio::spawn(serve_admin(admin, ready.clone(), shutdown.clone()));
    let limits = HeaderLimits {
        fields: MAX_HEADER_FIELDS,
        bytes: cfg.server.max_header_bytes,
    };
    // hyper answers a request over its own limits with a bare 431 (no body, and no hook to
    // give it one), so its limits sit above ours; `HeaderLimits::check` answers between the two
    // with an OCI error body. Above hyper's ceiling the bare 431 remains (README "Limits").
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_buf_size(limits.ceiling_bytes().max(8192))
        // Above 100, hyper keeps its header index on the heap: one allocation per request,
        // no copy, next to an upstream round trip per request.
        .max_headers(limits.fields * HYPER_HEADROOM)
        .timer(hyper_util::rt::TokioTimer::new())
        // Slowloris: a client that trickles its headers loses the connection. hyper also
        // applies it to a kept-alive connection waiting for its next request.
        .header_read_timeout(Duration::from_secs(cfg.server.header_read_timeout_secs));
    builder
        .http2()
        .max_header_list_size(u32::try_from(limits.ceiling_bytes()).unwrap_or(u32::MAX));
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(tokio::sync::Semaphore::new(cfg.server.max_connections));
    let stall = Duration::from_secs(cfg.server.client_stall_timeout_secs);
    let mut refusals = RefusalLog::default();
    tracing::info!(listen = %api.local_addr()?, tls = tls.is_some(), "serving the registry API");
    loop {
        tokio::select! {
            accepted = api.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let Ok(slot) = connections.clone().try_acquire_owned() else {
                    crate::metrics::connection_refused();
                    refusals.refused(cfg.server.max_connections);
                    tokio::spawn(refuse_connection(stream, cfg.server.max_connections));
                    continue;
                };
                let proxy = proxy.clone();
                let htpasswd = htpasswd.clone();
                let svc = service_fn(move |req: Request<Incoming>| {
                    let proxy = proxy.clone();
                    let htpasswd = htpasswd.clone();
                    async move { Ok::<_, Infallible>(entry(&proxy, htpasswd.as_deref(), limits, req).await) }
                });
                let builder = builder.clone();
                let watcher = graceful.watcher();
                let tls = tls.clone();
                tokio::spawn(async move {
                    // Held for the connection's life: the bound is on open connections.
                    let _slot = slot;
                    let stream = WriteDeadline::new(stream, stall);
                    let result = match tls {
                        Some(acceptor) => match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                            Ok(Ok(s)) => watcher.watch(builder.serve_connection(TokioIo::new(s), svc).into_owned()).await,
                            Ok(Err(e)) => { tracing::debug!(%peer, error = %e, "TLS handshake failed"); return; }
                            Err(_) => { tracing::debug!(%peer, "TLS handshake timed out"); return; }
                        },
                        None => watcher.watch(builder.serve_connection(TokioIo::new(stream), svc).into_owned()).await,
                    };
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    ready.store(false, Ordering::SeqCst);
    drop(api);
    let grace = Duration::from_secs(cfg.server.shutdown_grace_secs);
    tracing::info!(
        grace_secs = grace.as_secs(),
        "shutting down: draining in-flight requests"
    );
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(grace) => tracing::warn!("grace period over; closing remaining connections"),
    }
    admin_task.abort();
    Ok(())
}

/// Says in the log that connections are being refused: the first at once, then at most one line
/// per 10 s with how many were refused meanwhile (a flood must not become a flood of lines).
#[derive(Default)]
struct RefusalLog {
    last: Option<std::time::Instant>,
    since: u64,
}

impl RefusalLog {
    const EVERY: Duration = Duration::from_secs(10);

    fn refused(&mut self, max: usize) {
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
async fn refuse_connection(stream: tokio::net::TcpStream, max: usize) {
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
const HYPER_HEADROOM: usize = 2;

/// The request header limits a client is told about in a 431 body.
#[derive(Debug, Clone, Copy)]
struct HeaderLimits {
    fields: usize,
    /// `server.max_header_bytes`.
    bytes: usize,
}

impl HeaderLimits {
    fn ceiling_bytes(self) -> usize {
        self.bytes.saturating_mul(HYPER_HEADROOM)
    }

    /// A 431 with an OCI body when the request is over either limit. The size is counted as
    /// on the HTTP/1.1 wire (request line, `name: value\r\n` per field), from lengths hyper
    /// already has: no copy, one pass over the fields.
    fn check<B>(self, req: &Request<B>) -> Result<(), ApiError> {
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

/// Header limits, client authentication, then the proxy.
async fn entry(
    proxy: &Proxy,
    htpasswd: Option<&Htpasswd>,
    limits: HeaderLimits,
    req: Request<Incoming>,
) -> Response<Body> {
    // Before authentication: an oversized Authorization header is refused for its size.
    if let Err(e) = limits.check(&req) {
        return e.into_response(req.method() == http::Method::HEAD);
    }
    if let Some(h) = htpasswd
        && !h.check(req.headers().get(header::AUTHORIZATION))
    {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            Code::Unauthorized,
            Side::Downstream,
            "portcullis requires a user and password (server.client_auth basic)",
        )
        .with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"portcullis\""),
        )
        .into_response(req.method() == http::Method::HEAD);
    }
    proxy.handle(req).await
}

async fn serve_admin(
    listener: TcpListener,
    ready: Arc<AtomicBool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let ready = ready.clone();
                let svc = service_fn(move |req: Request<Incoming>| {
                    let ready = ready.clone();
                    async move { Ok::<_, Infallible>(admin(&req, &ready)) }
                });
                let builder = builder.clone();
                tokio::spawn(async move {
                    let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                });
            }
            _ = shutdown.changed() => {
                ready.store(false, Ordering::SeqCst);
            }
        }
    }
}

fn admin(req: &Request<Incoming>, ready: &AtomicBool) -> Response<Body> {
    let (status, body, ctype) = match req.uri().path() {
        "/healthz" => (StatusCode::OK, "ok\n".to_owned(), "text/plain"),
        "/readyz" if ready.load(Ordering::SeqCst) => {
            (StatusCode::OK, "ready\n".to_owned(), "text/plain")
        }
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down\n".to_owned(),
            "text/plain",
        ),
        "/metrics" => (
            StatusCode::OK,
            crate::metrics::render(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "not found\n".to_owned(),
            "text/plain",
        ),
    };
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

/// Binds both listeners (so that errors like "address in use" come before anything starts).
pub async fn bind(cfg: &Config) -> anyhow::Result<(TcpListener, TcpListener)> {
    let bind = |a: SocketAddr, key: &'static str| async move {
        TcpListener::bind(a)
            .await
            .map_err(|e| anyhow::anyhow!("config key `{key}`: cannot listen on {a}: {e}"))
    };
    Ok((
        bind(cfg.server.listen, "server.listen").await?,
        bind(cfg.server.admin_listen, "server.admin_listen").await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htpasswd_checks_bcrypt_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h");
        let hash = bcrypt::hash("secret", 4).unwrap();
        std::fs::write(&p, format!("alice:{hash}\n")).unwrap();
        let h = Htpasswd::load(&p).unwrap();
        use base64::Engine;
        let enc = |s: &str| {
            HeaderValue::from_str(&format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            ))
            .unwrap()
        };
        assert!(h.check(Some(&enc("alice:secret"))));
        assert!(h.check(Some(&enc("alice:secret"))), "cached path");
        assert!(!h.check(Some(&enc("alice:wrong"))));
        assert!(!h.check(Some(&enc("bob:secret"))));
        assert!(!h.check(None));
        std::fs::write(&p, "alice:$apr1$abc$def\n").unwrap();
        assert!(Htpasswd::load(&p).is_err());
    }
}
