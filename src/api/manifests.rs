//! Manifests by tag and by digest. GET and HEAD are one path: a HEAD fetches and verifies
//! exactly what a GET would (so it answers with the verified digest and length, and warms the
//! manifest cache for the GET that follows), and `Reply::into_response` drops the body.
//!
//! By tag, the trusted digest is fetched, never the tag (the tag may move between the check
//! and the fetch); by digest, the gate decides whether the digest is reachable from a trusted
//! target. Verified manifests are kept in memory by (registry, repository, digest).

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, header};

use super::ctx::{Ctx, Reply};
use super::drift;
use super::{DOCKER_CONTENT_DIGEST, header_value};
use crate::body::full;
use crate::closure;
use crate::config::TagDrift;
use crate::error::ApiError;
use crate::policy::{Decision, Reason};
use crate::refs::{Digest, RepoName, Tag};
use crate::trust::TrustedTarget;
use crate::upstream::answer::{Kind, content_digest};
use crate::upstream::manifest_accept;

/// Bytes of verified manifests kept in memory.
const CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// A manifest whose bytes matched the digest it is stored under.
#[derive(Clone)]
pub(super) struct Cached {
    pub(super) bytes: Bytes,
    content_type: Option<HeaderValue>,
    pub(super) children: Arc<Vec<Digest>>,
}

/// Verified manifests by (registry, repository, digest). Content-addressed and checked on
/// the way in, so serving from here is as safe as fetching again; it saves the round trip on
/// every pull of a popular tag. In passthrough mode a hit is served only after the registry
/// accepted the client's own credentials (`tenant`).
pub(super) type Cache = moka::future::Cache<(String, RepoName, Digest), Cached>;

pub(super) fn new_cache() -> Cache {
    moka::future::Cache::builder()
        .weigher(|_, m: &Cached| u32::try_from(m.bytes.len()).unwrap_or(u32::MAX))
        .max_capacity(CACHE_BYTES)
        .build()
}

/// `GET|HEAD /v2/<name>/manifests/<tag>`.
pub async fn by_tag(cx: &Ctx<'_>, tag: &Tag) -> Result<Reply, ApiError> {
    // The referrers tag schema's tag under a policy: the proxy's own index, never the registry's.
    // Boxed: its discovery and credential check would otherwise grow every tag pull's future
    // (a debug build overflowed a worker's stack).
    if let Some(subject) = super::passthrough::schema_tag_subject(tag)
        && let Some(reply) = Box::pin(super::passthrough::schema_tag(cx, &subject)).await?
    {
        return Ok(reply);
    }
    let Some(target) = cx.authorize_tag(tag).await? else {
        // Skip mode, or audit mode with no trusted digest: pass the tag through, still
        // checking that the bytes match the digest the registry claims.
        return serve(cx, tag.as_str(), None).await;
    };
    let digest = target.digest.to_string();
    let serve = serve(cx, &digest, Some(&target));
    if cx.on_tag_drift == TagDrift::ServeSigned {
        // Docker's semantics: the signed digest wins; drift is checked off the request path.
        drift::check_later(cx, tag, &target);
        return serve.await;
    }
    // The moved-tag check and the fetch are independent round trips: run them together, and
    // let a refusal win over whatever the fetch produced.
    let (moved, served) = tokio::join!(refuse_moved_tag(cx, tag, &target), serve);
    moved?;
    served
}

/// `GET|HEAD /v2/<name>/manifests/<digest>`.
pub async fn by_digest(cx: &Ctx<'_>, digest: &Digest) -> Result<Reply, ApiError> {
    cx.authorize_manifest(digest).await?;
    serve(cx, &digest.to_string(), None).await
}

/// `on_tag_drift = "refuse"`: a signed tag that the registry now maps to other content was
/// re-pushed without being signed (or tampered with). Docker's client would quietly pull the
/// old signed digest; this refuses instead, so the operator sees it and either signs the new
/// content or puts the signed content back.
async fn refuse_moved_tag(cx: &Ctx<'_>, tag: &Tag, target: &TrustedTarget) -> Result<(), ApiError> {
    let repo = &cx.repo;
    let current = cx
        .reg
        .upstream
        .tag_digest(repo, tag, cx.headers.get(header::AUTHORIZATION))
        .await
        .map_err(crate::upstream::UpstreamError::into_api)?;
    match current {
        Some(c) if c != target.digest => {
            let message = format!(
                "{}/{repo}:{tag} refused: the registry maps the tag to {c}, but it is signed \
                 (by {} in {}) for {}; the tag was re-pushed without signing. Sign the new \
                 content, or push the signed content back (on_tag_drift = \"refuse\")",
                cx.reg.name, target.signer, target.source, target.digest
            );
            cx.carry_out(Decision::Deny {
                reason: Reason::TagMoved,
                message,
            })
        }
        // The same digest, or a registry that does not say: the by-digest fetch decides.
        _ => Ok(()),
    }
}

