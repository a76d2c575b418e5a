//! The registry API handlers: route -> registry -> policy decision -> upstream -> response.
//!
//! Owns the proxy's view of each configured registry (upstream client, mode, trust source) and
//! the closure of trusted content. Trust decisions are made in `policy`; this module carries
//! them out, fetching manifests by their trusted digest and streaming blobs through
//! `blob::VerifyingStream`.

pub mod range;
pub mod route;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use tracing::{Instrument, info_span, warn};

use crate::blob::{Outcome, VerifyingStream};
use crate::body::{Body, empty, full};
use crate::closure::{self, Closure};
use crate::config::{Config, Mode};
use crate::error::{ApiError, Code, Side};
use crate::policy::{self, Action, Decision};
use crate::refs::{Digest, Reference, RepoName, Tag};
use crate::trust::{TrustSource, TrustedTarget};
use crate::upstream::{self, Upstream};
use route::Route;

pub const DOCKER_CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");

/// Every manifest media type a DCT-aware client may ask for. Sent when a client sends no
/// `Accept` (the registry answers OCI content with 404, and converts Docker schema2 to schema1
/// under another digest, when `Accept` does not list the type).
const MANIFEST_ACCEPT: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// Bytes of verified manifests kept in memory.
const MANIFEST_CACHE_BYTES: u64 = 32 * 1024 * 1024;

#[derive(Clone)]
struct CachedManifest {
    bytes: Bytes,
    content_type: Option<HeaderValue>,
    children: Arc<Vec<Digest>>,
}

/// Trust settings for repositories matching a pattern.
pub struct Override {
    pub pattern: String,
    pub mode: Option<Mode>,
    pub trust: Option<Arc<dyn TrustSource>>,
}

/// One configured registry.
pub struct Registry {
    pub name: String,
    pub upstream: Upstream,
    pub mode: Mode,
    pub trust: Option<Arc<dyn TrustSource>>,
    pub overrides: Vec<Override>,
    pub is_default: bool,
}

impl Registry {
    /// Mode and trust source for `repo`: the first matching override, else the registry's.
    fn policy_for(&self, repo: &RepoName) -> (Mode, Option<&Arc<dyn TrustSource>>) {
        for o in &self.overrides {
            if policy::glob_match(&o.pattern, repo.as_str()) {
                return (
                    o.mode.unwrap_or(self.mode),
                    o.trust.as_ref().or(self.trust.as_ref()),
                );
            }
        }
        (self.mode, self.trust.as_ref())
    }
}

/// The proxy: all registries plus shared state.
pub struct Proxy {
    pub registries: Vec<Registry>,
    closure: Closure,
    /// Verified manifests by (registry, repository, digest). Content-addressed and checked on
    /// the way in, so serving from here is as safe as fetching again; it saves the round trip
    /// on every pull of a popular tag. Not used in passthrough mode, where the registry must
    /// authorise each client's own request.
    manifests: moka::future::Cache<(String, RepoName, Digest), CachedManifest>,
    max_manifest: usize,
    passthrough: bool,
}

/// Builds the trust source for a registry (or a repository override) from its notary config.
pub type TrustFactory<'a> =
    dyn Fn(&str, &crate::config::NotaryConfig) -> anyhow::Result<Arc<dyn TrustSource>> + 'a;

impl Proxy {
    pub fn new(cfg: &Config, make_trust: &TrustFactory<'_>) -> anyhow::Result<Proxy> {
        let passthrough = cfg.server.client_auth == crate::config::ClientAuth::Passthrough;
        let limit = Arc::new(tokio::sync::Semaphore::new(cfg.upstream.max_concurrent));
        let mut registries = Vec::new();
        for r in &cfg.registries {
            let trust = match &r.notary {
                Some(n) => Some(make_trust(&r.name, n)?),
                None => None,
            };
            let mut overrides = Vec::new();
            for o in &r.repositories {
                overrides.push(Override {
                    pattern: o.pattern.clone(),
                    mode: o.mode,
                    trust: match &o.notary {
                        Some(n) => Some(make_trust(&r.name, n)?),
                        None => None,
                    },
                });
            }
            let registry = Registry {
                name: r.name.clone(),
                upstream: Upstream::new(r, &cfg.upstream, passthrough, limit.clone())?,
                mode: r.mode,
                trust,
                overrides,
                is_default: r.default || cfg.registries.len() == 1,
            };
            log_posture(&registry);
            registries.push(registry);
        }
        Ok(Proxy {
            registries,
            closure: Closure::default(),
            manifests: moka::future::Cache::builder()
                .weigher(|_, m: &CachedManifest| u32::try_from(m.bytes.len()).unwrap_or(u32::MAX))
                .max_capacity(MANIFEST_CACHE_BYTES)
                .build(),
            max_manifest: cfg.server.max_manifest_bytes,
            passthrough,
        })
    }

