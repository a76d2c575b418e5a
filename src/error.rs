//! The one place where failures become OCI error responses.
//!
//! Every error records which side caused it (as pingora does): the downstream client (bad
//! input, 4xx), the trust decision (403 `DENIED`), the upstream registry (its own 4xx passed on,
//! or 502/503 naming the registry), or ourselves (500, cause only in the log). That side decides
//! the status code and the log level. Body shape: distribution-spec "Error codes":
//! `{"errors":[{"code","message","detail"}]}`.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::{Body, full};
use crate::policy::Reason;

/// OCI distribution-spec error codes (plus Distribution's `UNAVAILABLE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BlobUnknown,
    ManifestUnknown,
    ManifestInvalid,
    NameInvalid,
    NameUnknown,
    TagInvalid,
    DigestInvalid,
    SizeInvalid,
    RangeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    Unavailable,
    TooManyRequests,
    Unknown,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::TagInvalid => "TAG_INVALID",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::RangeInvalid => "RANGE_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
            Code::Unavailable => "UNAVAILABLE",
            Code::TooManyRequests => "TOOMANYREQUESTS",
            Code::Unknown => "UNKNOWN",
        }
    }
}

/// Who caused a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client sent something we refuse (bad name, unsupported method).
    Downstream,
    /// Trust verification refused the content.
    Trust,
    /// The upstream registry (or trust server) failed or answered an error.
    Upstream,
    /// A bug or local fault; details go only to the log.
    Internal,
}

/// An error on its way to becoming a response.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Code,
    pub message: String,
    /// Machine-readable detail returned to the client (never secrets or internal causes).
    pub detail: Option<serde_json::Value>,
    pub side: Side,
    /// Extra headers, e.g. `WWW-Authenticate` passed back in passthrough mode.
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
    /// Why trust refused, for a `Side::Trust` error (metrics and logs read it from here).
    pub reason: Option<Reason>,
    /// The upstream could not serve at all (unreachable, timed out, answered 5xx), as opposed
    /// to serving something wrong: only an outage may become "not cached" (see `not_cached`).
    pub outage: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, code: Code, side: Side, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            detail: None,
            side,
            headers: Vec::new(),
            reason: None,
            outage: false,
        }
    }

    pub fn bad_request(code: Code, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, Side::Downstream, message)
    }

    /// A trust refusal: 403 `DENIED`, with a reason a person can act on.
    pub fn denied(reason: Reason, message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::FORBIDDEN, Code::Denied, Side::Trust, message);
        e.detail = Some(serde_json::json!({ "reason": reason.as_str() }));
        e.reason = Some(reason);
        e
    }

    /// The upstream could not be reached or failed: 502 (bad answer) or 503 (unreachable).
    pub fn upstream(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, Code::Unavailable, Side::Upstream, message)
    }

    /// An upstream that could not serve at all (unreachable, timed out, 5xx).
    pub fn outage(status: StatusCode, message: impl Into<String>) -> Self {
        let mut e = Self::upstream(status, message);
        e.outage = true;
        e
    }

    /// An upstream outage (unreachable, timed out, 5xx) for content that is not in the cache
    /// becomes a 503 `UNAVAILABLE` that says both, so an operator of an offline node knows the
    /// image was never pulled (or bundled) here. Other errors pass unchanged: an upstream that
    /// served the wrong bytes stays a 502 that says so, since "pull it once while the registry
    /// is up" would be the wrong advice.
    pub fn not_cached(self, what: &str) -> ApiError {
        if !self.outage {
            return self;
        }
        crate::metrics::offline_not_cached();
        let mut e = ApiError::upstream(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{what} is not in portcullis's cache and the registry cannot serve it ({}); pull it once while the registry is up, or import a bundle (portcullis bundle import)",
                self.message
            ),
        );
        e.detail = Some(serde_json::json!({ "cached": false }));
        e
    }

    /// A fault of ours. The client sees a generic message; the cause is logged here.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(cause = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Code::Unknown,
            Side::Internal,
            "internal error in portcullis; see its log",
        )
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The OCI error body.
    pub fn body_json(&self) -> Bytes {
        let mut err = serde_json::json!({ "code": self.code.as_str(), "message": self.message });
        if let Some(d) = &self.detail {
            err["detail"] = d.clone();
        }
        Bytes::from(serde_json::json!({ "errors": [err] }).to_string())
    }

    pub fn into_response(self, head_only: bool) -> Response<Body> {
        let bytes = self.body_json();
        let len = bytes.len();
        let mut resp = Response::new(if head_only {
            full(Bytes::new())
        } else {
            full(bytes)
        });
        *resp.status_mut() = self.status;
        // containerd shows only the status line of a refused HEAD (its first request for a
        // tag), never the body: carry our own message in the HTTP/1.1 reason phrase so that
        // the kubelet's error says why. Only our text, never upstream bytes.
        if let Some(phrase) = reason_phrase(self.status, &self.message) {
            resp.extensions_mut().insert(phrase);
        }
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        for (k, v) in self.headers {
            h.append(k, v);
        }
        resp
    }
}

/// `Forbidden (portcullis: <message>)`, printable ASCII only, bounded in length.
fn reason_phrase(status: StatusCode, message: &str) -> Option<hyper::ext::ReasonPhrase> {
    const MAX: usize = 400;
    let canonical = status.canonical_reason().unwrap_or("Error");
    let mut text = format!("{canonical} (portcullis: ");
    for c in message.chars() {
        if text.len() >= MAX {
            text.push_str("...");
            break;
        }
        text.push(if c.is_ascii_graphic() || c == ' ' {
            c
        } else {
            '?'
        });
    }
    text.push(')');
    hyper::ext::ReasonPhrase::try_from(text.into_bytes()).ok()
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code.as_str(),
            self.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_shape() {
        let e = ApiError::denied(Reason::NotSigned, "demo/app:v2 is not signed");
        let v: serde_json::Value = serde_json::from_slice(&e.body_json()).unwrap();
        assert_eq!(v["errors"][0]["code"], "DENIED");
        assert_eq!(v["errors"][0]["message"], "demo/app:v2 is not signed");
        assert_eq!(v["errors"][0]["detail"]["reason"], "not_signed");
        assert_eq!(e.status, StatusCode::FORBIDDEN);
    }

    #[test]
    fn reason_phrase_is_bounded_ascii() {
        let p =
            reason_phrase(StatusCode::FORBIDDEN, &format!("é\r\n{}", "x".repeat(1000))).unwrap();
        let s = std::str::from_utf8(p.as_bytes()).unwrap();
        assert!(s.starts_with("Forbidden (portcullis: ??"), "{s}");
        assert!(s.len() < 420);
        assert!(s.bytes().all(|b| (0x20..0x7f).contains(&b)));
    }

    #[test]
    fn internal_hides_cause() {
        let e = ApiError::internal("secret path /etc/x");
        assert!(!e.message.contains("/etc/x"));
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
