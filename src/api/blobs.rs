//! Blobs: the gate decides whether the digest is reachable from a trusted target; the bytes
//! are streamed through `blob::VerifyingStream`, which checks the digest as they pass and
//! holds the last chunk back until it matches.
//!
//! After the gate, a blob in the disk cache (`cache`) is served from its file: 200, 206 for a
//! `Range` (only the window is read), HEAD from the file's length; no upstream request. On a
//! miss the verifying stream also hands the bytes to the cache's sink, which writes them, kept
//! only if `VerifyingStream` reports it verified. A GET that misses while another request is
//! downloading the same blob follows that download (`cache::flight`, `cache::follow`): one
//! upstream GET per blob however many clients ask at once.
//!
//! HEAD asks the registry with a HEAD (a blob may be gigabytes: it is never fetched to answer
//! a HEAD); the reply's headers are built the same way for both. `Range` is served by reading
//! from byte 0 upstream, since the digest covers the whole blob (see `blob`).

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use super::ctx::{Ctx, Reply, copy_headers};
use super::{DOCKER_CONTENT_DIGEST, header_value, range};
use crate::blob::{Observer, Outcome, VerifyingStream, Window};
use crate::cache::{Begin, BlobCache, Carrier, Hit, Joined, Lead, Ready, Verdict};
use crate::error::{ApiError, Code, Side};
use crate::refs::Digest;
use crate::upstream::{self, answer::Kind, answer::content_length};

/// `GET|HEAD /v2/<name>/blobs/<digest>`.
pub async fn get(cx: &Ctx<'_>, digest: &Digest) -> Result<Reply, ApiError> {
    // The gate first, always: the cache never decides what is trusted.
    cx.authorize_digest(digest).await?;
    let lead = match cx.proxy.blob_cache() {
        None => None,
        Some(cache) => match local(cx, cache, digest).await? {
            Local::Served(reply) => return Ok(reply),
            Local::Fetch(lead) => lead,
        },
    };
    fetch(cx, digest, lead).await
}

/// What the disk cache made of a request.
enum Local {
    /// A hit, or a follower of another request's download.
    Served(Reply),
    /// Fetch upstream; with a lead, other requests for the blob follow this download.
    Fetch(Option<Lead>),
}

/// The blob from the disk cache, or from a download in progress (see `cache::flight`).
async fn local(cx: &Ctx<'_>, cache: &BlobCache, digest: &Digest) -> Result<Local, ApiError> {
    if cx.head {
        // A HEAD never starts nor joins a download: a hit answers from the file's length,
        // a miss with a HEAD upstream.
        return match cache.lookup(digest).await {
            Some(hit) => Ok(Local::Served(from_hit(cx, digest, hit).await?)),
            None => {
                super::access::note_cache("miss");
                Ok(Local::Fetch(None))
            }
        };
    }
    // Twice at most: a follower that waited for the download then reads the entry (and
    // is logged `inflight` still: it joined a download).
    let mut joined = false;
    for _ in 0..2 {
        match cache.begin(digest).await {
            Begin::Hit(hit) => {
                let reply = from_hit(cx, digest, hit).await?;
                if joined {
                    super::access::note_cache("inflight");
                }
                return Ok(Local::Served(reply));
            }
            Begin::Lead(lead) => {
                super::access::note_cache("miss");
                return Ok(Local::Fetch(Some(lead)));
            }
            Begin::Join(j) => {
                joined = true;
                super::access::note_cache("inflight");
                match follow(cx, digest, j).await? {
                    Followed::Served(reply) => return Ok(Local::Served(reply)),
                    Followed::Committed => continue,
                    Followed::Unshared => break,
                }
            }
        }
    }
    super::access::note_cache("miss");
    Ok(Local::Fetch(None))
}

/// Fetches the blob upstream and streams it through `VerifyingStream` (and the cache's sink,
/// followed by the requests that joined `lead`).
async fn fetch(cx: &Ctx<'_>, digest: &Digest, lead: Option<Lead>) -> Result<Reply, ApiError> {
    let path = format!("/v2/{}/blobs/{digest}", cx.repo);
    let method = if cx.head { Method::HEAD } else { Method::GET };
    // On an error `lead` is dropped here: its followers fetch for themselves.
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
    let (sink, verdict, carrier) = match cx.proxy.blob_cache() {
        Some(c) => c.sink(digest, total, lead),
        None => (None, Verdict::none(), Carrier::none()),
    };
    let report = observer(cx, digest);
    let stream = VerifyingStream::new(
        Box::pin(inner.into_body()),
        digest.clone(),
        total,
        window,
        Some(permit),
        sink,
        Box::new(move |o: &Outcome| {
            verdict.report(o);
            report(o);
        }),
    );
    Ok(Reply {
        status,
        headers,
        body: Some(carrier.wrap(stream)),
    })
}

/// Serves a blob from its file: no upstream request, no hashing (it was verified before it
/// was stored). A read that fails later aborts the response (the client retries).
async fn from_hit(cx: &Ctx<'_>, digest: &Digest, hit: Hit) -> Result<Reply, ApiError> {
    super::access::note_cache("hit");
    // Passthrough mode: only to a client the registry accepts for this repository.
    let path = format!("/v2/{}/blobs/{digest}", cx.repo);
    cx.client_may_read(&path, Kind::Blob).await?;
    let mut headers = cached_headers(digest)?;
    if cx.head {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(hit.len));
        return Ok(Reply::ok(headers, None));
    }
    let (status, window) = window(cx, &mut headers, Some(hit.len))?;
    Ok(Reply {
        status,
        headers,
        body: Some(hit.body(window)),
    })
}

/// What a request that joined another's download got.
enum Followed {
    Served(Reply),
    /// The download is in the store now: read the entry.
    Committed,
    /// Nothing to follow: fetch upstream.
    Unshared,
}

/// Follows another request's download of the blob (`cache::follow`). A `Range` request
/// waits for the end and then reads its window from the entry.
async fn follow(cx: &Ctx<'_>, digest: &Digest, joined: Joined) -> Result<Followed, ApiError> {
    // Passthrough mode: these bytes come with another client's credentials.
    let path = format!("/v2/{}/blobs/{digest}", cx.repo);
    cx.client_may_read(&path, Kind::Blob).await?;
    let ready = if cx.headers.contains_key(header::RANGE) {
        joined.finished().await
    } else {
        joined.ready().await
    };
    match ready {
        Ready::Follow(f) => {
            let mut headers = cached_headers(digest)?;
            if let Some(t) = f.total() {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(t));
            }
            Ok(Followed::Served(Reply::ok(headers, Some(f.body()))))
        }
        Ready::Committed => Ok(Followed::Committed),
        Ready::Unshared => Ok(Followed::Unshared),
        // Fail closed, and do not send every follower upstream after a download that failed
        // (it was logged with its reason where it failed).
        Ready::Failed => Err(ApiError::upstream(
            StatusCode::BAD_GATEWAY,
            format!("the download of {digest} this request joined did not complete; retry"),
        )),
    }
}

/// The headers of a blob served from the store (or its download in progress).
fn cached_headers(digest: &Digest) -> Result<HeaderMap, ApiError> {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    common_headers(&mut headers, digest)?;
    Ok(headers)
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