    fn select(&self, ns: Option<&str>) -> Result<&Registry, ApiError> {
        let found = match ns {
            Some(ns) => self.registries.iter().find(|r| r.name == ns),
            None => self.registries.iter().find(|r| r.is_default),
        };
        found.ok_or_else(|| {
            let names: Vec<&str> = self.registries.iter().map(|r| r.name.as_str()).collect();
            let msg = match ns {
                Some(ns) => format!(
                    "registry {ns:?} (from ?ns=) is not configured in portcullis; configured: {}",
                    names.join(", ")
                ),
                None => format!(
                    "no ?ns= given and no registry is marked default; configured: {}",
                    names.join(", ")
                ),
            };
            ApiError::new(
                StatusCode::NOT_FOUND,
                Code::NameUnknown,
                Side::Downstream,
                msg,
            )
        })
    }

    /// Handles one request: one span, one log line, one metric.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        let head = method == Method::HEAD;
        let path = req.uri().path().to_owned();
        let query = req.uri().query().map(str::to_owned);
        let parsed = route::parse(&method, &path, query.as_deref());
        let (kind, repo, reference) = match &parsed {
            Ok(p) => (
                p.route.kind(),
                p.route.repo().map(|r| r.to_string()).unwrap_or_default(),
                match &p.route {
                    Route::Manifest { reference, .. } => reference.to_string(),
                    Route::Blob { digest, .. } | Route::Referrers { digest, .. } => {
                        digest.to_string()
                    }
                    _ => String::new(),
                },
            ),
            Err(_) => ("invalid", String::new(), String::new()),
        };
        let span = info_span!("request", %method, route = kind, repository = %repo, reference = %reference);
        let (resp, registry) = async {
            let parsed = match parsed {
                Ok(p) => p,
                Err(e) => return (e.into_response(head), String::new()),
            };
            let reg = match self.select(parsed.ns.as_deref()) {
                Ok(r) => r,
                Err(e) => return (e.into_response(head), String::new()),
            };
            let resp = self
                .dispatch(reg, parsed.route, head, req.headers())
                .await
                .unwrap_or_else(|e| {
                    if e.side == Side::Trust {
                        crate::metrics::denial(&reg.name, deny_reason(&e));
                    }
                    log_error(&e);
                    e.into_response(head)
                });
            (resp, reg.name.clone())
        }
        .instrument(span.clone())
        .await;
        let status = resp.status().as_u16();
        crate::metrics::request(kind, status, &registry);
        span.in_scope(|| {
            tracing::info!(
                status,
                registry = %registry,
                duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                "request"
            )
        });
        resp
    }

    async fn dispatch(
        &self,
        reg: &Registry,
        route: Route,
        head: bool,
        headers: &HeaderMap,
    ) -> Result<Response<Body>, ApiError> {
        match route {
            Route::Base => self.base(reg, headers).await,
            Route::Manifest {
                repo,
                reference: Reference::Tag(tag),
            } => self.manifest_by_tag(reg, &repo, &tag, head, headers).await,
            Route::Manifest {
                repo,
                reference: Reference::Digest(d),
            } => self.manifest_by_digest(reg, &repo, &d, head, headers).await,
            Route::Blob { repo, digest } => self.blob(reg, &repo, &digest, head, headers).await,
            Route::Tags { repo, n, last } => {
                let q = {
                    let mut q = url::form_urlencoded::Serializer::new(String::new());
                    if let Some(n) = n {
                        q.append_pair("n", &n.to_string());
                    }
                    if let Some(l) = &last {
                        q.append_pair("last", l.as_str());
                    }
                    q.finish()
                };
                let path = format!("/v2/{repo}/tags/list");
                self.passthrough_small(
                    reg,
                    &repo,
                    &path,
                    (!q.is_empty()).then_some(q.as_str()),
                    head,
                    headers,
                    "tags",
                )
                .await
            }
            Route::Referrers {
                repo,
                digest,
                artifact_type,
            } => {
                let (mode, trust) = reg.policy_for(&repo);
                let d = self
                    .digest_decision(reg, &repo, &digest, mode, trust, headers)
                    .await;
                self.carry_out(reg, mode, d)?;
                let q = artifact_type.map(|a| {
                    url::form_urlencoded::Serializer::new(String::new())
                        .append_pair("artifactType", &a)
                        .finish()
                });
                let path = format!("/v2/{repo}/referrers/{digest}");
                self.passthrough_small(reg, &repo, &path, q.as_deref(), head, headers, "referrers")
                    .await
            }
        }
    }

    /// `GET /v2/`. In passthrough mode the upstream's answer (and its 401 challenge) is the
    /// answer, so clients learn where to authenticate; otherwise we answer ourselves.
    async fn base(&self, reg: &Registry, headers: &HeaderMap) -> Result<Response<Body>, ApiError> {
        if self.passthrough {
            let resp = reg
                .upstream
                .send(
                    Method::GET,
                    "/v2/",
                    None,
                    &HeaderMap::new(),
                    headers.get(header::AUTHORIZATION),
                    None,
                )
                .await
                .map_err(upstream_err)?;
            if resp.inner.status() == StatusCode::UNAUTHORIZED {
                return Err(self.upstream_status_error(reg, "base", resp.inner).await);
            }
        }
        let mut r = Response::new(full("{}"));
        r.headers_mut()
            .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(r)
    }

    /// Carries out a decision under a mode: refuse, or serve (logging audit findings).
    fn carry_out(&self, reg: &Registry, mode: Mode, d: Decision) -> Result<(), ApiError> {
        match policy::apply(mode, d) {
            Action::Serve => Ok(()),
            Action::ServeAudited { reason, message } => {
                crate::metrics::audit_would_deny(&reg.name, reason);
                warn!(registry = %reg.name, reason, %message, "audit mode: serving content that enforce mode would refuse");
                Ok(())
            }
            Action::Refuse { reason, message } => {
                warn!(registry = %reg.name, reason, %message, "denied");
                Err(ApiError::denied(reason, message))
            }
        }
    }

    async fn manifest_by_tag(
        &self,
        reg: &Registry,
        repo: &RepoName,
        tag: &Tag,
        head: bool,
        headers: &HeaderMap,
    ) -> Result<Response<Body>, ApiError> {
        let (mode, trust) = reg.policy_for(repo);
        let resolved = match (mode, trust) {
            (Mode::Skip, _) => None,
            (_, None) => {
                self.carry_out(reg, mode, policy::no_trust_source(&reg.name, repo))?;
                None
            }
            (_, Some(t)) => {
                let r = t.resolve(repo, tag).instrument(info_span!("trust")).await;
                self.carry_out(reg, mode, policy::for_tag(&reg.name, repo, tag, &r))?;
                r.ok()
            }
        };
        let Some(target) = resolved else {
            // Skip mode, or audit mode with no trusted digest: pass the tag through, still
            // checking that the bytes match the digest the registry claims.
            return self
                .serve_manifest(reg, repo, tag.as_str(), None, head, headers)
                .await;
        };
        self.closure.add_root(&reg.name, repo, &target.digest);
        // Fetch BY THE TRUSTED DIGEST, never by tag: the tag may move between check and fetch.
        let digest = target.digest.to_string();
        let serve = self.serve_manifest(reg, repo, &digest, Some(&target), head, headers);
        if mode != Mode::Enforce {
            return serve.await;
        }
        // The moved-tag check and the fetch are independent round trips: run them together, and
        // let a refusal win over whatever the fetch produced.
        let (moved, served) = tokio::join!(
            self.refuse_moved_tag(reg, repo, tag, &target, headers),
            serve
        );
        moved?;
        served
    }

    /// A signed tag that the registry now maps to other content was re-pushed without being
    /// signed (or tampered with). Docker's client would quietly pull the old signed digest;
    /// we refuse instead, so the operator sees it and either signs the new content or puts
    /// the signed content back. Checked with the full Accept list, so a client's narrower
    /// Accept cannot make the registry convert the manifest and look "moved".
    async fn refuse_moved_tag(
        &self,
        reg: &Registry,
        repo: &RepoName,
        tag: &Tag,
        target: &TrustedTarget,
        client_headers: &HeaderMap,
    ) -> Result<(), ApiError> {
        let mut accept = HeaderMap::new();
        for a in MANIFEST_ACCEPT {
            accept.append(header::ACCEPT, HeaderValue::from_static(a));
        }
        let path = format!("/v2/{repo}/manifests/{tag}");
        let resp = self
            .send(
                reg,
                repo,
                Method::HEAD,
                &path,
                None,
                &accept,
                client_headers,
            )
            .await?;
        let current: Option<Digest> = resp
            .inner
            .headers()
            .get(&DOCKER_CONTENT_DIGEST)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.parse().ok());
        match current {
            Some(c) if c != target.digest => {
                let message = format!(
                    "{}/{repo}:{tag} refused: the registry maps the tag to {c}, but it is signed \
                     (in {}) for {}; the tag was re-pushed without signing. Sign the new content, \
                     or push the signed content back",
                    reg.name, target.role, target.digest
                );
                self.carry_out(
                    reg,
                    Mode::Enforce,
                    Decision::Deny {
                        reason: "tag_moved",
                        message,
                    },
                )
            }
            // The same digest, or a registry that does not say: the by-digest fetch decides.
            _ => Ok(()),
        }
    }

    async fn manifest_by_digest(
        &self,
        reg: &Registry,
        repo: &RepoName,
        digest: &Digest,
        head: bool,
        headers: &HeaderMap,
    ) -> Result<Response<Body>, ApiError> {
        let (mode, trust) = reg.policy_for(repo);
        let d = self
            .digest_decision(reg, repo, digest, mode, trust, headers)
            .await;
        self.carry_out(reg, mode, d)?;
        self.serve_manifest(reg, repo, &digest.to_string(), None, head, headers)
            .await
    }

    /// Fetches a manifest and serves it. With `target`, the bytes must match the signed digest
    /// and length; a reference that is a digest must match too; by tag (skip / audit only) the
    /// registry's `Docker-Content-Digest` is checked when it sends one.
    async fn serve_manifest(
        &self,
        reg: &Registry,
        repo: &RepoName,
        reference: &str,
        target: Option<&TrustedTarget>,
        head: bool,
        headers: &HeaderMap,
    ) -> Result<Response<Body>, ApiError> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let fwd = forward_headers(headers, true, self.passthrough);
        let by_digest: Option<Digest> = reference.parse().ok();
        if head {
            let resp = self
                .send(reg, repo, Method::HEAD, &path, None, &fwd, headers)
                .await?;
            if !resp.inner.status().is_success() {
                return Err(self
                    .upstream_status_error(reg, "manifest", resp.inner)
                    .await);
            }
            let mut out = Response::new(empty());
            copy_headers(
                resp.inner.headers(),
                out.headers_mut(),
                &[
                    header::CONTENT_TYPE,
                    header::CONTENT_LENGTH,
                    DOCKER_CONTENT_DIGEST,
                    header::ETAG,
                ],
            );
            if let Some(t) = target {
                let len = content_length(resp.inner.headers());
                if len.is_some_and(|l| l != t.length) {
                    return Err(mismatch(
                        reg,
                        repo,
                        reference,
                        "length differs from the signed length",
                    ));
                }
                out.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(t.length));
            }
            if let Some(d) = &by_digest {
                out.headers_mut()
                    .insert(DOCKER_CONTENT_DIGEST, header_value(&d.to_string())?);
            }
            return Ok(out);
        }
        let wanted = target.map(|t| t.digest.clone()).or(by_digest.clone());
        if let Some(d) = &wanted
            && !self.passthrough
            && let Some(c) = self
                .manifests
                .get(&(reg.name.clone(), repo.clone(), d.clone()))
                .await
        {
            self.closure.add_children(&reg.name, repo, d, &c.children);
            return manifest_response(&c, d);
        }
        let resp = self
            .send(reg, repo, Method::GET, &path, None, &fwd, headers)
            .await?;
        if !resp.inner.status().is_success() {
            return Err(self
                .upstream_status_error(reg, "manifest", resp.inner)
                .await);
        }
        let upstream_headers = resp.inner.headers().clone();
        let bytes = self.read_limited(reg, resp, "manifest").await?;
        crate::metrics::bytes_streamed(&reg.name, bytes.len() as u64);
        // The digest the bytes must have: the signed one, the one asked for, or (by tag) the
        // one the registry claims.
        let claimed: Option<Digest> = upstream_headers
            .get(&DOCKER_CONTENT_DIGEST)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.parse().ok());
        let expected = target
            .map(|t| t.digest.clone())
            .or(by_digest.clone())
            .or(claimed);
        let actual = match &expected {
            Some(e) => e.of_same_algorithm(&bytes),
            None => Digest::sha256_of(&bytes),
        };
        if let Some(e) = &expected
            && *e != actual
        {
            return Err(mismatch(
                reg,
                repo,
                reference,
                &format!("bytes hash to {actual}, not {e}"),
            ));
        }
        if let Some(t) = target
            && t.length != bytes.len() as u64
        {
            return Err(mismatch(
                reg,
                repo,
                reference,
                &format!("{} bytes, signed length is {}", bytes.len(), t.length),
            ));
        }
        // Record what this manifest references, if it is itself trusted.
        let children = match closure::children(&bytes) {
            Ok(ch) => ch.all(),
            Err(e) => {
                tracing::debug!(error = %e, "manifest is not JSON we can follow");
                Vec::new()
            }
        };
        self.closure
            .add_children(&reg.name, repo, &actual, &children);
        let cached = CachedManifest {
            bytes,
            content_type: upstream_headers.get(header::CONTENT_TYPE).cloned(),
            children: Arc::new(children),
        };
        // Only what a digest named (the signature's, or the client's) is cached by that digest.
        if wanted.is_some() && !self.passthrough {
            self.manifests
                .insert(
                    (reg.name.clone(), repo.clone(), actual.clone()),
                    cached.clone(),
                )
                .await;
        }
        manifest_response(&cached, &actual)
    }

    /// Allow/deny for content by digest, rebuilding the closure from the trust source when the
    /// digest is unknown (e.g. after a restart) before refusing.
    async fn digest_decision(
        &self,
        reg: &Registry,
        repo: &RepoName,
        digest: &Digest,
        mode: Mode,
        trust: Option<&Arc<dyn TrustSource>>,
        client_headers: &HeaderMap,
    ) -> Decision {
        if mode == Mode::Skip {
            return Decision::Allow;
        }
        let Some(trust) = trust else {
            return policy::no_trust_source(&reg.name, repo);
        };
        let targets = match trust
            .trusted_targets(repo)
            .instrument(info_span!("trust"))
            .await
        {
            Ok(t) => t,
            Err(e) => {
                return Decision::Deny {
                    reason: e.reason(),
                    message: format!("{digest} in {}/{repo} refused: {e}", reg.name),
                };
            }
        };
        let trusted: HashSet<Digest> = targets.iter().map(|t| t.digest.clone()).collect();
        let mut roots = self.closure.roots_of(&reg.name, repo, digest);
        let decision = policy::for_digest(&reg.name, repo, digest, &roots, &trusted);
        if decision == Decision::Allow
            || !self
                .closure
                .begin_rebuild(&reg.name, repo, Duration::from_secs(30))
        {
            return decision;
        }
        self.rebuild_closure(reg, repo, &targets, client_headers)
            .await;
        roots = self.closure.roots_of(&reg.name, repo, digest);
        policy::for_digest(&reg.name, repo, digest, &roots, &trusted)
    }

    /// Walks every trusted target's manifests (index -> manifests) to recompute the closure.
    async fn rebuild_closure(
        &self,
        reg: &Registry,
        repo: &RepoName,
        targets: &[TrustedTarget],
        client_headers: &HeaderMap,
    ) {
        const MAX_MANIFESTS: usize = 2_000;
        let mut queue: Vec<Digest> = Vec::new();
        for t in targets {
            self.closure.add_root(&reg.name, repo, &t.digest);
            queue.push(t.digest.clone());
        }
        let mut seen = HashSet::new();
        let mut accept = HeaderMap::new();
        for a in MANIFEST_ACCEPT {
            accept.append(header::ACCEPT, HeaderValue::from_static(a));
        }
        while let Some(d) = queue.pop() {
            if !seen.insert(d.clone()) || seen.len() > MAX_MANIFESTS {
                continue;
            }
            let path = format!("/v2/{repo}/manifests/{d}");
            let resp = match self
                .send(reg, repo, Method::GET, &path, None, &accept, client_headers)
                .await
            {
                Ok(r) if r.inner.status().is_success() => r,
                Ok(r) => {
                    warn!(%repo, digest = %d, status = %r.inner.status(), "closure rebuild: manifest not fetched");
                    continue;
                }
                Err(e) => {
                    warn!(%repo, digest = %d, error = %e, "closure rebuild: upstream failed");
                    continue;
                }
            };
            let Ok(bytes) = self.read_limited(reg, resp, "manifest").await else {
                continue;
            };
            if d.of_same_algorithm(&bytes) != d {
                warn!(%repo, digest = %d, "closure rebuild: manifest does not match its digest");
                continue;
            }
            if let Ok(ch) = closure::children(&bytes) {
                self.closure.add_children(&reg.name, repo, &d, &ch.all());
                queue.extend(ch.manifests);
            }
        }
        tracing::info!(%repo, targets = targets.len(), manifests = seen.len(), "rebuilt closure of trusted content");
    }

    async fn blob(
        &self,
        reg: &Registry,
        repo: &RepoName,
        digest: &Digest,
        head: bool,
        headers: &HeaderMap,
    ) -> Result<Response<Body>, ApiError> {
        let (mode, trust) = reg.policy_for(repo);
        let d = self
            .digest_decision(reg, repo, digest, mode, trust, headers)
            .await;
        self.carry_out(reg, mode, d)?;
        let path = format!("/v2/{repo}/blobs/{digest}");
        let fwd = forward_headers(headers, false, self.passthrough);
        if head {
            let resp = self
                .send(reg, repo, Method::HEAD, &path, None, &fwd, headers)
                .await?;
            if !resp.inner.status().is_success() {
                return Err(self.upstream_status_error(reg, "blob", resp.inner).await);
            }
            let mut out = Response::new(empty());
            copy_headers(
                resp.inner.headers(),
                out.headers_mut(),
                &[header::CONTENT_TYPE, header::CONTENT_LENGTH, header::ETAG],
            );
            out.headers_mut()
                .insert(DOCKER_CONTENT_DIGEST, header_value(&digest.to_string())?);
            out.headers_mut()
                .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            return Ok(out);
        }
        // Always read from byte 0: the digest covers the whole blob (see blob.rs).
        let resp = self
            .send(reg, repo, Method::GET, &path, None, &fwd, headers)
            .await?;
        if !resp.inner.status().is_success() {
            return Err(self.upstream_status_error(reg, "blob", resp.inner).await);
        }
        let total = content_length(resp.inner.headers());
        let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
        let outcome = range::interpret(range, total);
        let mut out_headers = HeaderMap::new();
        copy_headers(
            resp.inner.headers(),
            &mut out_headers,
            &[header::CONTENT_TYPE, header::ETAG],
        );
        out_headers.insert(DOCKER_CONTENT_DIGEST, header_value(&digest.to_string())?);
        out_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        let (status, window) = match (outcome, total) {
            (range::RangeOutcome::Unsatisfiable, Some(t)) => {
                let e = ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    Code::RangeInvalid,
                    Side::Downstream,
                    format!("range {range:?} is outside the blob's {t} bytes"),
                )
                .with_header(
                    header::CONTENT_RANGE,
                    header_value(&format!("bytes */{t}"))?,
                );
                return Err(e);
            }
            (range::RangeOutcome::Partial(w), Some(t)) => {
                out_headers.insert(
                    header::CONTENT_RANGE,
                    header_value(&format!("bytes {}-{}/{t}", w.start, w.end - 1))?,
                );
                out_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(w.end - w.start));
                (StatusCode::PARTIAL_CONTENT, Some(w))
            }
            _ => {
                if let Some(t) = total {
                    out_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(t));
                }
                (StatusCode::OK, None)
            }
        };
        let registry = reg.name.clone();
        let (repo_s, digest_s) = (repo.to_string(), digest.to_string());
        let observer = Box::new(move |o: &Outcome| match o {
            Outcome::Verified { bytes } => crate::metrics::bytes_streamed(&registry, *bytes),
            Outcome::Mismatch { bytes, actual } => {
                crate::metrics::digest_mismatch(&registry);
                crate::metrics::bytes_streamed(&registry, *bytes);
                tracing::error!(registry = %registry, repository = %repo_s, digest = %digest_s, actual = %actual, "upstream blob does not match its digest; response aborted");
            }
            Outcome::UpstreamFailed { bytes, error } => {
                crate::metrics::bytes_streamed(&registry, *bytes);
                tracing::warn!(registry = %registry, repository = %repo_s, digest = %digest_s, error = %error, "upstream blob stream failed; response aborted");
            }
            Outcome::Abandoned { bytes } => crate::metrics::bytes_streamed(&registry, *bytes),
        });
        let upstream::Response { inner, permit } = resp;
        let stream = VerifyingStream::new(
            Box::pin(inner.bytes_stream()),
            digest.clone(),
            total,
            window,
            Some(permit),
            observer,
        );
        let mut out = Response::new(StreamBody::new(stream).boxed_unsync());
        *out.status_mut() = status;
        *out.headers_mut() = out_headers;
        Ok(out)
    }

    /// Small JSON endpoints (tags list, referrers) passed through with a size limit.
    #[allow(clippy::too_many_arguments)]
    async fn passthrough_small(
        &self,
        reg: &Registry,
        repo: &RepoName,
        path: &str,
        query: Option<&str>,
        head: bool,
        headers: &HeaderMap,
        kind: &'static str,
    ) -> Result<Response<Body>, ApiError> {
        let fwd = forward_headers(headers, false, self.passthrough);
        let method = if head { Method::HEAD } else { Method::GET };
        let resp = self
            .send(reg, repo, method, path, query, &fwd, headers)
            .await?;
        if !resp.inner.status().is_success() {
            return Err(self.upstream_status_error(reg, kind, resp.inner).await);
        }
        let h = resp.inner.headers().clone();
        let bytes = if head {
            Bytes::new()
        } else {
            self.read_limited(reg, resp, kind).await?
        };
        let mut out = Response::new(full(bytes.clone()));
        copy_headers(
            &h,
            out.headers_mut(),
            &[header::CONTENT_TYPE, header::LINK, header::ETAG],
        );
        if !head {
            out.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        reg: &Registry,
        repo: &RepoName,
        method: Method,
        path: &str,
        query: Option<&str>,
        fwd: &HeaderMap,
        client_headers: &HeaderMap,
    ) -> Result<upstream::Response, ApiError> {
        let scope = format!("repository:{repo}:pull");
        reg.upstream
            .send(
                method,
                path,
                query,
                fwd,
                client_headers.get(header::AUTHORIZATION),
                Some(&scope),
            )
            .instrument(info_span!("upstream", registry = %reg.name))
            .await
            .map_err(upstream_err)
    }

    /// Reads a body whole, refusing more than the manifest limit.
    async fn read_limited(
        &self,
        reg: &Registry,
        resp: upstream::Response,
        what: &str,
    ) -> Result<Bytes, ApiError> {
        let limit = self.max_manifest;
        if content_length(resp.inner.headers()).is_some_and(|l| l > limit as u64) {
            return Err(too_large(reg, what, limit));
        }
        let mut buf = BytesMut::new();
        let mut stream = resp.inner.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::upstream(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "registry {} failed while sending a {what}: {}",
                        reg.name,
                        upstream::error_chain(&e)
                    ),
                )
            })?;
            if buf.len() + chunk.len() > limit {
                return Err(too_large(reg, what, limit));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }

    /// Maps an upstream error status to our response: its own 404 stays a 404 with the right
    /// OCI code; a 401 goes back to the client only in passthrough mode; 5xx becomes 502.
    async fn upstream_status_error(
        &self,
        reg: &Registry,
        kind: &str,
        resp: reqwest::Response,
    ) -> ApiError {
        let status = resp.status();
        let www = resp
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .cloned()
            .collect::<Vec<_>>();
        let body = read_error_body(resp).await;
        let (up_code, up_msg) = parse_oci_error(&body);
        let detail = up_msg.map(|m| format!(": {m}")).unwrap_or_default();
        match status {
            StatusCode::NOT_FOUND => {
                let code = match kind {
                    "manifest" => Code::ManifestUnknown,
                    "blob" => Code::BlobUnknown,
                    _ => Code::NameUnknown,
                };
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    code,
                    Side::Upstream,
                    format!("registry {} has no such {kind}{detail}", reg.name),
                )
            }
            StatusCode::UNAUTHORIZED if self.passthrough => {
                let mut e = ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    Code::Unauthorized,
                    Side::Upstream,
                    format!("registry {} requires authentication{detail}", reg.name),
                );
                for v in www {
                    e = e.with_header(header::WWW_AUTHENTICATE, v);
                }
                e
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ApiError::upstream(
                StatusCode::BAD_GATEWAY,
                format!(
                    "registry {} refused portcullis's credentials ({status}){detail}; check [registries.auth]",
                    reg.name
                ),
            ),
            s if s.is_client_error() => {
                let mut e = ApiError::new(
                    s,
                    Code::Unknown,
                    Side::Upstream,
                    format!("registry {} answered {s}{detail}", reg.name),
                );
                if let Some(c) = up_code {
                    e.detail = Some(serde_json::json!({ "upstream_code": c }));
                }
                e
            }
            s => ApiError::upstream(
                StatusCode::BAD_GATEWAY,
                format!("registry {} answered {s}{detail}", reg.name),
            ),
        }
    }
}

