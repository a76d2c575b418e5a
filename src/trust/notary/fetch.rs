//! Getting metadata bytes: the [`Fetch`] trait and the notary-server HTTP fetcher.
//!
//! Owns: transport only. `GET {server}/v2/{gun}/_trust/tuf/{role}.json` over TLS verified
//! against the system roots plus the configured CA file (rustls with the ring provider), with
//! per-file size limits enforced while reading (TUF "endless data" attack), a deadline per
//! fetch and a minimum transfer rate (TUF "slow retrieval" attack). It verifies nothing; the
//! bytes go to `verify`.

use std::path::Path;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{HeaderMap, Method, StatusCode};

use crate::upstream::client::{Body, HttpClient, SendError};

/// Why bytes could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The server answered 404: it does not have this role (unknown GUN, role or checksum).
    #[error("not found (404)")]
    NotFound,
    /// No answer: connection, TLS, DNS, or the server failing (5xx).
    #[error("{0}")]
    Unreachable(String),
    /// TUF endless-data attack: more bytes than this role may have.
    #[error("more than {limit} bytes (the limit for this file)")]
    TooLarge { limit: u64 },
    /// TUF slow-retrieval attack: too slow, or past the deadline.
    #[error("{0}")]
    TooSlow(String),
    /// Any other HTTP status.
    #[error("HTTP status {0}")]
    Status(u16),
}

impl FetchError {
    /// Whether the server is simply not there (so cached metadata may stand in, as the Docker
    /// client does offline). Attacks a reachable server can mount are not "unreachable".
    /// A stalling server counts too: serving still-valid cached metadata is safe.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, FetchError::Unreachable(_) | FetchError::TooSlow(_))
    }
}

/// Where metadata bytes come from: the notary server, the on-disk cache, or test files.
#[async_trait]
pub trait Fetch: Send + Sync {
    /// Bytes of `{role_path}.json` for `gun`, e.g. `timestamp` or `snapshot.<sha256 hex>`.
    /// Must fail with [`FetchError::TooLarge`] rather than return more than `max_len` bytes.
    async fn fetch(&self, gun: &str, role_path: &str, max_len: u64) -> Result<Bytes, FetchError>;

    /// A name for messages (the server URL).
    fn describe(&self) -> String;
}

/// Transfer limits of the HTTP fetcher.
#[derive(Debug, Clone)]
pub struct Timing {
    pub connect_timeout: Duration,
    /// Whole-fetch deadline, headers and body.
    pub deadline: Duration,
    /// After `grace`, the average rate must stay at or above this many bytes per second.
    pub min_bytes_per_sec: u64,
    pub grace: Duration,
}

impl Timing {
    /// The configured bounds (`[registries.notary.fetch]`).
    pub fn from_config(f: &crate::config::NotaryFetch) -> Timing {
        Timing {
            deadline: Duration::from_secs(f.deadline_secs),
            min_bytes_per_sec: f.min_bytes_per_sec,
            grace: Duration::from_secs(f.min_rate_after_secs),
            ..Timing::default()
        }
    }
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            connect_timeout: Duration::from_secs(10),
            deadline: Duration::from_secs(30),
            min_bytes_per_sec: 1024,
            grace: Duration::from_secs(5),
        }
    }
}

/// The real fetcher: a notary server over HTTPS (or HTTP when the URL says so).
pub struct HttpFetcher {
    client: HttpClient,
    base: String,
    timing: Timing,
}