/// Fetches a manifest (or takes it from the cache) and serves it. With `target`, the bytes
/// must match the signed digest and length; a reference that is a digest must match too; by
/// tag (skip / audit only) the registry's `Docker-Content-Digest` is checked when it sends one.
async fn serve(
    cx: &Ctx<'_>,
    reference: &str,
    target: Option<&TrustedTarget>,
) -> Result<Reply, ApiError> {
    let by_digest: Option<Digest> = reference.parse().ok();
    // What a digest named (the signature's, or the client's) may be cached under that digest.
    let wanted = target.map(|t| t.digest.clone()).or(by_digest);
    if let Some(d) = &wanted
        && let Some(c) = lookup(cx, d).await
    {
        // Passthrough mode: only to a client the registry accepts for this repository.
        let path = format!("/v2/{}/manifests/{d}", cx.repo);
        cx.client_may_read(&path, Kind::Manifest).await?;
        // The digest matches, but a signature may also pin a length and a media type that
        // these bytes do not have (a TUF target naming other bytes): as refused as uncached.
        let ct = c.content_type.as_ref().and_then(|v| v.to_str().ok());
        if let Some(why) = unlike_signed(target, &c.bytes, ct) {
            return Err(mismatch(cx, reference, &why));
        }
        super::access::note_cache("hit");
        return reply(&c, d);
    }
    if wanted.is_some() {
        super::access::note_cache("miss");
    }
    let accept = cx.forward_headers(true);
    let (cached, actual) = fetch(cx, reference, wanted.as_ref(), target, &accept)
        .await
        .map_err(|e| match &wanted {
            Some(d) if cx.proxy.manifest_store.is_some() => {
                e.not_cached(&format!("{}/{}@{d}", cx.reg.name, cx.repo))
            }
            _ => e,
        })?;
    reply(&cached, &actual)
}

/// The verified manifest `d` of this repository: from memory, from disk, or fetched by digest
/// (and then kept). The closure rebuild walks trusted content with this, so that a restarted
/// node with the registry down still knows which blobs its signed images reach.
pub(super) async fn load(cx: &Ctx<'_>, d: &Digest) -> Result<Cached, ApiError> {
    if let Some(c) = lookup(cx, d).await {
        return Ok(c);
    }
    // Every manifest type: the client's request may have been for a blob.
    fetch(cx, &d.to_string(), Some(d), None, &manifest_accept())
        .await
        .map(|(c, _)| c)
}

/// A verified manifest by digest from memory or disk, its children recorded in the closure.
/// Whether this client may have it is the caller's question (`Ctx::client_may_read`).
async fn lookup(cx: &Ctx<'_>, d: &Digest) -> Option<Cached> {
    let proxy = cx.proxy;
    let key = (cx.reg.name.clone(), cx.repo.clone(), d.clone());
    let cached = match proxy.manifests.get(&key).await {
        Some(c) => c,
        None => {
            let stored = proxy.manifest_store.as_ref()?.get(d).await?;
            crate::metrics::manifest_disk_hit();
            let c = Cached {
                children: Arc::new(children_of(&stored.bytes)),
                content_type: stored
                    .media_type
                    .as_deref()
                    .and_then(|m| HeaderValue::from_str(m).ok()),
                bytes: stored.bytes,
            };
            proxy.manifests.insert(key, c.clone()).await;
            c
        }
    };
    proxy
        .closure
        .add_children(&cx.reg.name, &cx.repo, d, &cached.children);
    Some(cached)
}