fn log_posture(r: &Registry) {
    match (r.mode, r.trust.is_some()) {
        (Mode::Skip, _) => {
            warn!(registry = %r.name, "mode = skip: content from this registry is served WITHOUT trust verification")
        }
        (Mode::Audit, _) => {
            warn!(registry = %r.name, "mode = audit: unverified content is served and only logged")
        }
        (Mode::Enforce, false) => {
            warn!(registry = %r.name, "no trust source configured: every pull from this registry will be refused")
        }
        (Mode::Enforce, true) => tracing::info!(registry = %r.name, "enforcing content trust"),
    }
    for o in &r.overrides {
        if o.mode == Some(Mode::Skip) {
            warn!(registry = %r.name, pattern = %o.pattern, "mode = skip for matching repositories: served WITHOUT trust verification");
        }
    }
}

fn deny_reason(e: &ApiError) -> &str {
    e.detail
        .as_ref()
        .and_then(|d| d.get("reason"))
        .and_then(|r| r.as_str())
        .unwrap_or("denied")
}

fn log_error(e: &ApiError) {
    match e.side {
        Side::Downstream => tracing::debug!(error = %e, "client error"),
        Side::Trust => {} // logged where decided, with its reason
        Side::Upstream => warn!(error = %e, "upstream error"),
        Side::Internal => tracing::error!(error = %e, "internal error"),
    }
}

