//! Listeners: the registry API (plain or rustls TLS, optionally mTLS), client authentication,
//! the admin listener (`/healthz`, `/readyz`, `/metrics`), and graceful shutdown on SIGTERM
//! that lets in-flight pulls finish within `server.shutdown_grace_secs`.
//!
//! Map: this file runs the listeners and sends each request through [`entry`]; `client_auth`
//! holds what a client must present (htpasswd, TLS and mTLS); `limits` what protects the node
//! from clients (header limits with their 431 body, connections past `server.max_connections`).

mod client_auth;
mod limits;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::Proxy;
use crate::body::{Body, full};
use crate::config::{ClientAuth, Config};
use crate::error::{ApiError, Code, Side};
use crate::stall::WriteDeadline;
pub use client_auth::Htpasswd;
use client_auth::tls_acceptor;
pub use limits::MAX_HEADER_FIELDS;
use limits::{HYPER_HEADROOM, HeaderLimits, RefusalLog, refuse_connection};

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
