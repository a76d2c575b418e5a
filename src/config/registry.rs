//! `[[registries]]`: one upstream registry, its trust source and per-repository overrides, and
//! the one rule that resolves which mode, trust source and tag-drift handling apply to a
//! repository ([`RegistryConfig::policy_for`], used by the proxy and `portcullis check`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Mode, TufConfig};

/// `[[registries]]`: one upstream registry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// The host clients name (containerd's `?ns=`), e.g. `registry.example.com:5000`.
    pub name: String,
    /// Base URL of the registry; `http://` only where plain HTTP is meant.
    pub upstream: String,
    /// Receives requests without `?ns=`.
    #[serde(default)]
    pub default: bool,
    #[serde(default)]
    pub mode: Mode,
    /// Extra CA bundle (PEM) trusted for this upstream, besides the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub auth: Option<UpstreamAuth>,
    /// The trust source: `notary` or `tuf`, never both. With no trust source and
    /// `mode = "enforce"` every pull is refused.
    #[serde(default)]
    pub notary: Option<NotaryConfig>,
    #[serde(default)]
    pub tuf: Option<TufConfig>,
    /// Per-repository overrides (first matching glob wins).
    #[serde(default)]
    pub repositories: Vec<RepositoryOverride>,
    /// What `GET /v2/<name>/tags/list` answers in `enforce` mode.
    #[serde(default)]
    pub tags_list: TagsList,
    /// What a pull by tag does when the registry maps a signed tag to other content.
    #[serde(default)]
    pub on_tag_drift: TagDrift,
}

/// `on_tag_drift`: a signed tag that the registry now maps to other content.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TagDrift {
    /// Docker's semantics: the signed digest is served, whatever the registry's tag points to;
    /// the tag is checked in the background, and drift is logged and counted.
    #[default]
    ServeSigned,
    /// Refuse the pull (`tag_moved`), naming both digests; one more upstream request per pull.
    Refuse,
}

/// `tags_list`: which tags an enforcing registry lists.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum TagsList {
    /// Only the registry's tags that the trust source signs: what a client can pull.
    #[default]
    Trusted,
    /// The registry's list as it is (names only; pulls are still checked).
    Upstream,
}

/// A trust source's configuration, naming its kind (`[registries.notary]` or
/// `[registries.tuf]`).
#[derive(Debug, Clone, Copy)]
pub enum SourceConfig<'a> {
    Notary(&'a NotaryConfig),
    Tuf(&'a TufConfig),
}

/// The one trust source of a registry or override (validation refuses both).
fn source_of<'a>(
    notary: &'a Option<NotaryConfig>,
    tuf: &'a Option<TufConfig>,
) -> Option<SourceConfig<'a>> {
    match (notary, tuf) {
        (Some(n), _) => Some(SourceConfig::Notary(n)),
        (None, Some(t)) => Some(SourceConfig::Tuf(t)),
        (None, None) => None,
    }
}

/// Which configured trust source applies: the registry's own or an override's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceSlot {
    Registry,
    /// `repositories[i]` of the registry.
    Override(usize),
}

/// Mode, trust source and tag drift handling for one repository, after overrides.
#[derive(Debug, Clone, Copy)]
pub struct RepoPolicy<'a> {
    pub mode: Mode,
    pub on_tag_drift: TagDrift,
    /// The source and where it is configured; `None`: no trust source.
    pub source: Option<(SourceSlot, SourceConfig<'a>)>,
}

impl RegistryConfig {
    /// The registry's own trust source, if configured.
    pub fn source(&self) -> Option<SourceConfig<'_>> {
        source_of(&self.notary, &self.tuf)
    }

    /// Mode and trust source for `repo`: the first override whose glob matches (its source,
    /// or the registry's when it names none), else the registry's. The proxy and
    /// `portcullis check` both resolve through here.
    pub fn policy_for(&self, repo: &str) -> RepoPolicy<'_> {
        let own = self.source().map(|s| (SourceSlot::Registry, s));
        for (i, o) in self.repositories.iter().enumerate() {
            if crate::policy::glob_match(&o.pattern, repo) {
                return RepoPolicy {
                    mode: o.mode.unwrap_or(self.mode),
                    on_tag_drift: o.on_tag_drift.unwrap_or(self.on_tag_drift),
                    source: o.source().map(|s| (SourceSlot::Override(i), s)).or(own),
                };
            }
        }
        RepoPolicy {
            mode: self.mode,
            on_tag_drift: self.on_tag_drift,
            source: own,
        }
    }
}

