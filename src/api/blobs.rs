//! Blobs: the gate decides whether the digest is reachable from a trusted target; the bytes
//! are streamed through `blob::VerifyingStream`, which checks the digest as they pass and
//! holds the last chunk back until it matches.
//!
//! HEAD asks the registry with a HEAD (a blob may be gigabytes: it is never fetched to answer
//! a HEAD); the reply's headers are built the same way for both. `Range` is served by reading
//! from byte 0 upstream, since the digest covers the whole blob (see `blob`).

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};

use super::ctx::{Ctx, Reply, copy_headers};
use super::{DOCKER_CONTENT_DIGEST, header_value, range};
use crate::blob::{Observer, Outcome, VerifyingStream};
use crate::error::{ApiError, Code, Side};
use crate::refs::Digest;
use crate::upstream::{self, answer::Kind, answer::content_length};

/// `GET|HEAD /v2/<name>/blobs/<digest>`.
pub async fn get(cx: &Ctx<'_>, digest: &Digest) -> Result<Reply, ApiError> {
    cx.authorize_digest(digest).await?;
    let path = format!("/v2/{}/blobs/{digest}", cx.repo);
    let method = if cx.head { Method::HEAD } else { Method::GET };
    let resp = cx
        .send_ok(method, &path, None, &cx.forward_headers(false), Kind::Blob)
        .await?;
    let total = content_length(resp.inner.headers());
    let mut headers = HeaderMap::new();
    copy_headers(
        resp.inner.headers(),
        &mut headers,
        &[header::CONTENT_TYPE, header::ETAG],
    );
    headers.insert(DOCKER_CONTENT_DIGEST, header_value(&digest.to_string())?);
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if cx.head {
        if let Some(t) = total {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(t));
        }
        return Ok(Reply::ok(headers, None));
    }
    let range = cx.headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, window) = match (range::interpret(range, total), total) {
        (range::RangeOutcome::Unsatisfiable, Some(t)) => {
            return Err(ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                Code::RangeInvalid,
                Side::Downstream,
                format!("range {range:?} is outside the blob's {t} bytes"),
            )
            .with_header(
                header::CONTENT_RANGE,
                header_value(&format!("bytes */{t}"))?,
            ));
        }
        (range::RangeOutcome::Partial(w), Some(t)) => {
            headers.insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes {}-{}/{t}", w.start, w.end - 1))?,
            );
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(w.end - w.start));
            (StatusCode::PARTIAL_CONTENT, Some(w))
        }
        _ => {
            if let Some(t) = total {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(t));
            }
            (StatusCode::OK, None)
        }
    };
    let upstream::Response { inner, permit } = resp;
    let stream = VerifyingStream::new(
        Box::pin(inner.bytes_stream()),
        digest.clone(),
        total,
        window,
        Some(permit),
        observer(cx, digest),
    );
    Ok(Reply {
        status,
        headers,
        body: Some(StreamBody::new(stream).boxed_unsync()),
    })
}

/// What happens when the stream ends: bytes counted, a mismatch or upstream failure logged.
fn observer(cx: &Ctx<'_>, digest: &Digest) -> Observer {
    let registry = cx.reg.name.clone();
    let (repo, digest) = (cx.repo.to_string(), digest.to_string());
    Box::new(move |o: &Outcome| match o {
        Outcome::Verified { bytes } | Outcome::Abandoned { bytes } => {
            crate::metrics::bytes_streamed(&registry, *bytes)
        }
        Outcome::Mismatch { bytes, actual } => {
            crate::metrics::digest_mismatch(&registry);
            crate::metrics::bytes_streamed(&registry, *bytes);
            tracing::error!(registry = %registry, repository = %repo, digest = %digest, actual = %actual, "upstream blob does not match its digest; response aborted");
        }
        Outcome::UpstreamFailed { bytes, error } => {
            crate::metrics::bytes_streamed(&registry, *bytes);
            tracing::warn!(registry = %registry, repository = %repo, digest = %digest, error = %error, "upstream blob stream failed; response aborted");
        }
    })
}
