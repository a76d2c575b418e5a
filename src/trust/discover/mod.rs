//! Finding the signatures of a digest in the registry, for the digest-vouching sources
//! (cosign, Notation). Owns the registry side only: which requests, in which order, with which
//! bounds, and which bytes are checked before a verifier sees them. It verifies nothing: a
//! [`Candidate`] is bytes whose digests match, classified by its own manifest.
//!
//! For digest D in repository R (issue 13, "Discovery in the registry"):
//! 1. `GET /v2/R/referrers/D`, following `Link` pages up to [`Limits::max_pages`]. A 404 means
//!    "no referrers API" (distribution-spec 1.1: a registry without it answers 404): then the
//!    referrers tag schema `GET /v2/R/manifests/sha256-<hex>` (404 there: none). Any other
//!    status, or an answer that is not an image index, is an error: never "no signatures".
//! 2. Always also cosign's legacy tag `GET /v2/R/manifests/sha256-<hex>.sig`, which is
//!    independent of the referrers API.
//! 3. Index entries are hints: each candidate manifest is fetched by digest, its bytes must
//!    hash to that digest, its `subject` must be D (the `.sig` manifest has none; if it has
//!    one, it must be D too), and it is classified by its own fields (`parse::classify`).
//!    Only the layers of kinds some configured verifier accepts are fetched, each checked
//!    against its digest and size.
//!
//! Requests go through the registry's [`Upstream`] with the pull's credentials and token
//! scope, so they see exactly what a pull of R sees.

mod failure;
pub mod parse;

pub use failure::Failure;

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use crate::refs::{Digest, RepoName};
use crate::trust::signature::{ArtifactKind, Candidate, FoundVia, Layer};
use crate::upstream::answer::Kind;
use crate::upstream::{Upstream, UpstreamError};

/// Bounds on one discovery (an attacker who controls the registry controls every answer).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Candidates fetched per digest (Notation's `--max-signatures` default is 100).
    pub max_candidates: usize,
    /// Referrers API pages followed.
    pub max_pages: usize,
    /// Largest referrers index page, and largest signature manifest (bytes).
    pub max_manifest_bytes: usize,
    /// Largest signature blob (bytes). Envelopes and bundles are a few KiB; a certificate
    /// chain with a timestamp stays far below this.
    pub max_blob_bytes: usize,
    /// Whole-fetch deadline for one request (headers and body); the upstream client's
    /// first-byte and idle timeouts apply inside it.
    pub fetch_deadline: Duration,
    /// Candidate fetches in flight at once.
    pub parallel: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_candidates: 100,
            max_pages: 10,
            max_manifest_bytes: 4 * 1024 * 1024,
            max_blob_bytes: 1024 * 1024,
            fetch_deadline: Duration::from_secs(30),
            parallel: 4,
        }
    }
}

/// What one place in the registry held, for `check` and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The registry has no referrers API (it answered 404).
    NotSupported,
    /// Nothing there (404, or an empty index).
    None,
    /// This many hints (index entries, or the `.sig` manifest itself).
    Found(usize),
}

/// Everything found for one digest.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// Candidates of the kinds asked for, bytes checked.
    pub candidates: Vec<Candidate>,
    /// What each place held, in the order asked.
    pub places: Vec<(FoundVia, Place)>,
    /// Hints that were dropped and why (subject of another digest, bytes that do not match,
    /// too large, not a manifest): shown by `check` so a missing signature can be explained.
    pub dropped: Vec<String>,
}

impl Discovery {
    /// One line: `referrers API: not supported; tag schema: none; .sig: 1`.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .places
            .iter()
            .map(|(via, p)| {
                let what = match p {
                    Place::NotSupported => "not supported".to_owned(),
                    Place::None => "none".to_owned(),
                    Place::Found(n) => format!("{n} found"),
                };
                format!("{}: {what}", via_name(*via))
            })
            .collect();
        if !self.dropped.is_empty() {
            parts.push(format!("dropped: {}", self.dropped.join("; ")));
        }
        parts.join("; ")
    }
}

/// How a place is named in messages.
pub fn via_name(via: FoundVia) -> &'static str {
    match via {
        FoundVia::Referrers => "referrers API",
        FoundVia::TagSchema => "tag schema",
        FoundVia::CosignTag => ".sig",
    }
}

/// The registry, repository and credentials of the pull that asked.
pub struct Target<'a> {
    pub upstream: &'a Upstream,
    pub repo: &'a RepoName,
    pub digest: &'a Digest,
    /// The client's `Authorization` (used by the upstream client in passthrough mode only).
    pub client_auth: Option<&'a HeaderValue>,
}

/// Finds and fetches the signatures of `t.digest`. `wanted` says which kinds some configured
/// verifier accepts; other candidates are dropped before their blobs are fetched. An `Err` is
/// a failure of the registry (any status but 200/404, a malformed index, a timeout): the
/// caller must treat it as "cannot tell", never as "no signatures".
pub async fn discover(
    t: &Target<'_>,
    wanted: &(dyn Fn(ArtifactKind) -> bool + Sync),
    limits: &Limits,
) -> Result<Discovery, String> {
    discover_or_offline(t, wanted, limits)
        .await
        .map_err(String::from)
}

