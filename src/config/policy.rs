//! `[trust.<name>]` (named trust sources) and `[[policy]]` (which of them must vouch for which
//! repositories), their checks, and the one rule that picks the policy entry of a repository
//! ([`Config::rule_for`]). The proxy side is `trust::set` and `api::gate`.
//!
//! Precedence for a repository of a registry, in this order:
//! 1. the most specific `[[policy]]` entry whose `repositories` glob matches
//!    `<registry>/<repository>` (segment-wise: see [`specificity`]);
//! 2. else the first `[[registries.repositories]]` override that matches, then the registry
//!    itself: its `notary` / `tuf` source is an implicit one-entry `any_of` (today's rule).
//!
//! `any_of` / `all_of` may also name `registry`: the registry's (or matching override's) own
//! `notary` / `tuf` source, so a migration can keep it without repeating its settings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Config, ConfigError, Mode, NotaryConfig, TufConfig, invalid};
use crate::trust::cosign::{CosignKeyConfig, CosignKeylessConfig};
use crate::trust::notation::NotationConfig;

/// The reserved source name for a registry's own `notary` / `tuf` source.
pub const REGISTRY_SOURCE: &str = "registry";

/// `[trust.<name>]`: one named trust source. `type` says which.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum TrustSourceConfig {
    /// Notary v1 (tag-binding): the keys of `[registries.notary]`.
    Notary(NotaryConfig),
    /// A plain TUF repository (tag-binding): the keys of `[registries.tuf]`.
    Tuf(TufConfig),
    /// cosign signatures verified with public keys (digest-vouching).
    CosignKey(CosignKeyConfig),
    /// cosign signatures by a Fulcio certificate identity (digest-vouching).
    CosignKeyless(CosignKeylessConfig),
    /// Notation signatures under Notation's own trust policy and store (digest-vouching).
    Notation(NotationConfig),
}

impl TrustSourceConfig {
    /// Whether the source binds tags to digests (Notary, TUF) rather than vouching for
    /// digests (cosign, Notation).
    pub fn binds_tags(&self) -> bool {
        matches!(
            self,
            TrustSourceConfig::Notary(_) | TrustSourceConfig::Tuf(_)
        )
    }

    /// The `type` value, for messages and metrics.
    pub fn type_name(&self) -> &'static str {
        match self {
            TrustSourceConfig::Notary(_) => "notary",
            TrustSourceConfig::Tuf(_) => "tuf",
            TrustSourceConfig::CosignKey(_) => "cosign-key",
            TrustSourceConfig::CosignKeyless(_) => "cosign-keyless",
            TrustSourceConfig::Notation(_) => "notation",
        }
    }
}

/// `[[policy]]`: which named sources must vouch for matching repositories.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    /// Globs over `<registry>/<repository>`: `*` within a segment, `**` across segments.
    pub repositories: Vec<String>,
    /// Overrides the registry's (or override's) mode for matching repositories.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Trusted if any of these vouches.
    #[serde(default)]
    pub any_of: Vec<String>,
    /// Trusted only if all of these vouch (with `any_of` too: both must hold).
    #[serde(default)]
    pub all_of: Vec<String>,
    /// A loosening, off unless set: while the registry is unreachable, a tag that only the
    /// registry binds (no Notary / TUF member resolves it) names the digest the registry last
    /// named for it, if that digest vouched then and it was at most this long ago (e.g.
    /// "7d"). Signatures must still vouch for it (offline: stored evidence re-verified).
    #[serde(default)]
    pub offline_tag_memory: Option<String>,
}

impl PolicyRule {
    /// `offline_tag_memory` as a duration (validated at load).
    pub fn offline_tag_memory(&self) -> Option<std::time::Duration> {
        self.offline_tag_memory
            .as_deref()
            .and_then(|s| humantime::parse_duration(s).ok())
    }
}

/// `[signatures]`: discovery and verdict caching for the digest-vouching sources.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SignaturesConfig {
    /// How long a verdict (vouched or not) is used before the registry is asked again: a
    /// deleted signature stops vouching at most this long after.
    pub recheck_interval: String,
    /// Signature manifests fetched per digest (Notation's `--max-signatures` default).
    pub max_candidates: usize,
    /// Largest signature manifest or referrers index page (bytes).
    pub max_manifest_bytes: usize,
    /// Largest signature blob (bytes).
    pub max_blob_bytes: usize,
}

