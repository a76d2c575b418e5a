//! The sources that apply to one repository, as the policy composes them: `any_of` and
//! `all_of` lists of named members, each either tag-binding (Notary, TUF: a [`TrustSource`])
//! or digest-vouching (cosign, Notation: a [`DigestVerifier`] fed by discovery). The request
//! path (`api::gate`) and `portcullis check` ask a set the same questions; no member is a
//! special case.

use std::collections::HashMap;
use std::sync::Arc;

use super::TrustSource;
use super::signature::DigestVerifier;
use crate::config::{Mode, PolicyRule, REGISTRY_SOURCE, TrustSourceConfig};

/// One kind of source.
#[derive(Clone)]
pub enum Named {
    /// Binds tags to digests (and lists the targets it trusts).
    Tags(Arc<dyn TrustSource>),
    /// Vouches for digests from signatures found in the registry.
    Digests(Arc<dyn DigestVerifier>),
}

/// A named member of a set.
#[derive(Clone)]
pub struct Member {
    pub name: String,
    pub source: Named,
}

/// What a repository's policy requires.
#[derive(Clone, Default)]
pub struct SourceSet {
    /// Trusted if any vouches (empty: no `any_of` requirement).
    pub any_of: Vec<Member>,
    /// Trusted only if all vouch (empty: no `all_of` requirement).
    pub all_of: Vec<Member>,
    /// Whether the set came from a `[[policy]]` entry (else: the registry's own source as an
    /// implicit one-entry `any_of`, whose refusals read exactly as before).
    pub from_policy: bool,
    /// The entry's `offline_tag_memory` (a named loosening; `None`: off).
    pub offline_tag_memory: Option<std::time::Duration>,
}

impl SourceSet {
    pub fn is_empty(&self) -> bool {
        self.any_of.is_empty() && self.all_of.is_empty()
    }

    /// Every member once, `any_of` first, in configured order.
    pub fn members(&self) -> Vec<&Member> {
        let mut out: Vec<&Member> = Vec::new();
        for m in self.any_of.iter().chain(&self.all_of) {
            if !out.iter().any(|o| o.name == m.name) {
                out.push(m);
            }
        }
        out
    }

    /// The tag-binding members.
    pub fn tag_sources(&self) -> Vec<(&str, &Arc<dyn TrustSource>)> {
        self.members()
            .into_iter()
            .filter_map(|m| match &m.source {
                Named::Tags(t) => Some((m.name.as_str(), t)),
                Named::Digests(_) => None,
            })
            .collect()
    }

    /// The digest-vouching members.
    pub fn digest_sources(&self) -> Vec<(&str, &Arc<dyn DigestVerifier>)> {
        self.members()
            .into_iter()
            .filter_map(|m| match &m.source {
                Named::Digests(v) => Some((m.name.as_str(), v)),
                Named::Tags(_) => None,
            })
            .collect()
    }

    /// Whether these per-member answers satisfy the policy: any of `any_of` (if it has
    /// members) and all of `all_of`.
    pub fn satisfied(&self, vouched: &dyn Fn(&str) -> bool) -> bool {
        let any = self.any_of.is_empty() || self.any_of.iter().any(|m| vouched(&m.name));
        let all = self.all_of.iter().all(|m| vouched(&m.name));
        any && all
    }

