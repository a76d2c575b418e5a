//! The request context every repository handler takes, and the reply every handler gives.
//!
//! [`Ctx`] carries what travels together through a request (pingora's per-request `CTX` is
//! the model): the proxy's shared state, the registry, the repository, the mode and trust
//! source that apply to it, HEAD or GET, and the client's headers. [`Reply`] is headers and
//! an optional body; [`Reply::into_response`] is the one place a HEAD's body is dropped.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Method, Response, StatusCode, header};
use tracing::{Instrument, info_span};

use super::{Proxy, Registry};
use crate::body::{Body, empty};
use crate::config::{Mode, TagDrift};
use crate::error::ApiError;
use crate::refs::RepoName;
use crate::trust::TrustSource;
use crate::trust::set::SourceSet;
use crate::upstream::{self, answer::Kind};

/// Drift check interval for a repository without a trust source (nothing to drift from; a
/// default keeps the field total).
const DEFAULT_REFRESH: Duration = Duration::from_secs(30);

/// One request to one repository of one registry.
pub struct Ctx<'a> {
    pub proxy: &'a Proxy,
    pub reg: &'a Registry,
    pub repo: RepoName,
    /// The repository's mode after overrides.
    pub mode: Mode,
    /// The repository's trust source after overrides; `None`: none configured.
    pub trust: Option<&'a Arc<dyn TrustSource>>,
    /// The sources the repository's policy composes (`[[policy]]`), or its own source as an
    /// implicit one-entry `any_of`.
    pub set: SourceSet,
    /// The repository's `on_tag_drift`.
    pub on_tag_drift: TagDrift,
    /// The trust source's refresh interval (how often drift is checked per tag).
    pub refresh: Duration,
    pub head: bool,
    /// The client's request headers.
    pub headers: &'a HeaderMap,
}

impl<'a> Ctx<'a> {
    pub fn new(
        proxy: &'a Proxy,
        reg: &'a Registry,
        repo: RepoName,
        head: bool,
        headers: &'a HeaderMap,
    ) -> Ctx<'a> {
        let (policy, trust) = reg.policy_for(&repo);
        let (mode, set) = reg.set_for(&repo, policy.mode, trust);
        Ctx {
            proxy,
            reg,
            repo,
            mode,
            trust,
            set,
            on_tag_drift: policy.on_tag_drift,
            refresh: policy
                .source
                .map_or(DEFAULT_REFRESH, |(_, s)| s.refresh_interval()),
            head,
            headers,
        }
    }

    /// Sends one request upstream for this repository (token scope `repository:<name>:pull`;
    /// the client's `Authorization` is forwarded only in passthrough mode, by the client).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: Option<&str>,
        fwd: &HeaderMap,
    ) -> Result<upstream::Response, ApiError> {
        let scope = format!("repository:{}:pull", self.repo);
        self.reg
            .upstream
            .send(
                method,
                path,
                query,
                fwd,
                self.headers.get(header::AUTHORIZATION),
                Some(&scope),
            )
            .instrument(info_span!("upstream", registry = %self.reg.name))
            .await
            .map_err(crate::upstream::UpstreamError::into_api)
    }

    /// Sends, and turns an upstream error status into our error.
    pub async fn send_ok(
        &self,
        method: Method,
        path: &str,
        query: Option<&str>,
        fwd: &HeaderMap,
        kind: Kind,
    ) -> Result<upstream::Response, ApiError> {
        let resp = self.send(method, path, query, fwd).await?;
        if !resp.inner.status().is_success() {
            return Err(self.reg.upstream.status_error(kind, resp.inner).await);
        }
        Ok(resp)
    }

    /// Reads a small body whole, within `server.max_manifest_bytes`.
    pub async fn read_limited(
        &self,
        resp: upstream::Response,
        kind: Kind,
    ) -> Result<Bytes, ApiError> {
        self.reg
            .upstream
            .read_limited(resp, kind, self.proxy.max_manifest)
            .await
    }

    /// Headers passed to the upstream: every `Accept` line (one per media type, as
    /// containers/image sends them); for manifests the full list when the client sent none.
    /// `Authorization` is added by `send` (passthrough only); nothing else is forwarded.
    pub fn forward_headers(&self, manifest: bool) -> HeaderMap {
        let mut out = HeaderMap::new();
        for v in self.headers.get_all(header::ACCEPT) {
            out.append(header::ACCEPT, v.clone());
        }
        if manifest && !out.contains_key(header::ACCEPT) {
            out.extend(upstream::manifest_accept());
        }
        out
    }
}

/// What a handler produces: status, headers and a body that a HEAD never sends.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Option<Body>,
}

impl Reply {
    /// 200 with these headers and body.
    pub fn ok(headers: HeaderMap, body: Option<Body>) -> Reply {
        Reply {
            status: StatusCode::OK,
            headers,
            body,
        }
    }

    /// The response; for HEAD without the body (headers, `Content-Length` included, stay as a
    /// GET would send them: RFC 9110 9.3.2).
    pub fn into_response(self, head: bool) -> Response<Body> {
        let body = match self.body {
            Some(b) if !head => b,
            _ => empty(),
        };
        let mut r = Response::new(body);
        *r.status_mut() = self.status;
        *r.headers_mut() = self.headers;
        r
    }
}

/// Copies the named headers (every value of each).
pub(super) fn copy_headers(from: &HeaderMap, to: &mut HeaderMap, names: &[HeaderName]) {
    for n in names {
        for v in from.get_all(n) {
            to.append(n.clone(), v.clone());
        }
    }
}