impl Default for SignaturesConfig {
    fn default() -> Self {
        SignaturesConfig {
            recheck_interval: "5m".into(),
            max_candidates: 100,
            max_manifest_bytes: 4 * 1024 * 1024,
            max_blob_bytes: 1024 * 1024,
        }
    }
}

impl SignaturesConfig {
    /// `recheck_interval` parsed (validation refuses one that does not parse).
    pub fn recheck(&self) -> std::time::Duration {
        humantime::parse_duration(&self.recheck_interval)
            .unwrap_or(std::time::Duration::from_secs(300))
    }
}

/// Per segment (2 literal, 1 with `*`, 0 `**`), segment count, literal characters.
pub type Specificity = (Vec<u8>, usize, usize);

/// How specific a glob is, compared segment by segment: a literal segment beats one with `*`,
/// which beats `**`; then more segments; then more literal characters. The most specific
/// matching `[[policy]]` entry wins; among equals, the first in the file.
pub fn specificity(pattern: &str) -> Specificity {
    let segs: Vec<u8> = pattern
        .split('/')
        .map(|s| match s {
            "**" => 0,
            s if s.contains('*') => 1,
            _ => 2,
        })
        .collect();
    let n = segs.len();
    let literal = pattern.chars().filter(|c| *c != '*').count();
    (segs, n, literal)
}

impl Config {
    /// The `[[policy]]` entry for `repo` of `registry`: the most specific matching pattern.
    pub fn rule_for(&self, registry: &str, repo: &str) -> Option<&PolicyRule> {
        rule_for(&self.policy, registry, repo)
    }
}

/// See [`Config::rule_for`].
pub fn rule_for<'a>(rules: &'a [PolicyRule], registry: &str, repo: &str) -> Option<&'a PolicyRule> {
    let name = format!("{registry}/{repo}");
    let mut best: Option<(&PolicyRule, Specificity)> = None;
    for r in rules {
        for p in &r.repositories {
            if !crate::policy::glob_match(p, &name) {
                continue;
            }
            let s = specificity(p);
            if best.as_ref().is_none_or(|(_, b)| s > *b) {
                best = Some((r, s));
            }
        }
    }
    best.map(|(r, _)| r)
}

/// Whether any pattern of `rule` can match a repository of `registry` (its first segment
/// matches the registry name): which registries build the rule's tag-binding sources.
pub fn rule_covers_registry(rule: &PolicyRule, registry: &str) -> bool {
    rule.repositories.iter().any(|p| {
        let first = p.split('/').next().unwrap_or("");
        first == "**" || crate::policy::glob_match(first, registry)
    })
}

/// Checks `[trust.*]`, `[signatures]` and `[[policy]]`; each error names its key.
pub(super) fn check(cfg: &Config) -> Result<(), ConfigError> {
    for (name, s) in &cfg.trust {
        let key = format!("trust.{name}");
        if name == REGISTRY_SOURCE {
            return Err(invalid(
                key,
                "`registry` is reserved: in any_of / all_of it names the registry's own notary \
                 or tuf source; choose another name",
            ));
        }
        match s {
            TrustSourceConfig::Notary(n) => super::check_notary(n, &key)?,
            TrustSourceConfig::Tuf(t) => super::tuf::check_tuf(t, &key)?,
            TrustSourceConfig::CosignKey(k) => k.validate(&key)?,
            TrustSourceConfig::CosignKeyless(k) => k.validate(&key)?,
            TrustSourceConfig::Notation(n) => n.validate(&key)?,
        }
    }
    let sig = &cfg.signatures;
    match humantime::parse_duration(&sig.recheck_interval) {
        Ok(d) if !d.is_zero() => {}
        _ => {
            return Err(invalid(
                "signatures.recheck_interval",
                format!(
                    "{:?} is not a duration above 0 like \"5m\"",
                    sig.recheck_interval
                ),
            ));
        }
    }
    for (k, v) in [
        ("max_candidates", sig.max_candidates),
        ("max_manifest_bytes", sig.max_manifest_bytes),
        ("max_blob_bytes", sig.max_blob_bytes),
    ] {
        if v == 0 {
            return Err(invalid(format!("signatures.{k}"), "must be above 0"));
        }
    }
    for (i, r) in cfg.policy.iter().enumerate() {
        check_rule(cfg, i, r)?;
    }
    Ok(())
}

