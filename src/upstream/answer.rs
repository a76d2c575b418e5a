//! Reading what an upstream registry answered: bodies read whole with a limit, and an
//! upstream error status turned into the OCI error our client gets.
//!
//! Lives next to the client because both depend only on the registry (its name, whether the
//! client's own credentials are passed through), never on a route or a trust decision.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{HeaderMap, StatusCode, header};

use super::client::{Body, BodyError};
use super::{Response, Upstream};
use crate::error::{ApiError, Code, Side};

/// What was asked for, for messages and for the OCI code of a 404.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Base,
    Manifest,
    Blob,
    Tags,
    Referrers,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Base => "base",
            Kind::Manifest => "manifest",
            Kind::Blob => "blob",
            Kind::Tags => "tags",
            Kind::Referrers => "referrers",
        }
    }

    /// distribution-spec: a missing manifest is MANIFEST_UNKNOWN, a missing blob
    /// BLOB_UNKNOWN, a missing repository NAME_UNKNOWN.
    fn not_found_code(self) -> Code {
        match self {
            Kind::Manifest => Code::ManifestUnknown,
            Kind::Blob => Code::BlobUnknown,
            _ => Code::NameUnknown,
        }
    }
}

/// `Content-Length`, when present and a number.
pub fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// The query of a paged answer's next page: the query of a `Link: <...?query>; rel="next"` header, if any (tags list, referrers).
pub fn next_page_query(h: &HeaderMap) -> Option<String> {
    h.get_all(header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find(|l| l.contains("rel=\"next\"") || l.contains("rel=next"))
        .and_then(|l| {
            let target = l.split_once('<')?.1.split_once('>')?.0;
            Some(target.split_once('?')?.1.to_string())
        })
}

/// `Docker-Content-Digest`, when present and a digest we accept.
pub fn content_digest(h: &HeaderMap) -> Option<crate::refs::Digest> {
    h.get("docker-content-digest")?.to_str().ok()?.parse().ok()
}

impl Upstream {
    /// Reads a body whole, refusing more than `limit` bytes (server.max_manifest_bytes):
    /// manifests and small JSON only, never blobs.
    pub async fn read_limited(
        &self,
        resp: Response,
        kind: Kind,
        limit: usize,
    ) -> Result<Bytes, ApiError> {
        self.read_limited_by(resp, kind, limit, "server.max_manifest_bytes")
            .await
    }

    /// [`Self::read_limited`] under another limit, named by its `setting` in the refusal, so
    /// an operator raises the limit that actually refused (e.g. `signatures.max_blob_bytes`).
    pub async fn read_limited_by(
        &self,
        resp: Response,
        kind: Kind,
        limit: usize,
        setting: &str,
    ) -> Result<Bytes, ApiError> {
        let what = kind.as_str();
        // The permit is held until the body is read.
        let Response {
            inner,
            permit: _permit,
        } = resp;
        inner
            .into_body()
            .read_limited(limit)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge(_) => self.too_large(what, limit, setting),
                e => ApiError::upstream(
                    StatusCode::BAD_GATEWAY,
                    format!("registry {} failed while sending a {what}: {e}", self.name),
                ),
            })
    }

    fn too_large(&self, what: &str, limit: usize, setting: &str) -> ApiError {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            Code::SizeInvalid,
            Side::Upstream,
            format!(
                "registry {} sent a {what} larger than {limit} bytes ({setting})",
                self.name
            ),
        )
    }

    /// Maps an upstream error status to our response: its own 404 stays a 404 with the right
    /// OCI code; a 401 goes back to the client only in passthrough mode (with its challenge,
    /// so the client learns where to authenticate); 5xx becomes 502.
    pub async fn status_error(&self, kind: Kind, resp: http::Response<Body>) -> ApiError {
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
        let name = &self.name;
        let what = kind.as_str();
        match status {
            StatusCode::NOT_FOUND => ApiError::new(
                StatusCode::NOT_FOUND,
                kind.not_found_code(),
                Side::Upstream,
                format!("registry {name} has no such {what}{detail}"),
            ),
            StatusCode::UNAUTHORIZED if self.passthrough => {
                let mut e = ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    Code::Unauthorized,
                    Side::Upstream,
                    format!("registry {name} requires authentication{detail}"),
                );
                for v in www {
                    e = e.with_header(header::WWW_AUTHENTICATE, v);
                }
                e
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ApiError::upstream(
                StatusCode::BAD_GATEWAY,
                format!(
                    "registry {name} refused portcullis's credentials ({status}){detail}; check [registries.auth]"
                ),
            ),
            s if s.is_client_error() => {
                let mut e = ApiError::new(
                    s,
                    Code::Unknown,
                    Side::Upstream,
                    format!("registry {name} answered {s}{detail}"),
                );
                if let Some(c) = up_code {
                    e.detail = Some(serde_json::json!({ "upstream_code": c }));
                }
                e
            }
            s => {
                crate::metrics::upstream_fault(name, "status_5xx");
                ApiError::outage(
                    StatusCode::BAD_GATEWAY,
                    format!("registry {name} answered {s}{detail}"),
                )
            }
        }
    }
}

/// At most 64 KiB of an error body: enough for any OCI error, bounded against a hostile one.
async fn read_error_body(resp: http::Response<Body>) -> Bytes {
    let mut buf = BytesMut::new();
    let mut s = resp.into_body();
    while let Some(Ok(c)) = s.next().await {
        buf.extend_from_slice(&c);
        if buf.len() > 64 * 1024 {
            break;
        }
    }
    buf.freeze()
}

/// The first error's code and message from an OCI error body, if it is one (truncated: the
/// text is the registry's, shown to our client inside our own message).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_error_bodies() {
        let (c, m) = parse_oci_error(br#"{"errors":[{"code":"NAME_UNKNOWN","message":"no"}]}"#);
        assert_eq!(c.as_deref(), Some("NAME_UNKNOWN"));
        assert_eq!(m.as_deref(), Some("no"));
        assert_eq!(parse_oci_error(b"<html>"), (None, None));
        let long = format!(r#"{{"errors":[{{"message":"{}"}}]}}"#, "x".repeat(1000));
        assert_eq!(parse_oci_error(long.as_bytes()).1.unwrap().len(), 300);
    }
}
