//! The small endpoints: `/v2/` (the API version check), tags lists and referrers (the API,
//! and the referrers tag schema's tag for a registry without it).
//!
//! In `enforce` mode with `tags_list = "trusted"` (the default) a tags list names only the
//! registry's tags that the trust source signs: what a client can actually pull. The whole
//! upstream list is read (following its `Link` pages, bounded), filtered, then paged with the
//! client's `n` and `last` (distribution-spec "Listing Tags"). Otherwise, and for referrers
//! (whose subject must itself be trusted), the registry's answer is passed on within the
//! manifest size limit.

use std::collections::BTreeSet;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use super::ctx::{Ctx, Reply, copy_headers};
use super::{API_VERSION, DOCKER_CONTENT_DIGEST, Proxy, Registry, header_value};
use crate::body::full;
use crate::config::{Mode, TagsList};
use crate::error::ApiError;
use crate::refs::{Digest, Tag};
use crate::upstream::answer::Kind;

/// Most upstream pages read to build one filtered tags list.
const MAX_TAG_PAGES: usize = 100;

/// `GET /v2/`. In passthrough mode the upstream's answer (and its 401 challenge) is the
/// answer, so clients learn where to authenticate; otherwise we answer ourselves.
pub async fn base(proxy: &Proxy, reg: &Registry, headers: &HeaderMap) -> Result<Reply, ApiError> {
    if proxy.passthrough {
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
            .map_err(crate::upstream::UpstreamError::into_api)?;
        if resp.inner.status() == StatusCode::UNAUTHORIZED {
            return Err(reg.upstream.status_error(Kind::Base, resp.inner).await);
        }
    }
    let mut h = HeaderMap::new();
    h.insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(2));
    Ok(Reply::ok(h, Some(full("{}"))))
}

/// `GET|HEAD /v2/<name>/tags/list[?n=&last=]`.
pub async fn tags(cx: &Ctx<'_>, n: Option<u32>, last: Option<&Tag>) -> Result<Reply, ApiError> {
    let path = format!("/v2/{}/tags/list", cx.repo);
    if cx.mode != Mode::Enforce || cx.reg.cfg.tags_list == TagsList::Upstream {
        let q = paging_query(n, last.map(Tag::as_str));
        return small(cx, &path, (!q.is_empty()).then_some(q.as_str()), Kind::Tags).await;
    }
    // Enforce: trust first, so a repository that cannot be verified lists nothing.
    let trusted: BTreeSet<String> = cx
        .trusted_targets()
        .await?
        .unwrap_or_default()
        .into_iter()
        .map(|t| t.name)
        .collect();
    let upstream = upstream_tags(cx, &path).await?;
    let listed: Vec<&String> = upstream.intersection(&trusted).collect();
    let (page, more) = page_of(&listed, n, last);
    let body = serde_json::json!({ "name": cx.repo.as_str(), "tags": page });
    let bytes = Bytes::from(body.to_string());
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    if let (true, Some(last_shown)) = (more, page.last()) {
        // distribution-spec: `Link: <url>; rel="next"` with the same `n`.
        let q = paging_query(n, Some(last_shown));
        h.insert(
            header::LINK,
            header_value(&format!("<{path}?{q}>; rel=\"next\""))?,
        );
    }
    tracing::debug!(repository = %cx.repo, upstream = upstream.len(), trusted = listed.len(), "tags list filtered to trusted tags");
    Ok(Reply::ok(h, Some(full(bytes))))
}

/// `n=..&last=..` (either may be absent).
fn paging_query(n: Option<u32>, last: Option<&str>) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    if let Some(n) = n {
        q.append_pair("n", &n.to_string());
    }
    if let Some(l) = last {
        q.append_pair("last", l);
    }
    q.finish()
}