/// [`discover`], saying whether a failure was the registry being unreachable.
pub async fn discover_or_offline(
    t: &Target<'_>,
    wanted: &(dyn Fn(ArtifactKind) -> bool + Sync),
    limits: &Limits,
) -> Result<Discovery, Failure> {
    let mut out = Discovery::default();
    let mut hints: Vec<(parse::Hint, FoundVia)> = Vec::new();
    match referrers(t, limits).await? {
        Some(h) => {
            out.places.push((FoundVia::Referrers, count(&h)));
            hints.extend(h.into_iter().map(|h| (h, FoundVia::Referrers)));
        }
        None => {
            out.places.push((FoundVia::Referrers, Place::NotSupported));
            let tag = parse::schema_tag(t.digest);
            let h = match get_manifest(t, &tag, &[parse::OCI_INDEX], limits).await? {
                Some(bytes) => parse::index(&bytes).map_err(|e| {
                    Failure::answered(format!("referrers tag schema {tag} of {}: {e}", t.repo))
                })?,
                None => Vec::new(),
            };
            out.places.push((FoundVia::TagSchema, count(&h)));
            hints.extend(h.into_iter().map(|h| (h, FoundVia::TagSchema)));
        }
    }
    // cosign's legacy tag: the manifest itself is the candidate, with no index to hint at it.
    let sig_tag = format!("{}.sig", parse::schema_tag(t.digest));
    let sig = get_manifest(t, &sig_tag, crate::upstream::MANIFEST_ACCEPT, limits).await?;
    out.places.push((
        FoundVia::CosignTag,
        if sig.is_some() {
            Place::Found(1)
        } else {
            Place::None
        },
    ));
    let sig = sig.map(|bytes| (Digest::sha256_of(&bytes), bytes));
    let (hints, sig_is_a_hint, dropped) =
        parse::select(hints, sig.as_ref().map(|(d, _)| d), limits.max_candidates);
    out.dropped.extend(dropped);
    if let Some((d, bytes)) = sig
        && !sig_is_a_hint
    {
        push(
            &mut out,
            candidate(t, d, bytes, FoundVia::CosignTag, wanted, limits).await,
        );
    }
    let fetched: Vec<_> = futures_util::stream::iter(hints)
        .map(|(h, via)| fetch_hint(t, h, via, wanted, limits))
        .buffered(limits.parallel.max(1))
        .collect()
        .await;
    for r in fetched {
        push(&mut out, r);
    }
    Ok(out)
}

fn count(h: &[parse::Hint]) -> Place {
    if h.is_empty() {
        Place::None
    } else {
        Place::Found(h.len())
    }
}

/// `Ok(Some)` a candidate, `Ok(None)` a kind nobody asked for, `Err` a dropped hint.
type Fetched = Result<Option<Candidate>, String>;

fn push(out: &mut Discovery, r: Fetched) {
    match r {
        Ok(Some(c)) => out.candidates.push(c),
        Ok(None) => {}
        Err(why) => out.dropped.push(why),
    }
}

async fn fetch_hint(
    t: &Target<'_>,
    h: parse::Hint,
    via: FoundVia,
    wanted: &(dyn Fn(ArtifactKind) -> bool + Sync),
    limits: &Limits,
) -> Fetched {
    if h.size > limits.max_manifest_bytes as u64 {
        return Err(format!(
            "{}: index says {} bytes, more than {} (signature manifest limit, signatures.max_manifest_bytes)",
            h.digest, h.size, limits.max_manifest_bytes
        ));
    }
    let bytes = get_manifest(
        t,
        &h.digest.to_string(),
        crate::upstream::MANIFEST_ACCEPT,
        limits,
    )
    .await
    .map_err(|e| format!("{}: {e}", h.digest))?
    .ok_or_else(|| {
        format!(
            "{}: listed, but the registry has no such manifest",
            h.digest
        )
    })?;
    candidate(t, h.digest, bytes, via, wanted, limits).await
}

/// Checks a fetched manifest and fetches the layers of a wanted kind.
async fn candidate(
    t: &Target<'_>,
    d: Digest,
    bytes: Bytes,
    via: FoundVia,
    wanted: &(dyn Fn(ArtifactKind) -> bool + Sync),
    limits: &Limits,
) -> Fetched {
    let m = parse::check_candidate(&d, &bytes, t.digest, via)?;
    if m.kind == ArtifactKind::Other || !wanted(m.kind) {
        return Ok(None);
    }
    let mut layers = Vec::with_capacity(m.layers.len());
    for l in m.layers {
        layers.push(
            get_blob(t, l, limits)
                .await
                .map_err(|e| format!("{d}: {e}"))?,
        );
    }
    Ok(Some(Candidate {
        manifest_digest: d,
        manifest: bytes,
        kind: m.kind,
        subject: m.subject,
        annotations: m.annotations,
        found_via: via,
        layers,
    }))
}