fn upstream_err(e: upstream::UpstreamError) -> ApiError {
    ApiError::upstream(e.status(), e.to_string())
}

fn mismatch(reg: &Registry, repo: &RepoName, reference: &str, what: &str) -> ApiError {
    crate::metrics::digest_mismatch(&reg.name);
    tracing::error!(registry = %reg.name, repository = %repo, reference, what, "upstream manifest does not match");
    ApiError::upstream(
        StatusCode::BAD_GATEWAY,
        format!(
            "registry {} served a manifest for {repo}@{reference} that does not match: {what}; refusing it",
            reg.name
        ),
    )
}

fn too_large(reg: &Registry, what: &str, limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        Code::SizeInvalid,
        Side::Upstream,
        format!(
            "registry {} sent a {what} larger than {limit} bytes (server.max_manifest_bytes)",
            reg.name
        ),
    )
}

/// Headers passed to the upstream: every `Accept` line (one per media type, as
/// containers/image sends them), and `Authorization` only in passthrough (added in `send`).
fn forward_headers(client: &HeaderMap, manifest: bool, _passthrough: bool) -> HeaderMap {
    let mut out = HeaderMap::new();
    for v in client.get_all(header::ACCEPT) {
        out.append(header::ACCEPT, v.clone());
    }
    if manifest && !out.contains_key(header::ACCEPT) {
        for a in MANIFEST_ACCEPT {
            out.append(header::ACCEPT, HeaderValue::from_static(a));
        }
    }
    out
}

