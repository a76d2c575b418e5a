//! The client toward one upstream registry: TLS (system roots plus an optional CA file),
//! pooled HTTP/1.1 and HTTP/2 connections (hyper-util's client over hyper-rustls, with bounded
//! buffers per stream: see `client`), timeouts, a cap on concurrent requests, and registry auth
//! (anonymous, basic, Bearer token challenge with tokens cached per scope, or passthrough of the
//! client's own `Authorization`).
//!
//! Redirects (S3/GCS-backed blob storage) are followed here, so a client is never sent around
//! the proxy; `client` drops `Authorization` when a redirect leaves the registry's origin.
//! Secrets never reach a log line: credentials are held as `HeaderValue`s marked sensitive.

pub mod answer;
pub mod auth;
pub mod client;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;

use crate::config::{RegistryConfig, UpstreamLimits};
use auth::{Challenge, TokenResponse};
use client::{Body, HttpClient, SendError};

/// Every manifest media type a DCT-aware client may ask for. Sent when a client sends no
/// `Accept`, and on portcullis's own requests (the registry answers OCI content with 404, and
/// converts Docker schema2 to schema1 under another digest, when `Accept` does not list the
/// type).
pub const MANIFEST_ACCEPT: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// `Accept` with every manifest type, one line each (as containers/image sends them).
pub fn manifest_accept() -> HeaderMap {
    let mut accept = HeaderMap::new();
    for a in MANIFEST_ACCEPT {
        accept.append(header::ACCEPT, HeaderValue::from_static(a));
    }
    accept
}

/// Why a request to the upstream failed before it produced a response.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("registry {registry} is unreachable: {cause}")]
    Unreachable { registry: String, cause: String },
    #[error("registry {registry} did not answer within {secs} s")]
    Timeout { registry: String, secs: u64 },
    #[error(
        "registry {registry}: {max} upstream requests are in flight (upstream.max_concurrent) and none ended within {secs} s; retry shortly"
    )]
    Busy {
        registry: String,
        max: usize,
        secs: u64,
    },
    #[error("registry {registry}: token request to {realm} failed: {cause}")]
    Token {
        registry: String,
        realm: String,
        cause: String,
    },
}

