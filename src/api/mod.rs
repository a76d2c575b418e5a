//! The registry API: route -> registry -> request context -> handler -> response.
//!
//! Map, in the order a request meets it:
//! - `route`: path and query -> a typed [`Route`], once, at the edge
//! - this file: the [`Proxy`] (every configured registry and the shared state), registry
//!   selection (containerd's `?ns=`), `dispatch`, one span and one metric per request
//! - `access`: the access-log line, written when the response body ends
//! - `ctx`: the request context ([`Ctx`]) every handler takes, and [`Reply`], whose body is
//!   dropped for HEAD in one place
//! - `gate`: the trust gate; `authorize_tag` / `authorize_digest` decide, apply the
//!   repository's mode, and rebuild the closure of trusted content when needed
//! - `manifests`: manifests by tag and by digest (GET and HEAD are one path)
//! - `drift`: a signed tag that the registry maps to other content: checked off the request
//!   path, logged and counted once per (tag, digest)
//! - `blobs`: blobs, after the gate from the disk cache (`cache`) or streamed through
//!   `blob::VerifyingStream` (and written to the cache), with `Range`
//! - `passthrough`: `/v2/`, tags list (filtered to trusted tags in enforce mode), referrers
//! - `range`: the `Range` header
//! - `tenant`: in passthrough client-auth mode, cached content only for a client the
//!   registry accepts
//! - `canary`: the reserved `portcullis-doctor/canary` repository, answered before dispatch
//!   (never cached, never upstream, never counted as a pull)
//!
//! Talking to the registry and reading its answers lives in `upstream`; decisions in `policy`.

pub mod access;
mod blobs;
mod canary;
mod ctx;
mod drift;
mod gate;
mod manifests;
mod passthrough;
pub mod range;
pub mod route;
mod tenant;
mod vouch;

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use tracing::{Instrument, info_span, warn};

use crate::body::Body;
use crate::closure::Closure;
use crate::config::{Config, Mode, RepoPolicy, SourceConfig, SourceSlot};
use crate::error::{ApiError, Code, Side};
use crate::refs::{Reference, RepoName};
use crate::trust::TrustSource;
use crate::upstream::Upstream;
pub use ctx::{Ctx, Reply};
use route::Route;

pub const DOCKER_CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");

/// One configured registry, with its trust sources built.
pub struct Registry {
    pub name: String,
    pub upstream: Arc<Upstream>,
    pub is_default: bool,
    /// The registry's configuration (mode, overrides, `tags_list`, ...), as loaded.
    pub cfg: crate::config::RegistryConfig,
    /// Built trust sources: the registry's own and each override's that names one.
    sources: Vec<(SourceSlot, Arc<dyn TrustSource>)>,
    /// The `[[policy]]` entries that can match this registry's repositories, and the named
    /// sources they use, built for this registry.
    rules: Vec<crate::config::PolicyRule>,
    named: crate::trust::set::Built,
}

impl Registry {
    /// The policy for `repo`, resolved by the config (the same rule `portcullis check` uses),
    /// and its built trust source.
    pub fn policy_for(&self, repo: &RepoName) -> (RepoPolicy<'_>, Option<&Arc<dyn TrustSource>>) {
        let p = self.cfg.policy_for(repo.as_str());
        let source = p.source.and_then(|(slot, _)| {
            self.sources
                .iter()
                .find(|(s, _)| *s == slot)
                .map(|(_, t)| t)
        });
        (p, source)
    }

    /// The mode and source set for `repo`: its most specific `[[policy]]` entry, else its
    /// own source (`own`, from [`Registry::policy_for`]) as an implicit one-entry `any_of`.
    pub fn set_for(
        &self,
        repo: &RepoName,
        own_mode: Mode,
        own: Option<&Arc<dyn TrustSource>>,
    ) -> (Mode, crate::trust::set::SourceSet) {
        match crate::config::rule_for(&self.rules, &self.name, repo.as_str()) {
            Some(rule) => (
                crate::trust::set::mode_for(Some(rule), own_mode),
                self.named.set_for(rule, own),
            ),
            None => (own_mode, crate::trust::set::implicit(own)),
        }
    }
}