impl SourceConfig<'_> {
    /// How long verified metadata is used before it is asked for again; also how often a
    /// signed tag is compared with the registry's (drift).
    pub fn refresh_interval(&self) -> std::time::Duration {
        match self {
            SourceConfig::Notary(n) => std::time::Duration::from_secs(n.refresh_interval_secs),
            SourceConfig::Tuf(t) => t.refresh_interval(),
        }
    }
}

impl RepositoryOverride {
    /// The override's own trust source, if it names one.
    pub fn source(&self) -> Option<SourceConfig<'_>> {
        source_of(&self.notary, &self.tuf)
    }
}

/// Credentials the proxy uses toward a registry: basic auth, also used for Bearer token
/// requests when the registry answers with a token challenge.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamAuth {
    pub username: String,
    /// The password is read from this file; never put a secret in the config itself.
    pub password_file: PathBuf,
}

/// `[[registries.repositories]]`: mode or trust source for repositories matching `pattern`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RepositoryOverride {
    /// Glob over the repository name (`*` within a path segment, `**` across segments).
    pub pattern: String,
    #[serde(default)]
    pub mode: Option<Mode>,
    #[serde(default)]
    pub notary: Option<NotaryConfig>,
    #[serde(default)]
    pub tuf: Option<TufConfig>,
    /// Overrides the registry's `on_tag_drift` for matching repositories.
    #[serde(default)]
    pub on_tag_drift: Option<TagDrift>,
}

/// `[registries.notary]`: a Notary v1 server as the trust source.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NotaryConfig {
    /// Base URL, e.g. `https://notary.example.com:4443`.
    pub server: String,
    /// CA bundle (PEM) for the notary server's TLS certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// How the GUN is formed; `{registry}` and `{repository}` are replaced.
    #[serde(default = "default_gun_template")]
    pub gun_template: String,
    /// Root-of-trust settings, as the notary client's `trust_pinning`.
    #[serde(default)]
    pub trust_pinning: TrustPinning,
    /// Delegations whose signature is required (Connaisseur style). Empty = Docker's
    /// resolution: `targets/releases`, then `targets`.
    #[serde(default)]
    pub required_signers: Vec<String>,
    /// Seconds between metadata refreshes for a GUN.
    #[serde(default = "default_refresh_secs")]
    pub refresh_interval_secs: u64,
    /// Bounds on one metadata fetch (TUF slow-retrieval attack).
    #[serde(default)]
    pub fetch: NotaryFetch,
    /// Loosens verification, explicitly: while the notary server is unreachable, a cached
    /// timestamp that expired less than this long ago (`"30d"`, `"12h"`) is still used.
    /// Notary timestamps expire after 14 days, so an air-gapped node without fresh metadata
    /// stops pulling then; this buys a bounded time. Unset (the default): no grace. Every
    /// decision made under it is logged and counted (`portcullis_trust_offline_grace`).
    #[serde(default)]
    pub offline_grace: Option<String>,
}

/// The longest `offline_grace` accepted: a year past expiry is no longer a freshness check.
pub const MAX_OFFLINE_GRACE: std::time::Duration = std::time::Duration::from_secs(366 * 86_400);

impl NotaryConfig {
    /// `offline_grace` parsed (start-up checks reject a value that does not parse).
    pub fn offline_grace(&self) -> Option<std::time::Duration> {
        self.offline_grace
            .as_deref()
            .and_then(|g| humantime::parse_duration(g).ok())
    }
}

/// `[registries.notary.fetch]`: how long one metadata file may take. A server slower than
/// this is treated as unreachable (cached metadata is used while it is valid).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NotaryFetch {
    /// Whole-fetch deadline (headers and body), seconds.
    pub deadline_secs: u64,
    /// After `min_rate_after_secs`, the average rate must stay at or above this.
    pub min_bytes_per_sec: u64,
    pub min_rate_after_secs: u64,
}

impl Default for NotaryFetch {
    fn default() -> Self {
        NotaryFetch {
            deadline_secs: 30,
            min_bytes_per_sec: 1024,
            min_rate_after_secs: 5,
        }
    }
}

fn default_gun_template() -> String {
    "{registry}/{repository}".into()
}
fn default_refresh_secs() -> u64 {
    30
}

/// The notary client's `trust_pinning` options.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TrustPinning {
    /// GUN glob -> accepted root key IDs.
    pub certs: BTreeMap<String, Vec<String>>,
    /// GUN prefix -> CA bundle (PEM) that must have issued the root certificate.
    pub ca: BTreeMap<String, PathBuf>,
    /// Trust on first use for GUNs that no pin covers. Explicit: off by default.
    pub tofu: bool,
}
