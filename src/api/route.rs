//! Request path -> typed [`Route`], once, at the edge.
//!
//! Only the distribution-spec pull endpoints exist here. Every part of the path is validated
//! into `refs` types, and any percent-encoded byte is refused: none of the grammars allows `%`,
//! so no client path can reach an upstream path other than the one it names.

use http::Method;

use crate::error::{ApiError, Code};
use crate::refs::{Digest, Reference, RepoName, Tag};

/// What the client asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /v2/`: API version check.
    Base,
    Manifest {
        repo: RepoName,
        reference: Reference,
    },
    Blob {
        repo: RepoName,
        digest: Digest,
    },
    Tags {
        repo: RepoName,
        n: Option<u32>,
        last: Option<Tag>,
    },
    Referrers {
        repo: RepoName,
        digest: Digest,
        artifact_type: Option<String>,
    },
}

impl Route {
    /// A short label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Route::Base => "base",
            Route::Manifest { .. } => "manifest",
            Route::Blob { .. } => "blob",
            Route::Tags { .. } => "tags",
            Route::Referrers { .. } => "referrers",
        }
    }

    pub fn repo(&self) -> Option<&RepoName> {
        match self {
            Route::Base => None,
            Route::Manifest { repo, .. }
            | Route::Blob { repo, .. }
            | Route::Tags { repo, .. }
            | Route::Referrers { repo, .. } => Some(repo),
        }
    }
}

/// A parsed request: route plus the parts of the query that matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub route: Route,
    /// containerd's `?ns=<registry host>`.
    pub ns: Option<String>,
}

fn unsupported(what: &str) -> ApiError {
    ApiError::new(
        http::StatusCode::METHOD_NOT_ALLOWED,
        Code::Unsupported,
        crate::error::Side::Downstream,
        format!("{what} is not supported: portcullis is a read-only pull proxy"),
    )
}