/// The sorted tags after `last`, at most `n` of them, and whether more follow.
fn page_of<'a>(tags: &[&'a String], n: Option<u32>, last: Option<&Tag>) -> (Vec<&'a str>, bool) {
    let after: Vec<&str> = tags
        .iter()
        .map(|t| t.as_str())
        .filter(|t| last.is_none_or(|l| *t > l.as_str()))
        .collect();
    match n {
        Some(n) if (n as usize) < after.len() => (after[..n as usize].to_vec(), true),
        _ => (after, false),
    }
}

/// Every tag the registry lists, following its `Link: <...>; rel="next"` pages (Distribution
/// 3 and other registries page; 2.8 answers whole).
async fn upstream_tags(cx: &Ctx<'_>, path: &str) -> Result<BTreeSet<String>, ApiError> {
    #[derive(serde::Deserialize)]
    struct TagList {
        #[serde(default)]
        tags: Option<Vec<String>>,
    }
    let mut all = BTreeSet::new();
    let mut query: Option<String> = None;
    for _ in 0..MAX_TAG_PAGES {
        let resp = cx
            .send_ok(
                Method::GET,
                path,
                query.as_deref(),
                &HeaderMap::new(),
                Kind::Tags,
            )
            .await?;
        let next = crate::upstream::answer::next_page_query(resp.inner.headers());
        let bytes = cx.read_limited(resp, Kind::Tags).await?;
        let page: TagList = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::upstream(
                StatusCode::BAD_GATEWAY,
                format!(
                    "registry {} sent a tags list that is not JSON: {e}",
                    cx.reg.name
                ),
            )
        })?;
        all.extend(page.tags.unwrap_or_default());
        match next {
            Some(q) if Some(&q) != query.as_ref() => query = Some(q),
            _ => return Ok(all),
        }
    }
    tracing::warn!(repository = %cx.repo, pages = MAX_TAG_PAGES, "tags list: stopped following the registry's pages");
    Ok(all)
}

/// `GET|HEAD /v2/<name>/referrers/<digest>`: only for a trusted subject.
pub async fn referrers(
    cx: &Ctx<'_>,
    digest: &Digest,
    artifact_type: Option<&str>,
) -> Result<Reply, ApiError> {
    cx.authorize_manifest(digest).await?;
    let q = artifact_type.map(|a| {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("artifactType", a)
            .finish()
    });
    let path = format!("/v2/{}/referrers/{digest}", cx.repo);
    match small(cx, &path, q.as_deref(), Kind::Referrers).await {
        // A registry without the referrers API (404): under a `[[policy]]`, answer from the
        // signatures discovery verified, so verifiers behind the mirror still find them.
        Err(e) if e.status == http::StatusCode::NOT_FOUND && cx.set.from_policy => {
            match cx.referrers_from_signatures(digest, artifact_type).await {
                Some((bytes, filtered)) => Ok(index_reply(bytes, filtered)),
                None => Err(e),
            }
        }
        r => r,
    }
}

/// The subject a referrers tag schema tag names (distribution-spec 1.1 "Referrers Tag
/// Schema": `<alg>-<hex>`, what clients read on a registry without the referrers API), if
/// `tag` is one. cosign's `sha256-<hex>.sig` is not (its `.` is no hex digit).
pub fn schema_tag_subject(tag: &Tag) -> Option<Digest> {
    let (alg, hex) = tag.as_str().split_once('-')?;
    format!("{alg}:{hex}").parse().ok()
}