fn check_rule(cfg: &Config, i: usize, r: &PolicyRule) -> Result<(), ConfigError> {
    let key = |k: &str| format!("policy[{i}].{k}");
    if r.repositories.is_empty() {
        return Err(invalid(
            key("repositories"),
            "at least one pattern is needed",
        ));
    }
    for p in &r.repositories {
        // `<registry>/<repository...>`: a pattern without a repository part names nothing.
        if !p.contains('/') || p.split('/').any(str::is_empty) {
            return Err(invalid(
                key("repositories"),
                format!(
                    "{p:?} is not <registry>/<repository glob>, e.g. \"registry.example.com/team/*\""
                ),
            ));
        }
    }
    if r.any_of.is_empty() && r.all_of.is_empty() && r.mode != Some(Mode::Skip) {
        return Err(invalid(
            key("any_of"),
            "any_of or all_of must name at least one source (or set mode = \"skip\")",
        ));
    }
    if let Some(m) = &r.offline_tag_memory {
        match humantime::parse_duration(m) {
            Ok(d) if !d.is_zero() => {}
            _ => {
                return Err(invalid(
                    key("offline_tag_memory"),
                    format!("{m:?} is not a duration above 0 like \"7d\""),
                ));
            }
        }
        // Only the registry binds tags for signature sources; Notary and TUF bind their own
        // and work offline from their metadata already.
        let signs_digests = r
            .any_of
            .iter()
            .chain(&r.all_of)
            .any(|n| cfg.trust.get(n).is_some_and(|s| !s.binds_tags()));
        if !signs_digests {
            return Err(invalid(
                key("offline_tag_memory"),
                "applies to tags bound by the registry, which needs a cosign or notation \
                 source in any_of / all_of",
            ));
        }
    }
    for (list, names) in [("any_of", &r.any_of), ("all_of", &r.all_of)] {
        for n in names {
            if n != REGISTRY_SOURCE && !cfg.trust.contains_key(n) {
                let known: Vec<&str> = cfg.trust.keys().map(String::as_str).collect();
                return Err(invalid(
                    key(list),
                    format!(
                        "unknown trust source {n:?}; defined: [{}] (a [trust.<name>] section), \
                         or \"registry\" for the registry's own notary / tuf source",
                        known.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The named sources a config defines (for `Config`'s field).
pub type TrustSources = BTreeMap<String, TrustSourceConfig>;

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(p: &[&str]) -> PolicyRule {
        PolicyRule {
            repositories: p.iter().map(|s| s.to_string()).collect(),
            mode: None,
            any_of: vec!["a".into()],
            all_of: vec![],
            offline_tag_memory: None,
        }
    }

    #[test]
    fn the_most_specific_pattern_wins() {
        let rules = vec![
            rule(&["r.example/**"]),
            rule(&["r.example/team/*"]),
            rule(&["r.example/team/app"]),
            rule(&["*/team/*"]),
        ];
        let pick = |repo| rule_for(&rules, "r.example", repo).map(|r| r.repositories[0].clone());
        assert_eq!(pick("team/app").as_deref(), Some("r.example/team/app"));
        assert_eq!(pick("team/web").as_deref(), Some("r.example/team/*"));
        assert_eq!(pick("other/x/y").as_deref(), Some("r.example/**"));
        assert_eq!(
            rule_for(&rules, "q.example", "team/x").map(|r| r.repositories[0].as_str()),
            Some("*/team/*")
        );
        assert!(rule_for(&rules, "q.example", "solo").is_none());
        assert!(rule_covers_registry(&rules[3], "anything:5000"));
        assert!(!rule_covers_registry(&rules[0], "q.example"));
    }
}
