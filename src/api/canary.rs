//! The reserved repository `portcullis-doctor/canary` (see `doctor::canary`): answered here,
//! before any handler, so a canary request never reaches the trust gate, the cache or the
//! registry, and is counted only in `portcullis_doctor_canary_requests_total`.

use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::ctx::Reply;
use super::route::Route;
use super::{DOCKER_CONTENT_DIGEST, header_value};
use crate::body::full;
use crate::doctor::canary;
use crate::error::{ApiError, Code, Side};
use crate::refs::Reference;

/// Whether `route` names the reserved repository.
pub fn is_canary(route: &Route) -> bool {
    route
        .repo()
        .is_some_and(|r| r.as_str() == canary::REPOSITORY)
}

/// Answers a canary request; `Err` is a refusal (unknown nonce, unknown digest, other routes).
pub fn serve(cache_dir: &std::path::Path, route: &Route) -> Result<Reply, ApiError> {
    let img = canary::image();
    let (bytes, digest, ctype) = match route {
        Route::Manifest {
            reference: Reference::Tag(tag),
            ..
        } => {
            // Read per request: canary pulls are rare, and a key replaced on disk applies at once.
            let key = canary::read_key(cache_dir).map_err(|e| {
                refused(
                    Code::ManifestUnknown,
                    format!("the doctor's canary key is not usable ({e}): no canary is served"),
                )
            })?;
            if !canary::nonce_valid(&key, tag.as_str()) {
                return Err(refused(
                    Code::ManifestUnknown,
                    format!(
                        "{}:{} is not a nonce made by `portcullis doctor` with this proxy's key in the last {} s",
                        canary::REPOSITORY,
                        tag.as_str(),
                        canary::NONCE_TTL.as_secs()
                    ),
                ));
            }
            (img.manifest, img.manifest_digest, canary::MANIFEST_TYPE)
        }
        Route::Manifest {
            reference: Reference::Digest(d),
            ..
        } if d.to_string() == img.manifest_digest => {
            (img.manifest, img.manifest_digest, canary::MANIFEST_TYPE)
        }
        Route::Blob { digest, .. } if digest.to_string() == img.config_digest => {
            (img.config, img.config_digest, "application/octet-stream")
        }
        Route::Blob { digest, .. } if digest.to_string() == img.layer_digest => {
            (img.layer, img.layer_digest, "application/octet-stream")
        }
        Route::Blob { .. } => {
            return Err(refused(
                Code::BlobUnknown,
                "not a blob of the canary".into(),
            ));
        }
        _ => {
            return Err(refused(
                Code::ManifestUnknown,
                format!("{} serves only the doctor's canary", canary::REPOSITORY),
            ));
        }
    };
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    h.insert(DOCKER_CONTENT_DIGEST, header_value(&digest)?);
    // Never kept by a cache in between: the next nonce must reach this proxy again.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(Reply::ok(h, Some(full(bytes))))
}

fn refused(code: Code, msg: String) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, code, Side::Downstream, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str) -> Route {
        super::super::route::parse(&http::Method::GET, path, None)
            .unwrap()
            .route
    }

    #[test]
    fn only_a_registered_nonce_gets_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let base = "/v2/portcullis-doctor/canary/manifests/";
        assert!(
            serve(dir.path(), &route(&format!("{base}latest"))).is_err(),
            "no key"
        );
        canary::ensure_key(dir.path()).unwrap();
        let key = canary::read_key(dir.path()).unwrap();
        let n = canary::make_nonce(&key).unwrap();
        let r = serve(dir.path(), &route(&format!("{base}{n}"))).unwrap();
        assert_eq!(r.status, StatusCode::OK);
        assert!(serve(dir.path(), &route(&format!("{base}latest"))).is_err());
        let img = canary::image();
        for ok in [
            format!("{base}{}", img.manifest_digest),
            format!("/v2/portcullis-doctor/canary/blobs/{}", img.layer_digest),
            format!("/v2/portcullis-doctor/canary/blobs/{}", img.config_digest),
        ] {
            assert!(serve(dir.path(), &route(&ok)).is_ok(), "{ok}");
        }
        let other = format!(
            "/v2/portcullis-doctor/canary/blobs/sha256:{}",
            "a".repeat(64)
        );
        assert!(serve(dir.path(), &route(&other)).is_err());
        assert!(is_canary(&route(&format!("{base}x"))));
        assert!(!is_canary(&route("/v2/demo/app/manifests/v1")));
    }
}