/// `GET|HEAD /v2/<name>/manifests/<alg>-<hex>` under a `[[policy]]` with a digest-vouching
/// member: the tag schema's index for `subject`, built from the signatures discovery verified
/// (as `/referrers` is on a 404), never the registry's own index, which nothing verified and
/// which could list anything. The subject must be trusted (else DENIED, as for `/referrers`).
/// `None`: no such member, so the tag is an ordinary tag and the usual path decides.
pub async fn schema_tag(cx: &Ctx<'_>, subject: &Digest) -> Result<Option<Reply>, ApiError> {
    if !cx.set.from_policy || cx.mode == Mode::Skip || cx.set.digest_sources().is_empty() {
        return Ok(None);
    }
    cx.authorize_manifest(subject).await?;
    // Built from cached verdicts, not fetched: in passthrough mode the registry must first
    // accept this client's own credentials for the repository (as for a cached manifest).
    let path = format!("/v2/{}/manifests/{subject}", cx.repo);
    cx.client_may_read(&path, Kind::Manifest).await?;
    let Some((bytes, _)) = cx.referrers_from_signatures(subject, None).await else {
        return Ok(None);
    };
    // A manifest by tag carries its digest (clients check it, and may fetch by it next).
    let digest = Digest::sha256_of(&bytes).to_string();
    let mut reply = index_reply(bytes, false);
    reply
        .headers
        .insert(DOCKER_CONTENT_DIGEST, header_value(&digest)?);
    Ok(Some(reply))
}

/// An OCI image index answer (HEAD drops the body in `Reply::into_response`).
fn index_reply(bytes: Bytes, filtered: bool) -> Reply {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.oci.image.index.v1+json"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    if filtered {
        h.insert(
            http::HeaderName::from_static("oci-filters-applied"),
            HeaderValue::from_static("artifactType"),
        );
    }
    Reply::ok(h, Some(full(bytes)))
}

/// A small JSON answer passed on within the manifest size limit.
async fn small(
    cx: &Ctx<'_>,
    path: &str,
    query: Option<&str>,
    kind: Kind,
) -> Result<Reply, ApiError> {
    let method = if cx.head { Method::HEAD } else { Method::GET };
    let resp = cx
        .send_ok(method, path, query, &cx.forward_headers(false), kind)
        .await?;
    let mut h = HeaderMap::new();
    copy_headers(
        resp.inner.headers(),
        &mut h,
        &[header::CONTENT_TYPE, header::LINK, header::ETAG],
    );
    if cx.head {
        return Ok(Reply::ok(h, None));
    }
    let bytes = cx.read_limited(resp, kind).await?;
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Ok(Reply::ok(h, Some(full(bytes))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_tags_name_their_subject() {
        let hex = "a".repeat(64);
        let subject = |t: &str| schema_tag_subject(&t.parse().unwrap()).map(|d| d.to_string());
        assert_eq!(
            subject(&format!("sha256-{hex}")),
            Some(format!("sha256:{hex}"))
        );
        // cosign's `.sig`, another length, uppercase, an unknown algorithm: ordinary tags.
        assert_eq!(subject(&format!("sha256-{hex}.sig")), None);
        assert_eq!(subject(&format!("sha256-{}", &hex[1..])), None);
        assert_eq!(subject(&format!("sha256-{}", hex.to_uppercase())), None);
        assert_eq!(subject(&format!("md5-{hex}")), None);
        assert_eq!(subject("v1-2"), None);
    }

    #[test]
    fn pages() {
        let owned: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let tags: Vec<&String> = owned.iter().collect();
        let b: Tag = "b".parse().unwrap();
        assert_eq!(
            page_of(&tags, None, None),
            (vec!["a", "b", "c", "d"], false)
        );
        assert_eq!(page_of(&tags, Some(2), None), (vec!["a", "b"], true));
        assert_eq!(page_of(&tags, Some(2), Some(&b)), (vec!["c", "d"], false));
        assert_eq!(page_of(&tags, Some(0), None), (vec![], true));
        assert_eq!(page_of(&tags, None, Some(&b)), (vec!["c", "d"], false));
    }

    #[test]
    fn link_next() {
        let mut h = HeaderMap::new();
        h.insert(
            header::LINK,
            HeaderValue::from_static("</v2/demo/app/tags/list?last=b&n=2>; rel=\"next\""),
        );
        assert_eq!(
            crate::upstream::answer::next_page_query(&h).as_deref(),
            Some("last=b&n=2")
        );
        assert_eq!(
            crate::upstream::answer::next_page_query(&HeaderMap::new()),
            None
        );
    }
}