/// The referrers API's hints, every page; `None` when the registry has no referrers API.
async fn referrers(t: &Target<'_>, limits: &Limits) -> Result<Option<Vec<parse::Hint>>, Failure> {
    let path = format!("/v2/{}/referrers/{}", t.repo, t.digest);
    let mut query: Option<String> = None;
    let mut all = Vec::new();
    for page in 0..limits.max_pages {
        let got = get(
            t,
            &path,
            query.as_deref(),
            &[parse::OCI_INDEX],
            Kind::Referrers,
            limits.max_manifest_bytes,
            limits,
        )
        .await?;
        let Some((headers, bytes)) = got else {
            // 404 on the first page: no referrers API. Later: the registry lost the pages.
            return if page == 0 {
                Ok(None)
            } else {
                Err(Failure::answered(format!(
                    "referrers of {}@{}: page {} answered 404",
                    t.repo,
                    t.digest,
                    page + 1
                )))
            };
        };
        let hints = parse::index(&bytes)
            .map_err(|e| Failure::answered(format!("referrers of {}@{}: {e}", t.repo, t.digest)))?;
        all.extend(hints);
        if all.len() > limits.max_candidates {
            break;
        }
        match crate::upstream::answer::next_page_query(&headers) {
            Some(q) if Some(&q) != query.as_ref() => query = Some(q),
            _ => return Ok(Some(all)),
        }
    }
    tracing::warn!(repository = %t.repo, digest = %t.digest, pages = limits.max_pages, "referrers: stopped following the registry's pages");
    Ok(Some(all))
}

async fn get_manifest(
    t: &Target<'_>,
    reference: &str,
    accept: &[&'static str],
    limits: &Limits,
) -> Result<Option<Bytes>, Failure> {
    let path = format!("/v2/{}/manifests/{reference}", t.repo);
    let got = get(
        t,
        &path,
        None,
        accept,
        Kind::Manifest,
        limits.max_manifest_bytes,
        limits,
    )
    .await?;
    Ok(got.map(|(_, b)| b))
}

async fn get_blob(t: &Target<'_>, l: parse::LayerRef, limits: &Limits) -> Result<Layer, String> {
    if l.size > limits.max_blob_bytes as u64 {
        return Err(format!(
            "layer {} is {} bytes, more than {} (signature blob limit, signatures.max_blob_bytes)",
            l.digest, l.size, limits.max_blob_bytes
        ));
    }
    let path = format!("/v2/{}/blobs/{}", t.repo, l.digest);
    let (_, bytes) = get(
        t,
        &path,
        None,
        &[],
        Kind::Blob,
        limits.max_blob_bytes,
        limits,
    )
    .await?
    .ok_or_else(|| format!("layer {}: the registry has no such blob", l.digest))?;
    parse::check_layer(&l, &bytes)?;
    Ok(Layer {
        media_type: l.media_type,
        digest: l.digest,
        annotations: l.annotations,
        bytes,
    })
}

/// One GET within the deadline: `Ok(None)` on 404, the body (at most `limit` bytes) on 2xx,
/// an error on anything else.
async fn get(
    t: &Target<'_>,
    path: &str,
    query: Option<&str>,
    accept: &[&'static str],
    kind: Kind,
    limit: usize,
    limits: &Limits,
) -> Result<Option<(HeaderMap, Bytes)>, Failure> {
    let mut headers = HeaderMap::new();
    for a in accept {
        headers.append(header::ACCEPT, HeaderValue::from_static(a));
    }
    let scope = format!("repository:{}:pull", t.repo);
    let up = t.upstream;
    let fetch = async {
        let resp = up
            .send(
                Method::GET,
                path,
                query,
                &headers,
                t.client_auth,
                Some(&scope),
            )
            .await
            .map_err(|e| Failure {
                // Connection refused or reset, DNS, TLS handshake, no answer in time: nothing
                // was heard from the registry. `Busy` (our own concurrency limit) and a token
                // server's refusal are not an outage of the registry.
                offline: matches!(
                    e,
                    UpstreamError::Unreachable { .. } | UpstreamError::Timeout { .. }
                ),
                message: e.to_string(),
            })?;
        match resp.inner.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let h = resp.inner.headers().clone();
                // The refusal names the [signatures] limit that applies, not the server's.
                let setting = if kind == Kind::Blob {
                    "signatures.max_blob_bytes"
                } else {
                    "signatures.max_manifest_bytes"
                };
                let b = up
                    .read_limited_by(resp, kind, limit, setting)
                    .await
                    .map_err(|e| Failure::answered(e.message))?;
                Ok(Some((h, b)))
            }
            s => Err(Failure::answered(format!(
                "registry {} answered {s} for {path}",
                up.name
            ))),
        }
    };
    tokio::time::timeout(limits.fetch_deadline, fetch)
        .await
        .map_err(|_| Failure {
            message: format!(
                "registry {} did not answer {path} within {} s",
                up.name,
                limits.fetch_deadline.as_secs()
            ),
            offline: true,
        })?
}
