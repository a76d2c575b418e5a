//! Blobs: the gate decides whether the digest is reachable from a trusted target; the bytes
//! are streamed through `blob::VerifyingStream`, which checks the digest as they pass and
//! holds the last chunk back until it matches.
//!
//! After the gate, a blob in the disk cache (`cache`) is served from its file: 200, 206 for a
//! `Range` (only the window is read), HEAD from the file's length; no upstream request. On a
//! miss the upstream body also goes through `cache::Tee`, which writes it to the cache, kept
//! only if `VerifyingStream` reports it verified.
//!
//! HEAD asks the registry with a HEAD (a blob may be gigabytes: it is never fetched to answer
//! a HEAD); the reply's headers are built the same way for both. `Range` is served by reading
//! from byte 0 upstream, since the digest covers the whole blob (see `blob`).

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};

use super::ctx::{Ctx, Reply, copy_headers};
use super::{DOCKER_CONTENT_DIGEST, header_value, range};
use crate::blob::{Observer, Outcome, VerifyingStream, Window};
use crate::cache::{Tee, Verdict};
use crate::error::{ApiError, Code, Side};
use crate::refs::Digest;
use crate::upstream::{self, answer::Kind, answer::content_length};

/// `GET|HEAD /v2/<name>/blobs/<digest>`.
pub async fn get(cx: &Ctx<'_>, digest: &Digest) -> Result<Reply, ApiError> {
    // The gate first, always: the cache never decides what is trusted.
    cx.authorize_digest(digest).await?;
    if let Some(reply) = from_cache(cx, digest).await? {
        return Ok(reply);
    }
    let path = format!("/v2/{}/blobs/{digest}", cx.repo);
    let method = if cx.head { Method::HEAD } else { Method::GET };
    let resp = cx
        .send_ok(method, &path, None, &cx.forward_headers(false), Kind::Blob)
        .await
        .map_err(|e| match cx.proxy.blob_cache() {
            Some(_) => e.not_cached(&format!("{}/{}@{digest}", cx.reg.name, cx.repo)),
            None => e,
        })?;
    let total = content_length(resp.inner.headers());
    let mut headers = HeaderMap::new();
    copy_headers(
        resp.inner.headers(),
        &mut headers,
        &[header::CONTENT_TYPE, header::ETAG],
    );
    common_headers(&mut headers, digest)?;
    if cx.head {
        if let Some(t) = total {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(t));
        }
        return Ok(Reply::ok(headers, None));
    }
    let (status, window) = window(cx, &mut headers, total)?;
    let upstream::Response { inner, permit } = resp;
    let (body, verdict) = match cx.proxy.blob_cache() {
        Some(c) => c.tee(digest, total, Box::pin(inner.bytes_stream())),
        None => (
            Tee::passthrough(Box::pin(inner.bytes_stream())),
            Verdict::none(),
        ),
    };
    let report = observer(cx, digest);
    let stream = VerifyingStream::new(
        body,
        digest.clone(),
        total,
        window,
        Some(permit),
        Box::new(move |o: &Outcome| {
            verdict.report(o);
            report(o);
        }),
    );
    Ok(Reply {
        status,
        headers,
        body: Some(StreamBody::new(stream).boxed_unsync()),
    })
}

/// Serves the blob from the disk cache when it is there: no upstream request, no hashing (it
/// was verified before it was stored). `None`: not cached (or the cache is off), or the file
/// could not be read, and the blob is fetched upstream instead.
async fn from_cache(cx: &Ctx<'_>, digest: &Digest) -> Result<Option<Reply>, ApiError> {
    let Some(cache) = cx.proxy.blob_cache() else {
        return Ok(None);
    };
    let Some(hit) = cache.lookup(digest).await else {
        super::access::note_cache("miss");
        return Ok(None);
    };
    super::access::note_cache("hit");
    // Passthrough mode: only to a client the registry accepts for this repository.
    let path = format!("/v2/{}/blobs/{digest}", cx.repo);
    cx.client_may_read(&path, Kind::Blob).await?;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    common_headers(&mut headers, digest)?;
    if cx.head {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(hit.len));
        return Ok(Some(Reply::ok(headers, None)));
    }
    let (status, window) = window(cx, &mut headers, Some(hit.len))?;
    match hit.body(window).await {
        Ok(body) => Ok(Some(Reply {
            status,
            headers,
            body: Some(body),
        })),
        Err(e) => {
            tracing::warn!(%digest, error = %e, "blob cache: read failed; fetching upstream");
            Ok(None)
        }
    }
}

/// The headers every blob reply carries.
fn common_headers(headers: &mut HeaderMap, digest: &Digest) -> Result<(), ApiError> {
    headers.insert(DOCKER_CONTENT_DIGEST, header_value(&digest.to_string())?);
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    Ok(())
}

/// The client's `Range` against a blob of `total` bytes: 200 (whole blob), 206 with its
/// window, or 416. Sets `Content-Length` / `Content-Range` accordingly.
fn window(
    cx: &Ctx<'_>,
    headers: &mut HeaderMap,
    total: Option<u64>,
) -> Result<(StatusCode, Option<Window>), ApiError> {
    let range = cx.headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    match (range::interpret(range, total), total) {
        (range::RangeOutcome::Unsatisfiable, Some(t)) => Err(ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            Code::RangeInvalid,
            Side::Downstream,
            format!("range {range:?} is outside the blob's {t} bytes"),
        )
        .with_header(
            header::CONTENT_RANGE,
            header_value(&format!("bytes */{t}"))?,
        )),
        (range::RangeOutcome::Partial(w), Some(t)) => {
            headers.insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes {}-{}/{t}", w.start, w.end - 1))?,
            );
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(w.end - w.start));
            Ok((StatusCode::PARTIAL_CONTENT, Some(w)))
        }
        _ => {
            if let Some(t) = total {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(t));
            }
            Ok((StatusCode::OK, None))
        }
    }
}

/// What happens when the stream ends: bytes counted, a mismatch or upstream failure logged.
fn observer(cx: &Ctx<'_>, digest: &Digest) -> Observer {
    let registry = cx.reg.name.clone();
    let (repo, digest) = (cx.repo.to_string(), digest.to_string());
    Box::new(move |o: &Outcome| match o {
        Outcome::Verified { bytes } | Outcome::Abandoned { bytes } => {
            crate::metrics::bytes_streamed(&registry, *bytes);
            crate::metrics::cache_bytes_served("upstream", *bytes);
        }
        Outcome::Mismatch { bytes, actual } => {
            crate::metrics::digest_mismatch(&registry);
            crate::metrics::bytes_streamed(&registry, *bytes);
            tracing::error!(registry = %registry, repository = %repo, digest = %digest, actual = %actual, "upstream blob does not match its digest; response aborted");
        }
        Outcome::UpstreamFailed { bytes, error } => {
            crate::metrics::bytes_streamed(&registry, *bytes);
            crate::metrics::upstream_fault(&registry, "stream_failed");
            tracing::warn!(registry = %registry, repository = %repo, digest = %digest, error = %error, "upstream blob stream failed; response aborted");
        }
    })
}
