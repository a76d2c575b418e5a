//! Pure decisions: (what was asked, what trust says) -> [`Decision`]; and how a repository's
//! mode turns a decision into serve or refuse. Handlers only carry decisions out, so the
//! security logic lives here and is table-tested.

use std::collections::HashSet;

use crate::config::Mode;
use crate::refs::{Digest, RepoName, Tag};
use crate::trust::{TrustError, TrustedTarget};

/// Why content was (or, in audit mode, would have been) refused. Its label is the
/// `reason` of `portcullis_denials_total`, of the log line, and of the `DENIED` body's
/// `detail`; people alert on it, so labels never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Verified metadata exists, but does not sign this tag (or the repository was never
    /// signed).
    NotSigned,
    /// Metadata failed verification: signature, threshold, expiry, rollback.
    InvalidMetadata,
    /// The trust server is unreachable and no usable cache exists.
    TrustUnavailable,
    /// Local trust state is unusable.
    TrustState,
    /// The registry (or repository) has no trust source configured.
    NoTrustSource,
    /// Content by digest that no currently trusted target reaches.
    NotInTrustedClosure,
    /// The registry maps a signed tag to other content (`on_tag_drift = "refuse"`).
    TagMoved,
    /// Two tag-binding sources of one policy bind the tag to different digests.
    SourcesDisagree,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NotSigned => "not_signed",
            Reason::InvalidMetadata => "invalid_metadata",
            Reason::TrustUnavailable => "trust_unavailable",
            Reason::TrustState => "trust_state",
            Reason::NoTrustSource => "no_trust_source",
            Reason::NotInTrustedClosure => "not_in_trusted_closure",
            Reason::TagMoved => "tag_moved",
            Reason::SourcesDisagree => "sources_disagree",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Allow, or deny with a reason and a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny { reason: Reason, message: String },
}

/// What to do after applying the repository's mode to a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Serve,
    /// Audit mode: serve, but log and count what enforce would have refused.
    ServeAudited {
        reason: Reason,
        message: String,
    },
    Refuse {
        reason: Reason,
        message: String,
    },
}

pub fn apply(mode: Mode, d: Decision) -> Action {
    match (mode, d) {
        (_, Decision::Allow) | (Mode::Skip, _) => Action::Serve,
        (Mode::Audit, Decision::Deny { reason, message }) => {
            Action::ServeAudited { reason, message }
        }
        (Mode::Enforce, Decision::Deny { reason, message }) => Action::Refuse { reason, message },
    }
}

/// A repository whose registry has no trust source: refuse, saying how to fix it.
pub fn no_trust_source(registry: &str, repo: &RepoName) -> Decision {
    Decision::Deny {
        reason: Reason::NoTrustSource,
        message: format!(
            "no trust source is configured for {registry}/{repo}; configure [registries.notary] \
             for {registry}, or set mode = \"skip\" for it explicitly to pull without verification"
        ),
    }
}

/// A manifest requested by tag: trusted if the trust source resolved it.
pub fn for_tag(
    registry: &str,
    repo: &RepoName,
    tag: &Tag,
    resolved: &Result<TrustedTarget, TrustError>,
) -> Decision {
    match resolved {
        Ok(_) => Decision::Allow,
        Err(e) => Decision::Deny {
            reason: e.reason(),
            message: format!("{registry}/{repo}:{tag} refused: {e}"),
        },
    }
}

/// Content requested by digest: trusted if it is a currently trusted target, or reachable from
/// one (`roots` are the targets it was reached from; `trusted` the targets trusted now).
pub fn for_digest(
    registry: &str,
    repo: &RepoName,
    digest: &Digest,
    roots: &HashSet<Digest>,
    trusted: &HashSet<Digest>,
) -> Decision {
    if trusted.contains(digest) || roots.iter().any(|r| trusted.contains(r)) {
        return Decision::Allow;
    }
    let message = if roots.is_empty() {
        format!(
            "{digest} in {registry}/{repo} is not reachable from any signed tag; pull a signed \
             tag, or sign the tag that names this content"
        )
    } else {
        format!(
            "{digest} in {registry}/{repo} was reachable only from targets that are no longer \
             signed (the tag was re-signed or removed)"
        )
    };
    Decision::Deny {
        reason: Reason::NotInTrustedClosure,
        message,
    }
}

/// Glob over repository names: `*` within one path segment, `**` across segments.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn rec(p: &[u8], n: &[u8]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some(b'*') if p.get(1) == Some(&b'*') => (0..=n.len()).any(|i| rec(&p[2..], &n[i..])),
            Some(b'*') => {
                let seg_end = n.iter().position(|&c| c == b'/').unwrap_or(n.len());
                (0..=seg_end).any(|i| rec(&p[1..], &n[i..]))
            }
            Some(&c) => n.first() == Some(&c) && rec(&p[1..], &n[1..]),
        }
    }
    rec(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .unwrap()
    }

    #[test]
    fn modes() {
        let deny = Decision::Deny {
            reason: Reason::NotSigned,
            message: "m".into(),
        };
        assert_eq!(apply(Mode::Enforce, Decision::Allow), Action::Serve);
        assert!(matches!(
            apply(Mode::Enforce, deny.clone()),
            Action::Refuse { .. }
        ));
        assert!(matches!(
            apply(Mode::Audit, deny.clone()),
            Action::ServeAudited { .. }
        ));
        assert_eq!(apply(Mode::Skip, deny), Action::Serve);
    }

    #[test]
    fn digest_decisions() {
        let repo: RepoName = "demo/app".parse().unwrap();
        let trusted: HashSet<_> = [d('a')].into();
        let none = HashSet::new();
        assert_eq!(
            for_digest("r", &repo, &d('a'), &none, &trusted),
            Decision::Allow
        );
        assert_eq!(
            for_digest("r", &repo, &d('b'), &[d('a')].into(), &trusted),
            Decision::Allow
        );
        let Decision::Deny { message, .. } = for_digest("r", &repo, &d('b'), &none, &trusted)
        else {
            panic!()
        };
        assert!(message.contains("not reachable from any signed tag"));
        let Decision::Deny { message, .. } =
            for_digest("r", &repo, &d('b'), &[d('c')].into(), &trusted)
        else {
            panic!()
        };
        assert!(message.contains("no longer"));
    }

    #[test]
    fn tag_decisions() {
        let repo: RepoName = "demo/app".parse().unwrap();
        let tag: Tag = "v2".parse().unwrap();
        let e = Err(TrustError::NotSigned(
            "not signed in targets/releases or targets".into(),
        ));
        let Decision::Deny { reason, message } = for_tag("127.0.0.1:5000", &repo, &tag, &e) else {
            panic!()
        };
        assert_eq!(reason, Reason::NotSigned);
        assert!(message.contains("127.0.0.1:5000/demo/app:v2"));
    }

    #[test]
    fn globs() {
        assert!(glob_match("demo/*", "demo/app"));
        assert!(!glob_match("demo/*", "demo/app/x"));
        assert!(glob_match("demo/**", "demo/app/x"));
        assert!(glob_match("**", "a/b/c"));
        assert!(glob_match("*/app", "demo/app"));
        assert!(!glob_match("demo/app", "demo/apps"));
        assert!(glob_match("demo/app", "demo/app"));
    }
}