fn manifest_response(m: &CachedManifest, digest: &Digest) -> Result<Response<Body>, ApiError> {
    let mut out = Response::new(full(m.bytes.clone()));
    let h = out.headers_mut();
    if let Some(ct) = &m.content_type {
        h.insert(header::CONTENT_TYPE, ct.clone());
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(m.bytes.len()));
    h.insert(DOCKER_CONTENT_DIGEST, header_value(&digest.to_string())?);
    Ok(out)
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap, names: &[HeaderName]) {
    for n in names {
        for v in from.get_all(n) {
            to.append(n.clone(), v.clone());
        }
    }
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn header_value(s: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(s).map_err(ApiError::internal)
}

async fn read_error_body(resp: reqwest::Response) -> Bytes {
    let mut buf = BytesMut::new();
    let mut s = resp.bytes_stream();
    while let Some(Ok(c)) = s.next().await {
        buf.extend_from_slice(&c);
        if buf.len() > 64 * 1024 {
            break;
        }
    }
    buf.freeze()
}

/// The first error's code and message from an OCI error body, if it is one.
fn parse_oci_error(body: &[u8]) -> (Option<String>, Option<String>) {
    let v: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => return (None, None),
    };
    let e = &v["errors"][0];
    let s = |k: &str| {
        e[k].as_str()
            .map(|m| m.chars().take(300).collect::<String>())
    };
    (s("code"), s("message"))
}
