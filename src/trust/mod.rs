//! Trust sources: who says which digest a tag may name.
//!
//! A [`TrustSource`] answers two questions for a repository: which digest a tag resolves to
//! (and which signed role says so), and which targets are currently trusted at all (used to
//! rebuild the closure of trusted content after a restart). The proxy never decides trust
//! itself; it asks a source and carries out the answer (see `policy`).
//!
//! Sources: `notary` (Notary v1 / Docker Content Trust). Plain TUF and cosign/Notation plug in
//! here later.

pub mod notary;

use async_trait::async_trait;

use crate::refs::{Digest, RepoName, Tag};

/// A tag that a trust source vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedTarget {
    /// The tag (target name) that was signed.
    pub name: String,
    /// sha256 digest of the manifest bytes, as signed.
    pub digest: Digest,
    /// Length of the manifest bytes, as signed.
    pub length: u64,
    /// The role that signed it, e.g. `targets/releases`.
    pub role: String,
}

/// Why a source could not vouch for a tag. Every message must tell an operator what to do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TrustError {
    /// Verified metadata exists, but it does not sign this tag (where the policy looks).
    #[error("{0}")]
    NotSigned(String),
    /// Metadata was fetched but failed verification (signature, expiry, rollback, ...).
    #[error("{0}")]
    Invalid(String),
    /// The trust server could not be reached and no usable cache exists.
    #[error("{0}")]
    Unavailable(String),
    /// Local state is unusable (corrupt state file, missing pinned root, ...).
    #[error("{0}")]
    State(String),
}

impl TrustError {
    /// A short machine-readable reason, used as a metric label and in structured logs.
    pub fn reason(&self) -> &'static str {
        match self {
            TrustError::NotSigned(_) => "not_signed",
            TrustError::Invalid(_) => "invalid_metadata",
            TrustError::Unavailable(_) => "trust_unavailable",
            TrustError::State(_) => "trust_state",
        }
    }
}

/// A source of signed tag -> digest mappings for one registry.
#[async_trait]
pub trait TrustSource: Send + Sync {
    /// The digest `tag` of `repo` is signed for, under the configured policy.
    async fn resolve(&self, repo: &RepoName, tag: &Tag) -> Result<TrustedTarget, TrustError>;

    /// Every target the policy currently trusts in `repo` (for rebuilding the closure of
    /// trusted manifests and blobs, e.g. after a restart).
    async fn trusted_targets(&self, repo: &RepoName) -> Result<Vec<TrustedTarget>, TrustError>;
}

/// Builds the trust source for `registry` from its `[registries.notary]` section.
pub fn build(
    registry: &str,
    cfg: &crate::config::NotaryConfig,
    cache_dir: &std::path::Path,
) -> anyhow::Result<std::sync::Arc<dyn TrustSource>> {
    let pins = &cfg.trust_pinning;
    if pins.certs.is_empty() && pins.ca.is_empty() {
        if pins.tofu {
            tracing::warn!(
                registry,
                server = %cfg.server,
                "no root key or CA pinned: trusting the first root seen per GUN (tofu = true); \
                 pin root keys with [registries.notary.trust_pinning] certs in production"
            );
        } else {
            tracing::warn!(
                registry,
                server = %cfg.server,
                "no root key or CA pinned and tofu = false: every pull will be refused until \
                 [registries.notary.trust_pinning] certs, ca or tofu is set"
            );
        }
    }
    let source = notary::NotarySource::new(registry, cfg, cache_dir)
        .map_err(|e| anyhow::anyhow!("registry {registry}: notary trust source: {e}"))?;
    Ok(std::sync::Arc::new(source))
}
