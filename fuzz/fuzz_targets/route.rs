//! `api::route::parse(method, path, query)`: every request's first parser.
//! Invariants: an accepted route re-serialises to exactly the path it came from (so what goes
//! upstream is what the client named, nothing normalised or smuggled), only GET/HEAD pass, and
//! the names in it satisfy the refs grammars again.
#![no_main]

use arbitrary::Arbitrary;
use http::Method;
use libfuzzer_sys::fuzz_target;
use portcullis::api::route::{Route, parse, query_param};
use portcullis::refs::{Digest, RepoName, Tag};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    method: MethodSel<'a>,
    /// Appended to "/v2/" most of the time, so the fuzzer spends its effort past the prefix.
    prefixed: bool,
    path: &'a str,
    query: Option<&'a str>,
}

#[derive(Arbitrary, Debug)]
enum MethodSel<'a> {
    Get,
    Head,
    Put,
    Post,
    Delete,
    Patch,
    Other(&'a [u8]),
}

fuzz_target!(|inp: Input<'_>| {
    let method = match inp.method {
        MethodSel::Get => Method::GET,
        MethodSel::Head => Method::HEAD,
        MethodSel::Put => Method::PUT,
        MethodSel::Post => Method::POST,
        MethodSel::Delete => Method::DELETE,
        MethodSel::Patch => Method::PATCH,
        MethodSel::Other(b) => match Method::from_bytes(b) {
            Ok(m) => m,
            Err(_) => return,
        },
    };
    let path = if inp.prefixed {
        format!("/v2/{}", inp.path)
    } else {
        inp.path.to_owned()
    };
    let Ok(parsed) = parse(&method, &path, inp.query) else {
        return;
    };
    assert!(
        method == Method::GET || method == Method::HEAD,
        "{method} accepted for {path}"
    );
    assert_eq!(parsed.ns, query_param(inp.query, "ns"));
    let rebuilt = match &parsed.route {
        Route::Base => {
            assert!(path == "/v2" || path == "/v2/", "base route from {path:?}");
            return;
        }
        Route::Manifest { repo, reference } => format!("/v2/{repo}/manifests/{reference}"),
        Route::Blob { repo, digest } => format!("/v2/{repo}/blobs/{digest}"),
        Route::Tags { repo, last, .. } => {
            if let Some(l) = last {
                assert_eq!(l.as_str().parse::<Tag>().as_ref(), Ok(l));
            }
            format!("/v2/{repo}/tags/list")
        }
        Route::Referrers { repo, digest, .. } => format!("/v2/{repo}/referrers/{digest}"),
    };
    assert_eq!(rebuilt, path, "route does not re-serialise to its path");
    let repo = parsed.route.repo().expect("non-base route has a repo");
    assert!(repo.as_str().len() <= portcullis::refs::MAX_NAME_LEN);
    assert!(!repo.as_str().contains(['%', '\\', '?', '#']) && !repo.as_str().contains(".."));
    assert_eq!(repo.as_str().parse::<RepoName>().as_ref(), Ok(repo));
    if let Route::Blob { digest, .. } | Route::Referrers { digest, .. } = &parsed.route {
        assert_eq!(digest.to_string().parse::<Digest>().as_ref(), Ok(digest));
    }
});