/// Builds a trust source for a registry (or a repository override) from its configuration.
pub type TrustFactory<'a> =
    dyn Fn(&str, SourceConfig<'_>) -> anyhow::Result<Arc<dyn TrustSource>> + 'a;

/// The proxy: all registries plus shared state.
pub struct Proxy {
    pub registries: Vec<Registry>,
    closure: Closure,
    drift: Arc<drift::Drift>,
    manifests: manifests::Cache,
    /// Passthrough mode: the registry's recent "yes" per client credential and repository.
    tenants: tenant::Answers,
    /// Verified blobs on disk; `None` when `cache.max_size = 0`.
    blobs: Option<crate::cache::BlobCache>,
    /// Verified manifests on disk; `None` exactly when `blobs` is.
    manifest_store: Option<crate::cache::ManifestStore>,
    max_manifest: usize,
    passthrough: bool,
    /// `cache.dir`, where the doctor's canary key lives.
    cache_dir: std::path::PathBuf,
    /// Verdicts of digest-vouching sources, per (registry, repository, digest).
    verdicts: crate::trust::verdicts::Cache,
    /// Bounds on signature discovery.
    discovery: crate::trust::discover::Limits,
    /// The evidence behind signature verdicts on disk (`<cache.dir>/signatures/`); `None` when
    /// the directory is not usable (then verdicts are in memory only, as logged at start).
    evidence: Option<crate::trust::evidence::Store>,
    /// `offline_tag_memory`'s remembered tags; `None` when no `[[policy]]` entry sets it or
    /// the directory is not usable (logged at start).
    tag_memory: Option<crate::trust::tag_memory::TagMemory>,
}

impl Proxy {
    pub fn new(cfg: &Config, make_trust: &TrustFactory<'_>) -> anyhow::Result<Proxy> {
        Proxy::with_verifiers(cfg, make_trust, &crate::trust::set::build_verifier)
    }

    /// Like [`Proxy::new`], with the digest verifiers (cosign, Notation) built by
    /// `make_verifier` (tests give their own).
    pub fn with_verifiers(
        cfg: &Config,
        make_trust: &TrustFactory<'_>,
        make_verifier: &crate::trust::set::VerifierFactory<'_>,
    ) -> anyhow::Result<Proxy> {
        let verifiers = build_verifiers(cfg, make_verifier)?;
        let passthrough = cfg.server.client_auth == crate::config::ClientAuth::Passthrough;
        let limit = Arc::new(tokio::sync::Semaphore::new(cfg.upstream.max_concurrent));
        let mut registries = Vec::new();
        for r in &cfg.registries {
            let mut sources = Vec::new();
            if let Some(s) = r.source() {
                sources.push((SourceSlot::Registry, make_trust(&r.name, s)?));
            }
            for (i, o) in r.repositories.iter().enumerate() {
                if let Some(s) = o.source() {
                    sources.push((SourceSlot::Override(i), make_trust(&r.name, s)?));
                }
            }
            let rules: Vec<_> = cfg
                .policy
                .iter()
                .filter(|p| crate::config::rule_covers_registry(p, &r.name))
                .cloned()
                .collect();
            let named = build_named(cfg, &r.name, &rules, &verifiers, make_trust)?;
            let registry = Registry {
                name: r.name.clone(),
                upstream: Arc::new(Upstream::new(r, &cfg.upstream, passthrough, limit.clone())?),
                is_default: r.default || cfg.registries.len() == 1,
                cfg: r.clone(),
                sources,
                rules,
                named,
            };
            log_posture(&registry);
            registries.push(registry);
        }
        let blobs = crate::cache::BlobCache::open(&cfg.cache);
        let manifest_store = blobs.as_ref().and_then(|_| open_manifest_store(cfg));
        // Without a key no canary is served and `portcullis doctor` says so; the proxy itself
        // works as before.
        if let Err(e) = crate::doctor::canary::ensure_key(&cfg.cache.dir) {
            warn!(dir = %cfg.cache.dir.display(), error = %e, "doctor: cannot make the canary key; `portcullis doctor` cannot prove pulls");
        }
        Ok(Proxy {
            registries,
            closure: Closure::default(),
            drift: Arc::default(),
            manifests: manifests::new_cache(),
            tenants: tenant::new_answers(),
            blobs,
            manifest_store,
            max_manifest: cfg.server.max_manifest_bytes,
            passthrough,
            cache_dir: cfg.cache.dir.clone(),
            verdicts: crate::trust::verdicts::Cache::new(cfg.signatures.recheck()),
            evidence: open_evidence(cfg),
            tag_memory: open_tag_memory(cfg),
            discovery: crate::trust::discover::Limits {
                max_candidates: cfg.signatures.max_candidates,
                max_manifest_bytes: cfg.signatures.max_manifest_bytes,
                max_blob_bytes: cfg.signatures.max_blob_bytes,
                fetch_deadline: std::time::Duration::from_secs(
                    cfg.upstream.first_byte_timeout_secs.max(1),
                ),
                ..Default::default()
            },
        })
    }

    /// The blob cache, when one is in use.
    pub fn blob_cache(&self) -> Option<&crate::cache::BlobCache> {
        self.blobs.as_ref()
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
        let handled = async {
            let parsed = match parsed {
                Ok(p) => p,
                Err(e) => return (e.into_response(head), String::new(), "error", None),
            };
            let reg = match self.select(parsed.ns.as_deref()) {
                Ok(r) => r,
                Err(e) => return (e.into_response(head), String::new(), "error", None),
            };
            // The doctor's canary, before anything that could cache, gate, count or forward it.
            if canary::is_canary(&parsed.route) {
                let served = canary::serve(&self.cache_dir, &parsed.route);
                crate::metrics::doctor_canary(&reg.name, served.is_ok());
                let resp = match served {
                    Ok(reply) => reply.into_response(head),
                    Err(e) => e.into_response(head),
                };
                return (resp, reg.name.clone(), "canary", None);
            }
            match self.dispatch(reg, parsed.route, head, req.headers()).await {
                Ok(reply) => (reply.into_response(head), reg.name.clone(), "allow", None),
                Err(e) => {
                    let reason = e.reason;
                    if let Some(reason) = reason {
                        crate::metrics::denial(&reg.name, reason.as_str());
                    }
                    log_error(&e);
                    let decision = if reason.is_some() { "deny" } else { "error" };
                    (
                        e.into_response(head),
                        reg.name.clone(),
                        decision,
                        reason.map(|r| r.as_str()),
                    )
                }
            }
        }
        .instrument(span);
        let ((resp, registry, decision, reason), cache) = access::scoped(handled).await;
        let status = resp.status().as_u16();
        if decision != "canary" {
            crate::metrics::request(kind, status, &registry);
        }
        let line = access::Line {
            method: method.to_string(),
            route: kind,
            repository: repo,
            reference,
            registry,
            status,
            decision,
            reason,
            cache,
            started,
        };
        let expected = crate::upstream::answer::content_length(resp.headers()).filter(|_| !head);
        resp.map(|body| access::Logged::wrap(body, line, expected))
    }

    /// One route to one handler, each given the request context.
    async fn dispatch(
        &self,
        reg: &Registry,
        route: Route,
        head: bool,
        headers: &http::HeaderMap,
    ) -> Result<Reply, ApiError> {
        let cx = |repo: RepoName| Ctx::new(self, reg, repo, head, headers);
        match route {
            Route::Base => passthrough::base(self, reg, headers).await,
            Route::Manifest {
                repo,
                reference: Reference::Tag(tag),
            } => manifests::by_tag(&cx(repo), &tag).await,
            Route::Manifest {
                repo,
                reference: Reference::Digest(d),
            } => manifests::by_digest(&cx(repo), &d).await,
            Route::Blob { repo, digest } => blobs::get(&cx(repo), &digest).await,
            Route::Tags { repo, n, last } => passthrough::tags(&cx(repo), n, last.as_ref()).await,
            Route::Referrers {
                repo,
                digest,
                artifact_type,
            } => passthrough::referrers(&cx(repo), &digest, artifact_type.as_deref()).await,
        }
    }
}

/// Every digest-vouching `[trust.<name>]` source, built once and shared by all registries.
fn build_verifiers(
    cfg: &Config,
    make_verifier: &crate::trust::set::VerifierFactory<'_>,
) -> anyhow::Result<
    std::collections::HashMap<String, Arc<dyn crate::trust::signature::DigestVerifier>>,
> {
    let mut out = std::collections::HashMap::new();
    for (name, s) in cfg.trust.iter().filter(|(_, s)| !s.binds_tags()) {
        out.insert(name.clone(), make_verifier(name, s, &cfg.cache.dir)?);
    }
    Ok(out)
}

/// The named sources `rules` use, for registry `registry`: tag-binding ones built for it (a
/// Notary GUN and a TUF target name include the registry), digest verifiers shared.
fn build_named(
    cfg: &Config,
    registry: &str,
    rules: &[crate::config::PolicyRule],
    verifiers: &std::collections::HashMap<String, Arc<dyn crate::trust::signature::DigestVerifier>>,
    make_trust: &TrustFactory<'_>,
) -> anyhow::Result<crate::trust::set::Built> {
    use crate::config::TrustSourceConfig as T;
    use crate::trust::set::Named;
    let mut built = crate::trust::set::Built::default();
    for name in rules.iter().flat_map(|r| r.any_of.iter().chain(&r.all_of)) {
        if built.sources.contains_key(name) {
            continue;
        }
        let source = match cfg.trust.get(name) {
            Some(T::Notary(n)) => Named::Tags(make_trust(registry, SourceConfig::Notary(n))?),
            Some(T::Tuf(t)) => Named::Tags(make_trust(registry, SourceConfig::Tuf(t))?),
            Some(_) => match verifiers.get(name) {
                Some(v) => Named::Digests(v.clone()),
                None => continue,
            },
            // `registry`: the repository's own source, resolved per request.
            None => continue,
        };
        built.sources.insert(name.clone(), source);
    }
    Ok(built)
}

/// The manifest store beside the blob cache. A directory that cannot be used is logged, not
/// fatal: manifests are then kept in memory only (a restart needs the registry again).
fn open_manifest_store(cfg: &Config) -> Option<crate::cache::ManifestStore> {
    match crate::cache::ManifestStore::open(&cfg.cache.dir) {
        Ok(s) => Some(s),
        Err(e) => {
            crate::metrics::cache_write_failure("io");
            tracing::error!(dir = %cfg.cache.dir.display(), error = %e, "manifest cache: directory not usable; manifests are kept in memory only");
            None
        }
    }
}

/// The signature evidence store under `cache.dir`. A directory that cannot be used is logged,
/// not fatal: verdicts are then in memory only (an offline restart cannot vouch by signature).
fn open_evidence(cfg: &Config) -> Option<crate::trust::evidence::Store> {
    match crate::trust::evidence::Store::open(&cfg.cache.dir) {
        Ok(s) => Some(s),
        Err(e) => {
            crate::metrics::cache_write_failure("io");
            tracing::error!(dir = %cfg.cache.dir.display(), error = %e, "signature evidence: directory not usable; verdicts are kept in memory only");
            None
        }
    }
}

fn open_tag_memory(cfg: &Config) -> Option<crate::trust::tag_memory::TagMemory> {
    let rules: Vec<&str> = cfg
        .policy
        .iter()
        .filter(|r| r.offline_tag_memory.is_some())
        .flat_map(|r| r.repositories.iter().map(String::as_str))
        .collect();
    if rules.is_empty() {
        return None;
    }
    // A loosening: said once at start, besides each use.
    warn!(repositories = ?rules, "offline_tag_memory is set: while the registry is unreachable, tags only the registry binds resolve to the digest it last named (still vouched for by signatures)");
    match crate::trust::tag_memory::TagMemory::open(&cfg.cache.dir) {
        Ok(m) => Some(m),
        Err(e) => {
            crate::metrics::cache_write_failure("io");
            tracing::error!(dir = %cfg.cache.dir.display(), error = %e, "offline tag memory: directory not usable; tags are not remembered");
            None
        }
    }
}

/// Says at start, once per registry, how much it is trusted.
fn log_posture(r: &Registry) {
    // A `[[policy]]` entry can give repositories sources the registry itself lacks.
    match (r.cfg.mode, r.cfg.source().is_some() || !r.rules.is_empty()) {
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
    for p in &r.rules {
        let has_own =
            r.cfg.source().is_some() || r.cfg.repositories.iter().any(|o| o.source().is_some());
        crate::trust::set::warn_missing_own(p, &r.name, has_own);
        tracing::info!(registry = %r.name, patterns = ?p.repositories, any_of = ?p.any_of, all_of = ?p.all_of, mode = ?p.mode, "[[policy]] applies");
    }
    for o in &r.cfg.repositories {
        if o.mode == Some(Mode::Skip) {
            warn!(registry = %r.name, pattern = %o.pattern, "mode = skip for matching repositories: served WITHOUT trust verification");
        }
    }
}

fn log_error(e: &ApiError) {
    match e.side {
        Side::Downstream => tracing::debug!(error = %e, "client error"),
        Side::Trust => {} // logged where decided, with its reason
        Side::Upstream => warn!(error = %e, "upstream error"),
        Side::Internal => tracing::error!(error = %e, "internal error"),
    }
}

fn header_value(s: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(s).map_err(ApiError::internal)
}