/// Fetches `reference` upstream and checks it (see `serve`); what a digest named is kept in
/// memory and on disk. Returns the manifest and its digest.
async fn fetch(
    cx: &Ctx<'_>,
    reference: &str,
    wanted: Option<&Digest>,
    target: Option<&TrustedTarget>,
    accept: &HeaderMap,
) -> Result<(Cached, Digest), ApiError> {
    let (reg, repo) = (&cx.reg.name, &cx.repo);
    let proxy = cx.proxy;
    let path = format!("/v2/{repo}/manifests/{reference}");
    let resp = cx
        .send_ok(Method::GET, &path, None, accept, Kind::Manifest)
        .await?;
    let upstream_headers = resp.inner.headers().clone();
    let bytes = cx.read_limited(resp, Kind::Manifest).await?;
    crate::metrics::bytes_streamed(reg, bytes.len() as u64);
    // The digest the bytes must have: the signed one, the one asked for, or (by tag) the
    // one the registry claims.
    let claimed = content_digest(&upstream_headers);
    let expected = wanted.cloned().or(claimed);
    let actual = match &expected {
        Some(e) => e.of_same_algorithm(&bytes),
        None => Digest::sha256_of(&bytes),
    };
    if let Some(e) = &expected
        && *e != actual
    {
        return Err(mismatch(
            cx,
            reference,
            &format!("bytes hash to {actual}, not {e}"),
        ));
    }
    let content_type = upstream_headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if let Some(why) = unlike_signed(target, &bytes, content_type) {
        return Err(mismatch(cx, reference, &why));
    }
    // Record what this manifest references, if it is itself trusted.
    let children = children_of(&bytes);
    proxy.closure.add_children(reg, repo, &actual, &children);
    let cached = Cached {
        bytes,
        content_type: upstream_headers.get(header::CONTENT_TYPE).cloned(),
        children: Arc::new(children),
    };
    if wanted.is_some() {
        proxy
            .manifests
            .insert((reg.clone(), repo.clone(), actual.clone()), cached.clone())
            .await;
        if let Some(store) = &proxy.manifest_store {
            let mt = cached.content_type.as_ref().and_then(|v| v.to_str().ok());
            if let Err(e) = store.put(&actual, mt, cached.bytes.clone()).await {
                // The pull goes on; only a restart with the registry down will miss it.
                crate::metrics::cache_write_failure("io");
                tracing::warn!(digest = %actual, error = %e, "manifest cache: not written");
            }
        }
    }
    Ok((cached, actual))
}

/// The digests a manifest references (empty for JSON we cannot follow).
fn children_of(bytes: &[u8]) -> Vec<Digest> {
    match closure::children(bytes) {
        Ok(ch) => ch.all(),
        Err(e) => {
            tracing::debug!(error = %e, "manifest is not JSON we can follow");
            Vec::new()
        }
    }
}

fn reply(m: &Cached, digest: &Digest) -> Result<Reply, ApiError> {
    let mut h = HeaderMap::new();
    if let Some(ct) = &m.content_type {
        h.insert(header::CONTENT_TYPE, ct.clone());
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(m.bytes.len()));
    h.insert(DOCKER_CONTENT_DIGEST, header_value(&digest.to_string())?);
    Ok(Reply::ok(h, Some(full(m.bytes.clone()))))
}

fn mismatch(cx: &Ctx<'_>, reference: &str, what: &str) -> ApiError {
    let (reg, repo) = (&cx.reg.name, &cx.repo);
    crate::metrics::digest_mismatch(reg);
    tracing::error!(registry = %reg, repository = %repo, reference, what, "upstream manifest does not match");
    ApiError::upstream(
        http::StatusCode::BAD_GATEWAY,
        format!(
            "registry {reg} served a manifest for {repo}@{reference} that does not match: {what}; refusing it"
        ),
    )
}

/// Why `bytes` are not what `target` signs beyond its digest (length, media type), if so.
fn unlike_signed(
    target: Option<&TrustedTarget>,
    bytes: &[u8],
    content_type: Option<&str>,
) -> Option<String> {
    let t = target?;
    if let Some(signed) = t.length
        && signed != bytes.len() as u64
    {
        return Some(format!("{} bytes, signed length is {signed}", bytes.len()));
    }
    let want = t.media_type.as_deref()?;
    let have = media_type_of(bytes, content_type);
    (have.as_deref() != Some(want)).then(|| {
        format!(
            "media type {}, signed media type is {want}",
            have.as_deref().unwrap_or("(none)")
        )
    })
}

/// The manifest's media type: its `mediaType` field (covered by the digest), else the
/// registry's Content-Type (a Docker schema 2 manifest always carries the field).
fn media_type_of(bytes: &[u8], content_type: Option<&str>) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct M {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<M>(bytes)
        .ok()
        .and_then(|m| m.media_type)
        .or_else(|| content_type.map(|v| v.split(';').next().unwrap_or(v).trim().to_owned()))
}