/// Parses method, path and query. Errors are ready-made OCI responses.
pub fn parse(method: &Method, path: &str, query: Option<&str>) -> Result<Parsed, ApiError> {
    let ns = query_param(query, "ns");
    let rest = match path.strip_prefix("/v2") {
        Some("") | Some("/") => {
            return if method == Method::GET || method == Method::HEAD {
                Ok(Parsed {
                    route: Route::Base,
                    ns,
                })
            } else {
                Err(unsupported(&format!("{method} /v2/")))
            };
        }
        Some(r) if r.starts_with('/') => &r[1..],
        _ => {
            return Err(ApiError::new(
                http::StatusCode::NOT_FOUND,
                Code::Unsupported,
                crate::error::Side::Downstream,
                "not a registry API path; portcullis serves /v2/ only",
            ));
        }
    };
    if rest.contains('%') {
        return Err(ApiError::bad_request(
            Code::NameInvalid,
            "percent-encoded characters are not allowed in registry paths",
        ));
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    // Uploads (push) anywhere after the name: refuse before anything else.
    if n >= 3 && segs[n - 2] == "uploads" || n >= 2 && segs[n - 1] == "uploads" {
        return Err(unsupported("pushing"));
    }
    if n < 3 {
        return Err(ApiError::new(
            http::StatusCode::NOT_FOUND,
            Code::NameUnknown,
            crate::error::Side::Downstream,
            format!("unknown registry API path /v2/{rest}"),
        ));
    }
    let name = |k: usize| -> Result<RepoName, ApiError> {
        segs[..n - k]
            .join("/")
            .parse::<RepoName>()
            .map_err(|e| ApiError::bad_request(Code::NameInvalid, e.to_string()))
    };
    let digest = |s: &str| -> Result<Digest, ApiError> {
        s.parse::<Digest>()
            .map_err(|e| ApiError::bad_request(Code::DigestInvalid, e.to_string()))
    };
    let read_only = method == Method::GET || method == Method::HEAD;
    let route = match (segs[n - 2], segs[n - 1]) {
        ("tags", "list") => {
            if !read_only {
                return Err(unsupported(&format!("{method} on tags")));
            }
            let n_param = match query_param(query, "n") {
                Some(v) => Some(v.parse::<u32>().map_err(|_| {
                    ApiError::bad_request(Code::Unsupported, format!("n={v:?} is not a number"))
                })?),
                None => None,
            };
            let last = match query_param(query, "last") {
                Some(v) => Some(
                    v.parse::<Tag>()
                        .map_err(|e| ApiError::bad_request(Code::TagInvalid, e.to_string()))?,
                ),
                None => None,
            };
            Route::Tags {
                repo: name(2)?,
                n: n_param,
                last,
            }
        }
        ("manifests", r) => {
            if !read_only {
                return Err(unsupported(&format!("{method} on manifests")));
            }
            let reference = r.parse::<Reference>().map_err(|e| {
                let code = if r.contains(':') {
                    Code::DigestInvalid
                } else {
                    Code::TagInvalid
                };
                ApiError::bad_request(code, e.to_string())
            })?;
            Route::Manifest {
                repo: name(2)?,
                reference,
            }
        }
        ("blobs", d) => {
            if !read_only {
                return Err(unsupported(&format!("{method} on blobs")));
            }
            Route::Blob {
                repo: name(2)?,
                digest: digest(d)?,
            }
        }
        ("referrers", d) => {
            if !read_only {
                return Err(unsupported(&format!("{method} on referrers")));
            }
            Route::Referrers {
                repo: name(2)?,
                digest: digest(d)?,
                artifact_type: query_param(query, "artifactType"),
            }
        }
        _ => {
            return Err(ApiError::new(
                http::StatusCode::NOT_FOUND,
                Code::NameUnknown,
                crate::error::Side::Downstream,
                format!("unknown registry API path /v2/{rest}"),
            ));
        }
    };
    Ok(Parsed { route, ns })
}

/// The first value of `key` in a query string, percent-decoded.
pub fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, q: Option<&str>) -> Result<Parsed, ApiError> {
        parse(&Method::GET, path, q)
    }

    #[test]
    fn routes() {
        assert_eq!(get("/v2/", None).unwrap().route, Route::Base);
        assert_eq!(get("/v2", None).unwrap().route, Route::Base);
        let p = get("/v2/demo/app/manifests/v1", Some("ns=127.0.0.1%3A5000")).unwrap();
        assert_eq!(p.ns.as_deref(), Some("127.0.0.1:5000"));
        assert!(
            matches!(p.route, Route::Manifest { ref repo, reference: Reference::Tag(_) } if repo.as_str() == "demo/app")
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert!(matches!(
            get(&format!("/v2/a/b/c/blobs/{d}"), None).unwrap().route,
            Route::Blob { ref repo, .. } if repo.as_str() == "a/b/c"
        ));
        // A repository may itself contain a "manifests" component.
        assert!(matches!(
            get("/v2/x/manifests/y/manifests/latest", None).unwrap().route,
            Route::Manifest { ref repo, .. } if repo.as_str() == "x/manifests/y"
        ));
        let t = get("/v2/demo/app/tags/list", Some("n=2&last=v1")).unwrap();
        assert_eq!(
            t.route,
            Route::Tags {
                repo: "demo/app".parse().unwrap(),
                n: Some(2),
                last: Some("v1".parse().unwrap())
            }
        );
        assert!(matches!(
            get(&format!("/v2/demo/app/referrers/{d}"), None)
                .unwrap()
                .route,
            Route::Referrers { .. }
        ));
    }

    #[test]
    fn invalid_inputs_get_their_codes() {
        let code = |r: Result<Parsed, ApiError>| r.unwrap_err().code;
        assert_eq!(code(get("/v2/Demo/manifests/v1", None)), Code::NameInvalid);
        assert_eq!(
            code(get("/v2/demo/../x/manifests/v1", None)),
            Code::NameInvalid
        );
        assert_eq!(code(get("/v2/demo/manifests/.v1", None)), Code::TagInvalid);
        assert_eq!(
            code(get("/v2/demo/manifests/sha256:abc", None)),
            Code::DigestInvalid
        );
        assert_eq!(
            code(get("/v2/demo/blobs/sha256:XYZ", None)),
            Code::DigestInvalid
        );
        assert_eq!(
            code(get("/v2/demo%2f..%2fx/manifests/v1", None)),
            Code::NameInvalid
        );
        assert_eq!(
            code(get("/v2/demo/tags/list", Some("last=..."))),
            Code::TagInvalid
        );
        assert_eq!(code(get("/v2//manifests/v1", None)), Code::NameInvalid);
    }

    #[test]
    fn writes_are_unsupported() {
        for (m, p) in [
            (Method::PUT, "/v2/demo/manifests/v1"),
            (Method::DELETE, "/v2/demo/manifests/v1"),
            (Method::POST, "/v2/demo/blobs/uploads/"),
            (Method::PATCH, "/v2/demo/blobs/uploads/abc"),
            (Method::GET, "/v2/demo/blobs/uploads/abc"),
        ] {
            let e = parse(&m, p, None).unwrap_err();
            assert_eq!(e.code, Code::Unsupported, "{m} {p}");
            assert_eq!(e.status, http::StatusCode::METHOD_NOT_ALLOWED);
        }
    }
}