impl UpstreamError {
    /// 503 for a dead upstream, 502 for one that answered badly or too slowly.
    pub fn status(&self) -> StatusCode {
        match self {
            UpstreamError::Unreachable { .. } | UpstreamError::Busy { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            UpstreamError::Timeout { .. } | UpstreamError::Token { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    /// The error as a response (an outage: see `ApiError::not_cached`), counted by kind.
    pub fn into_api(self) -> crate::error::ApiError {
        let (registry, kind) = match &self {
            UpstreamError::Unreachable { registry, .. } => (registry, "unreachable"),
            UpstreamError::Timeout { registry, .. } => (registry, "timeout"),
            UpstreamError::Token { registry, .. } => (registry, "token"),
            UpstreamError::Busy { registry, .. } => (registry, "busy"),
        };
        crate::metrics::upstream_fault(registry, kind);
        if let UpstreamError::Busy { .. } = self {
            // Our own limit, not an outage: no "not cached" wording, and the client is told
            // when to come back, as past server.max_connections.
            return crate::error::ApiError::new(
                self.status(),
                crate::error::Code::TooManyRequests,
                crate::error::Side::Upstream,
                self.to_string(),
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        crate::error::ApiError::outage(self.status(), self.to_string())
    }
}

/// A response plus the concurrency permit it holds until its body is done. The body fails
/// after `upstream.idle_timeout_secs` without data.
pub struct Response {
    pub inner: http::Response<Body>,
    pub permit: OwnedSemaphorePermit,
}

#[derive(Clone)]
struct Token {
    value: HeaderValue,
    expires: Instant,
}

/// One upstream registry.
pub struct Upstream {
    pub name: String,
    base: Url,
    client: HttpClient,
    /// `Basic` header built from the configured user and password file.
    basic: Option<HeaderValue>,
    /// Bearer tokens per scope, until they expire.
    tokens: moka::future::Cache<String, Token>,
    /// The registry asked for Basic auth once: send it up front from then on.
    wants_basic: std::sync::atomic::AtomicBool,
    /// Forward the client's own `Authorization` instead of ours.
    passthrough: bool,
    first_byte: Duration,
    /// Longest silence inside a body.
    idle: Duration,
    limit: Arc<Semaphore>,
    /// `upstream.max_concurrent`, for the message when `limit` has no permit to give.
    max_concurrent: usize,
}

/// Builds the rustls client config: system roots plus an optional extra CA bundle.
pub fn tls_config(ca_file: Option<&Path>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A broken system certificate must not stop the proxy; it just is not a root.
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("reading CA file {}: {e}", path.display()))?;
        let mut n = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| anyhow::anyhow!("CA file {}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| anyhow::anyhow!("CA file {}: {e}", path.display()))?;
            n += 1;
        }
        if n == 0 {
            anyhow::bail!("CA file {} holds no PEM certificate", path.display());
        }
    }
    let provider = crate::crypto::tls_provider();
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl Upstream {
    pub fn new(
        reg: &RegistryConfig,
        limits: &UpstreamLimits,
        passthrough: bool,
        limit: Arc<Semaphore>,
    ) -> anyhow::Result<Self> {
        let base = Url::parse(&reg.upstream)?;
        let tls = tls_config(reg.ca_file.as_deref())?;
        // No Accept-Encoding is sent and nothing is decoded: bytes must hash as stored.
        let client = HttpClient::new(tls, Duration::from_secs(limits.connect_timeout_secs));
        let basic = match &reg.auth {
            Some(a) => {
                let pw = std::fs::read_to_string(&a.password_file).map_err(|e| {
                    anyhow::anyhow!(
                        "registry {}: reading password_file {}: {e}",
                        reg.name,
                        a.password_file.display()
                    )
                })?;
                let pw = pw.trim_end_matches(['\n', '\r']);
                use base64::Engine;
                let enc = base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", a.username, pw));
                let mut v = HeaderValue::from_str(&format!("Basic {enc}"))?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(Upstream {
            name: reg.name.clone(),
            base,
            client,
            basic,
            tokens: moka::future::Cache::builder().max_capacity(10_000).build(),
            wants_basic: Default::default(),
            passthrough,
            first_byte: Duration::from_secs(limits.first_byte_timeout_secs),
            idle: Duration::from_secs(limits.idle_timeout_secs),
            limit,
            max_concurrent: limits.max_concurrent,
        })
    }

    /// What the registry's `tag` of `repo` points to now: the `Docker-Content-Digest` of a
    /// HEAD with every manifest type accepted (so a narrow `Accept` cannot make the registry
    /// convert the manifest and look "moved"). `None`: no such tag, or the registry does not
    /// say.
    pub async fn tag_digest(
        &self,
        repo: &crate::refs::RepoName,
        tag: &crate::refs::Tag,
        client_auth: Option<&HeaderValue>,
    ) -> Result<Option<crate::refs::Digest>, UpstreamError> {
        let path = format!("/v2/{repo}/manifests/{tag}");
        let scope = format!("repository:{repo}:pull");
        let resp = self
            .send(
                Method::HEAD,
                &path,
                None,
                &manifest_accept(),
                client_auth,
                Some(&scope),
            )
            .await?;
        if !resp.inner.status().is_success() {
            return Ok(None);
        }
        Ok(answer::content_digest(resp.inner.headers()))
    }

    /// The URL for an API path like `/v2/demo/app/manifests/v1` (built from validated parts).
    pub fn url(&self, path: &str, query: Option<&str>) -> Url {
        let mut u = self.base.clone();
        let prefix = u.path().trim_end_matches('/').to_owned();
        u.set_path(&format!("{prefix}{path}"));
        u.set_query(query);
        u
    }

    /// Sends one request. `headers` are forwarded as given (Accept lines, Range);
    /// `client_auth` is the client's `Authorization`, used only in passthrough mode;
    /// `scope` is the token scope this request needs (`repository:<name>:pull`).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        client_auth: Option<&HeaderValue>,
        scope: Option<&str>,
    ) -> Result<Response, UpstreamError> {
        // A request waits for a slot at most as long as for the registry's first byte: a queue
        // that never moves must end in an answer the client can act on, not a hung pull.
        let permit =
            match tokio::time::timeout(self.first_byte, self.limit.clone().acquire_owned()).await {
                Ok(Ok(p)) => p,
                Ok(Err(_)) => {
                    return Err(UpstreamError::Unreachable {
                        registry: self.name.clone(),
                        cause: "shutting down".into(),
                    });
                }
                Err(_) => {
                    return Err(UpstreamError::Busy {
                        registry: self.name.clone(),
                        max: self.max_concurrent,
                        secs: self.first_byte.as_secs(),
                    });
                }
            };
        let url = self.url(path, query);
        let started = Instant::now();
        let mut auth = self.auth_for(client_auth, scope).await;
        let mut retried = false;
        loop {
            let resp = self
                .raw(method.clone(), url.clone(), headers, auth.clone())
                .await?;
            crate::metrics::upstream_latency(&self.name, started.elapsed());
            if resp.status() != StatusCode::UNAUTHORIZED || self.passthrough || retried {
                return Ok(Response {
                    inner: resp,
                    permit,
                });
            }
            // One retry after answering the registry's challenge.
            let challenge = resp
                .headers()
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(auth::parse_challenge);
            retried = true;
            auth = match challenge {
                Some(Challenge::Basic { .. }) if self.basic.is_some() => {
                    self.wants_basic
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    self.basic.clone()
                }
                Some(Challenge::Bearer {
                    realm,
                    service,
                    scope: ch_scope,
                }) => {
                    let scope = ch_scope.or(scope.map(str::to_owned));
                    Some(
                        self.fetch_token(&realm, service.as_deref(), scope.as_deref())
                            .await?,
                    )
                }
                _ => {
                    return Ok(Response {
                        inner: resp,
                        permit,
                    });
                }
            };
        }
    }

    async fn raw(
        &self,
        method: Method,
        url: Url,
        headers: &HeaderMap,
        auth: Option<HeaderValue>,
    ) -> Result<http::Response<Body>, UpstreamError> {
        let mut headers = headers.clone();
        if let Some(a) = auth {
            headers.insert(header::AUTHORIZATION, a);
        }
        match self
            .client
            .send_reading(method, url, headers, self.first_byte)
            .await
        {
            Err(SendError::Timeout(_) | SendError::ConnectTimeout(_)) => {
                Err(UpstreamError::Timeout {
                    registry: self.name.clone(),
                    secs: self.first_byte.as_secs(),
                })
            }
            Err(e) => Err(UpstreamError::Unreachable {
                registry: self.name.clone(),
                cause: e.to_string(),
            }),
            Ok((r, wide)) => Ok(r.map(|b| Body::new(b, Some(self.idle)).holding(wide))),
        }
    }

    /// The `Authorization` to send first: passthrough, a cached token, or basic.
    async fn auth_for(
        &self,
        client_auth: Option<&HeaderValue>,
        scope: Option<&str>,
    ) -> Option<HeaderValue> {
        if self.passthrough {
            return client_auth.cloned();
        }
        if let Some(s) = scope
            && let Some(t) = self.tokens.get(s).await
        {
            if t.expires > Instant::now() {
                return Some(t.value);
            }
            self.tokens.invalidate(s).await;
        }
        if self.wants_basic.load(std::sync::atomic::Ordering::Relaxed) {
            return self.basic.clone();
        }
        None
    }

    /// Docker token spec: GET realm?service=..&scope=.. with our basic credentials (if any).
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
    ) -> Result<HeaderValue, UpstreamError> {
        let err = |cause: String| UpstreamError::Token {
            registry: self.name.clone(),
            realm: realm.to_owned(),
            cause,
        };
        let mut url = Url::parse(realm).map_err(|e| err(format!("bad realm: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            if let Some(s) = scope {
                q.append_pair("scope", s);
            }
        }
        let mut headers = HeaderMap::new();
        if let Some(b) = &self.basic {
            headers.insert(header::AUTHORIZATION, b.clone());
        }
        let resp = self
            .client
            .send(Method::GET, url, headers, self.first_byte)
            .await
            .map_err(|e| match e {
                SendError::Timeout(_) => err("timed out".into()),
                e => err(e.to_string()),
            })?;
        if !resp.status().is_success() {
            return Err(err(format!("status {}", resp.status())));
        }
        // Token responses are small; refuse anything that is not.
        let body = Body::new(resp.into_body(), Some(self.idle))
            .read_limited(64 * 1024)
            .await
            .map_err(|e| match e {
                client::BodyError::TooLarge(_) => err("token response larger than 64 KiB".into()),
                e => err(e.to_string()),
            })?;
        let tr: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| err(format!("bad token JSON: {e}")))?;
        let token = tr
            .token()
            .ok_or_else(|| err("no token in response".into()))?;
        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| err("token is not a valid header value".into()))?;
        value.set_sensitive(true);
        // Docker token spec: expires_in defaults to 60 s. Renew 10 s early.
        let ttl = tr.expires_in.unwrap_or(60).max(10);
        if let Some(s) = scope {
            self.tokens
                .insert(
                    s.to_owned(),
                    Token {
                        value: value.clone(),
                        expires: Instant::now() + Duration::from_secs(ttl - 5),
                    },
                )
                .await;
        }
        Ok(value)
    }
}

/// The full cause chain of an error on one line (hyper's Display hides the cause).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_keeps_base_path() {
        let reg = RegistryConfig {
            name: "r".into(),
            upstream: "https://r.example/prefix/".into(),
            default: true,
            mode: Default::default(),
            ca_file: None,
            auth: None,
            notary: None,
            tuf: None,
            repositories: vec![],
            tags_list: Default::default(),
            on_tag_drift: Default::default(),
        };
        let u = Upstream::new(
            &reg,
            &UpstreamLimits::default(),
            false,
            Arc::new(Semaphore::new(1)),
        )
        .unwrap();
        assert_eq!(
            u.url("/v2/demo/app/manifests/v1", Some("n=1")).as_str(),
            "https://r.example/prefix/v2/demo/app/manifests/v1?n=1"
        );
    }
}
