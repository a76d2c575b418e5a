//! Trust sources: who says which digest a tag may name.
//!
//! A [`TrustSource`] answers two questions for a repository: which digest a tag resolves to
//! (and which signer vouches for it), and which targets are currently trusted at all (used to
//! rebuild the closure of trusted content after a restart, and to list trusted tags). The proxy
//! never decides trust itself; it asks a source and carries out the answer (see `policy` and
//! `api::gate`).
//!
//! The seam speaks no source's dialect: a [`SourceConfig`] names its kind, a [`TrustedTarget`]
//! records which kind of source and which signer vouched, and errors carry a [`Reason`].
//! Sources: `notary` (Notary v1 / Docker Content Trust) and `tuf` (a plain TUF 1.0
//! repository). cosign / Notation plug in as siblings.

pub mod cosign;
pub mod discover;
pub mod evidence;
pub mod notary;
pub mod notation;
pub mod rfc3161;
pub mod set;
pub mod signature;
pub mod tag_memory;
pub mod tuf;
pub mod verdicts;

use async_trait::async_trait;

pub use crate::config::SourceConfig;
pub use crate::policy::Reason;
use crate::refs::{Digest, RepoName, Tag};

/// Which kind of source vouched for a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// Notary v1 / Docker Content Trust.
    Notary,
    /// A plain TUF 1.0 repository.
    Tuf,
    /// A signature on the digest (cosign, Notation) under a `[[policy]]`; the tag was bound
    /// by the registry, not signed.
    Signature,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Notary => "notary",
            SourceKind::Tuf => "tuf",
            SourceKind::Signature => "signature",
        }
    }
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tag that a trust source vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedTarget {
    /// The tag (target name) that was signed.
    pub name: String,
    /// Digest of the manifest bytes, as signed.
    pub digest: Digest,
    /// Length of the manifest bytes, when the source signs one (TUF and Notary do; a cosign
    /// or Notation signature names only the digest).
    pub length: Option<u64>,
    /// The manifest media type, when the signature records one (TUF `custom.mediaType`):
    /// the served manifest must have it.
    pub media_type: Option<String>,
    /// Which kind of source vouched.
    pub source: SourceKind,
    /// Who signed it, in the source's terms: a Notary role such as `targets/releases` (or
    /// `a+b` for required signers), a key or identity for other sources.
    pub signer: String,
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
    /// The typed reason for a denial (its label is a metric label and a log field).
    pub fn reason(&self) -> Reason {
        match self {
            TrustError::NotSigned(_) => Reason::NotSigned,
            TrustError::Invalid(_) => Reason::InvalidMetadata,
            TrustError::Unavailable(_) => Reason::TrustUnavailable,
            TrustError::State(_) => Reason::TrustState,
        }
    }
}

/// What `portcullis check` prints about a resolved tag: the target, then source-specific
/// facts as (label, value) lines, and whether cached metadata stood in for the server.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub target: TrustedTarget,
    pub facts: Vec<(String, String)>,
    /// `Some(cause)` when the trust server was unreachable and cached metadata was used.
    pub offline: Option<String>,
}

/// A source of signed tag -> digest mappings for one registry.
#[async_trait]
pub trait TrustSource: Send + Sync {
    /// The digest `tag` of `repo` is signed for, under the configured policy.
    async fn resolve(&self, repo: &RepoName, tag: &Tag) -> Result<TrustedTarget, TrustError>;

    /// Every target the policy currently trusts in `repo` (for rebuilding the closure of
    /// trusted manifests and blobs, e.g. after a restart).
    async fn trusted_targets(&self, repo: &RepoName) -> Result<Vec<TrustedTarget>, TrustError>;

    /// Like [`TrustSource::resolve`], but always asking the server (falling back to cached
    /// metadata only when it is unreachable, and saying so) and reporting what was verified.
    async fn check(&self, repo: &RepoName, tag: &Tag) -> Result<CheckReport, TrustError>;
}

/// Builds the trust source for `registry` from its configuration.
pub fn build(
    registry: &str,
    cfg: SourceConfig<'_>,
    cache_dir: &std::path::Path,
) -> anyhow::Result<std::sync::Arc<dyn TrustSource>> {
    match cfg {
        SourceConfig::Notary(n) => build_notary(registry, n, cache_dir),
        SourceConfig::Tuf(t) => {
            let source = tuf::TufSource::new(t, cache_dir)
                .map_err(|e| anyhow::anyhow!("registry {registry}: tuf trust source: {e}"))?;
            Ok(std::sync::Arc::new(source))
        }
    }
}

fn build_notary(
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