    /// `any_of: a, b; all_of: c` for messages.
    pub fn describe(&self) -> String {
        let names = |ms: &[Member]| {
            ms.iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (self.any_of.is_empty(), self.all_of.is_empty()) {
            (false, true) => format!("any_of: {}", names(&self.any_of)),
            (true, false) => format!("all_of: {}", names(&self.all_of)),
            _ => format!(
                "any_of: {}; all_of: {}",
                names(&self.any_of),
                names(&self.all_of)
            ),
        }
    }
}

/// The built named sources of one registry: its tag-binding ones (built for this registry,
/// since a Notary GUN or TUF target name includes it) and the shared digest verifiers.
#[derive(Clone, Default)]
pub struct Built {
    pub sources: HashMap<String, Named>,
}

impl Built {
    /// The set for a repository under `rule`; `own` is the registry's (or override's) own
    /// source, which the name `registry` refers to.
    pub fn set_for(&self, rule: &PolicyRule, own: Option<&Arc<dyn TrustSource>>) -> SourceSet {
        let member = |n: &String| -> Option<Member> {
            let source = if n == REGISTRY_SOURCE {
                Named::Tags(own?.clone())
            } else {
                self.sources.get(n)?.clone()
            };
            Some(Member {
                name: n.clone(),
                source,
            })
        };
        SourceSet {
            any_of: rule.any_of.iter().filter_map(member).collect(),
            all_of: rule.all_of.iter().filter_map(member).collect(),
            from_policy: true,
            offline_tag_memory: rule.offline_tag_memory(),
        }
    }
}

/// The implicit set of a repository that no `[[policy]]` entry matches: its own source, if
/// any, as a one-entry `any_of`.
pub fn implicit(own: Option<&Arc<dyn TrustSource>>) -> SourceSet {
    SourceSet {
        any_of: own
            .map(|t| Member {
                name: REGISTRY_SOURCE.to_owned(),
                source: Named::Tags(t.clone()),
            })
            .into_iter()
            .collect(),
        all_of: Vec::new(),
        from_policy: false,
        offline_tag_memory: None,
    }
}

/// A rule names `registry` but neither the registry nor any override has a notary / tuf
/// source: say so at start (the member is dropped, so it can never vouch).
pub fn warn_missing_own(rule: &PolicyRule, registry: &str, has_own: bool) {
    if !has_own
        && rule
            .any_of
            .iter()
            .chain(&rule.all_of)
            .any(|n| n == REGISTRY_SOURCE)
    {
        tracing::warn!(registry, patterns = ?rule.repositories, "policy names \"registry\" but the registry has no notary or tuf source: that member never vouches");
    }
}

/// The mode of a repository under `rule`, else the registry's / override's.
pub fn mode_for(rule: Option<&PolicyRule>, own: Mode) -> Mode {
    rule.and_then(|r| r.mode).unwrap_or(own)
}

/// Builds a digest verifier from its configuration.
pub type VerifierFactory<'a> = dyn Fn(&str, &TrustSourceConfig, &std::path::Path) -> anyhow::Result<Arc<dyn DigestVerifier>>
    + 'a;

/// The default verifier factory: every digest-vouching type this build verifies. State a
/// verifier keeps (a trusted root fetched through TUF) goes under `cache_dir`.
pub fn build_verifier(
    name: &str,
    cfg: &TrustSourceConfig,
    cache_dir: &std::path::Path,
) -> anyhow::Result<Arc<dyn DigestVerifier>> {
    match cfg {
        TrustSourceConfig::CosignKey(k) => Ok(Arc::new(
            super::cosign::CosignKeyVerifier::new(k, cache_dir)
                .map_err(|e| anyhow::anyhow!("trust.{name}: {e}"))?,
        )),
        TrustSourceConfig::CosignKeyless(k) => Ok(Arc::new(
            super::cosign::CosignKeylessVerifier::new(k, cache_dir)
                .map_err(|e| anyhow::anyhow!("trust.{name}: {e}"))?,
        )),
        TrustSourceConfig::Notation(n) => Ok(Arc::new(
            super::notation::NotationVerifier::new(n)
                .map_err(|e| anyhow::anyhow!("trust.{name}: {e}"))?,
        )),
        TrustSourceConfig::Notary(_) | TrustSourceConfig::Tuf(_) => {
            anyhow::bail!(
                "trust.{name}: a {} source binds tags; it is not a digest verifier",
                cfg.type_name()
            )
        }
    }
}