impl HttpFetcher {
    /// `server` like `https://notary.example.com:4443`; `ca_file` is added to the system roots.
    pub fn new(server: &str, ca_file: Option<&Path>, timing: Timing) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        // Unreadable system roots are not fatal: a private CA file may be all that is needed.
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if let Some(path) = ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("reading notary ca_file {}: {e}", path.display()))?;
            let mut n = 0;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| format!("notary ca_file {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("notary ca_file {}: {e}", path.display()))?;
                n += 1;
            }
            if n == 0 {
                return Err(format!(
                    "notary ca_file {} holds no certificate",
                    path.display()
                ));
            }
        }
        let provider = crate::crypto::tls_provider();
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // ALPN (h2, http/1.1) is set by the client. A redirect is answered as the 3xx it is.
        let client = HttpClient::new(tls, timing.connect_timeout).without_redirects();
        Ok(HttpFetcher {
            client,
            base: server.trim_end_matches('/').to_string(),
            timing,
        })
    }

    async fn read_body(
        &self,
        mut body: Body,
        max_len: u64,
        started: Instant,
    ) -> Result<Bytes, FetchError> {
        if body.exact_len().is_some_and(|n| n > max_len) {
            return Err(FetchError::TooLarge { limit: max_len });
        }
        let mut buf = BytesMut::new();
        loop {
            let left = self.timing.deadline.saturating_sub(started.elapsed());
            let chunk = tokio::time::timeout(left, body.next())
                .await
                .map_err(|_| self.too_slow(buf.len()))?
                .transpose()
                .map_err(|e| FetchError::Unreachable(format!("reading body: {e}")))?;
            let Some(chunk) = chunk else { break };
            if buf.len() as u64 + chunk.len() as u64 > max_len {
                return Err(FetchError::TooLarge { limit: max_len });
            }
            buf.extend_from_slice(&chunk);
            let elapsed = started.elapsed();
            if elapsed > self.timing.grace
                && (buf.len() as f64 / elapsed.as_secs_f64()) < self.timing.min_bytes_per_sec as f64
            {
                return Err(FetchError::TooSlow(format!(
                    "transfer slower than {} bytes/s (slow retrieval refused)",
                    self.timing.min_bytes_per_sec
                )));
            }
        }
        Ok(buf.freeze())
    }

    fn too_slow(&self, got: usize) -> FetchError {
        FetchError::TooSlow(format!(
            "no complete answer within {:?} ({got} bytes received; slow retrieval refused)",
            self.timing.deadline
        ))
    }
}

impl HttpFetcher {
    /// GET `url`, at most `max_len` bytes, within the deadline and above the minimum rate.
    /// `label` names the file in metrics (one label per role, never per version).
    pub async fn get(&self, url: url::Url, max_len: u64, label: &str) -> Result<Bytes, FetchError> {
        crate::metrics::trust_fetch(label);
        let started = Instant::now();
        let resp = self
            .client
            .send(Method::GET, url, HeaderMap::new(), self.timing.deadline)
            .await
            .map_err(|e| match e {
                SendError::Timeout(_) => self.too_slow(0),
                e => FetchError::Unreachable(e.to_string()),
            })?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Err(FetchError::NotFound);
        }
        if status.is_server_error() {
            return Err(FetchError::Unreachable(format!(
                "HTTP status {}",
                status.as_u16()
            )));
        }
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        self.read_body(Body::new(resp.into_body(), None), max_len, started)
            .await
    }
}

#[async_trait]
impl Fetch for HttpFetcher {
    async fn fetch(&self, gun: &str, role_path: &str, max_len: u64) -> Result<Bytes, FetchError> {
        let url = format!("{}/v2/{gun}/_trust/tuf/{role_path}.json", self.base);
        let url =
            url::Url::parse(&url).map_err(|e| FetchError::Unreachable(format!("{url}: {e}")))?;
        self.get(url, max_len, metric_role(role_path)).await
    }

    fn describe(&self) -> String {
        self.base.clone()
    }
}

/// The metric label for a fetched file: `targets.<sha256>` -> `targets`, `3.root` -> `root`.
/// One label per role, never one per checksum or root version (a chain walk must not grow the
/// label set).
fn metric_role(role_path: &str) -> &str {
    let name = match role_path.split_once('.') {
        Some((version, rest)) if version.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => role_path,
    };
    name.split('.').next().unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::metric_role;

    #[test]
    fn metric_labels_are_one_per_role() {
        assert_eq!(metric_role("timestamp"), "timestamp");
        assert_eq!(
            metric_role(&format!("targets.{}", "a".repeat(64))),
            "targets"
        );
        assert_eq!(
            metric_role(&format!("targets/releases.{}", "b".repeat(64))),
            "targets/releases"
        );
        assert_eq!(metric_role("3.root"), "root");
        assert_eq!(metric_role("41.root"), "root");
    }
}
