//! Errors of the Notary v1 source. Each names the GUN, the role and why, so an operator can act.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::trust::TrustError;

use super::fetch::FetchError;

/// Why Notary metadata could not be trusted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Signature, threshold, hash, length, shape, key: the metadata is not what was signed.
    #[error("{role} of {gun} is invalid: {reason}")]
    Invalid {
        gun: String,
        role: String,
        reason: String,
    },
    /// TUF 5.x "freeze attack": metadata past its `expires` is refused.
    #[error("{role} of {gun} expired at {}", fmt_time(*.expires))]
    Expired {
        gun: String,
        role: String,
        expires: OffsetDateTime,
    },
    /// TUF "rollback attack": a version below the highest already trusted.
    #[error(
        "{role} of {gun} is version {got}, older than version {seen} already trusted (rollback refused)"
    )]
    Rollback {
        gun: String,
        role: String,
        got: u64,
        seen: u64,
    },
    /// The server answered but did not have a role (404).
    #[error(
        "{role} of {gun} is not on the notary server {server} (404): is the repository signed?"
    )]
    NotFound {
        gun: String,
        role: String,
        server: String,
    },
    /// The server could not be reached or misbehaved, and no cache could stand in.
    #[error("notary server {server} unreachable ({cause}) and no cached metadata for {gun}")]
    Unavailable {
        gun: String,
        server: String,
        cause: String,
    },
    /// Cached metadata exists but has expired while the server is unreachable.
    #[error(
        "notary server {server} unreachable ({cause}) and the cached metadata for {gun} is no longer valid: {cached}"
    )]
    CacheExpired {
        gun: String,
        server: String,
        cause: String,
        cached: String,
    },
    /// A transfer failed for a reason other than reachability (too large, too slow, ...).
    #[error("fetching {role} of {gun}: {source}")]
    Fetch {
        gun: String,
        role: String,
        source: FetchError,
    },
    /// No pin, no CA, no TOFU and nothing trusted before.
    #[error("{0}")]
    NoRootOfTrust(String),
    /// Local state is unusable; never a reason to trust on first use again.
    #[error(
        "trust state for {gun} in {dir} is unusable ({reason}); to start over with this GUN deliberately, stop portcullis and delete {dir}"
    )]
    State {
        gun: String,
        dir: String,
        reason: String,
    },
    /// Verified metadata does not sign the tag where the policy looks.
    #[error("{0}")]
    NotSigned(String),
    /// The source could not be built from its config (a `ca_file` that holds no certificate):
    /// a mistake on this side, not a server that cannot be reached.
    #[error("{0}")]
    Setup(String),
}

pub(crate) fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

pub(crate) fn invalid(gun: &str, role: &str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        gun: gun.to_string(),
        role: role.to_string(),
        reason: reason.into(),
    }
}

impl From<Error> for TrustError {
    fn from(e: Error) -> TrustError {
        let msg = e.to_string();
        match e {
            Error::NotSigned(_) => TrustError::NotSigned(msg),
            Error::Invalid { .. } | Error::Expired { .. } | Error::Rollback { .. } => {
                TrustError::Invalid(msg)
            }
            // The notary server answered 404: it holds no such metadata, so for the policy the
            // tag is not signed. Its own label (not `invalid_metadata`), because people alert
            // on invalid metadata as a sign of attack, and a never-signed repository is not one.
            Error::NotFound { .. } => TrustError::NotSigned(msg),
            Error::NoRootOfTrust(_) => TrustError::Invalid(msg),
            Error::Unavailable { .. } | Error::CacheExpired { .. } | Error::Fetch { .. } => {
                TrustError::Unavailable(msg)
            }
            Error::State { .. } | Error::Setup(_) => TrustError::State(msg),
        }
    }
}
