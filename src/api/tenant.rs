//! Cached content and `client_auth = passthrough`: the cache must never hand one tenant's
//! private image to another.
//!
//! In passthrough mode the proxy holds no registry credentials; each client's own
//! `Authorization` goes upstream and the registry decides. Content from the cache skips that
//! request, so before a cached manifest or blob is served, the client's credentials are checked
//! with the registry for that repository: a HEAD of the same manifest or blob with the client's
//! `Authorization`. 2xx (or 404: the registry accepted the credentials and then did not find
//! the content) is a yes, remembered for [`ANSWER_TTL`] per (registry, repository, credential
//! hash); 401 passes the registry's challenge back to the client, so it can authenticate and
//! retry as it would against the registry; anything else refuses. A registry that cannot be
//! asked means no answer, and no cached content (fail closed: 503 saying why).
//!
//! Only "yes" is remembered, and only briefly: a revoked credential stops reading from the
//! cache within [`ANSWER_TTL`]. The credential itself is never stored, only its SHA-256.

use std::time::Duration;

use http::{HeaderMap, Method, header};
use sha2::Digest as _;

use super::ctx::Ctx;
use crate::error::ApiError;
use crate::refs::RepoName;
use crate::upstream::answer::Kind;

/// How long the registry's "yes" for a credential and repository is taken as still true.
pub const ANSWER_TTL: Duration = Duration::from_secs(60);

/// (registry, repository, SHA-256 of the client's `Authorization`, empty for none).
pub(super) type Answers = moka::future::Cache<(String, RepoName, [u8; 32]), ()>;

pub(super) fn new_answers() -> Answers {
    moka::future::Cache::builder()
        .max_capacity(100_000)
        .time_to_live(ANSWER_TTL)
        .build()
}

impl Ctx<'_> {
    /// Ok when this client may read cached content at `path` (a manifest or blob of this
    /// repository); always Ok outside passthrough mode, where every client reads with the
    /// proxy's one set of upstream credentials.
    pub async fn client_may_read(&self, path: &str, kind: Kind) -> Result<(), ApiError> {
        if !self.proxy.passthrough {
            return Ok(());
        }
        let credential = self
            .headers
            .get(header::AUTHORIZATION)
            .map_or(&[][..], |v| v.as_bytes());
        let key = (
            self.reg.name.clone(),
            self.repo.clone(),
            sha2::Sha256::digest(credential).into(),
        );
        if self.proxy.tenants.contains_key(&key) {
            return Ok(());
        }
        let resp = self
            .send(Method::HEAD, path, None, &HeaderMap::new())
            .await
            .map_err(|e| {
                ApiError::upstream(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "{}/{} is cached, but client_auth = passthrough needs the registry to accept your credentials first, and it cannot be asked: {}",
                        self.reg.name, self.repo, e.message
                    ),
                )
            })?;
        let status = resp.inner.status();
        if status.is_success() || status == http::StatusCode::NOT_FOUND {
            self.proxy.tenants.insert(key, ()).await;
            return Ok(());
        }
        crate::metrics::tenant_refused(&self.reg.name);
        Err(self.reg.upstream.status_error(kind, resp.inner).await)
    }
}
