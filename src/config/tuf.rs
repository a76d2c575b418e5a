//! `[registries.tuf]`: a plain TUF 1.0 repository (python-tuf, tuf-on-ci, RSTUF, tuftool,
//! go-tuf) as the trust source, and its checks. The proxy side is `trust::tuf`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

/// `[registries.tuf]`: tags are targets of a TUF repository.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TufConfig {
    /// Where `N.root.json`, `timestamp.json`, ... are: `https://…/metadata/` or
    /// `file:///srv/tuf-mirror/`. May contain `{repository}`: one TUF repository per image
    /// repository.
    pub metadata_url: String,
    /// Only repositories whose name starts with this are covered ("" = all).
    #[serde(default)]
    pub prefix: String,
    /// The pinned initial root: the only way in (no trust on first use).
    pub root_file: PathBuf,
    /// Optional sha256 (hex) the root file must have; guards against a swapped file.
    #[serde(default)]
    pub root_sha256: Option<String>,
    /// How a tag is named in the TUF repository: `{repository}:{tag}` (the default) or
    /// `{tag}` (one TUF repository per image repository).
    #[serde(default = "default_target_name")]
    pub target_name: String,
    /// When not empty, the role chain that signs a tag must include one of these roles.
    #[serde(default)]
    pub required_roles: Vec<String>,
    /// How long verified metadata is used before the repository is asked again (`"5m"`).
    #[serde(default = "default_refresh")]
    pub refresh_interval: String,
    /// CA bundle (PEM) for the metadata server's TLS certificate, besides the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Largest metadata file accepted per role (TUF endless-data attack).
    #[serde(default)]
    pub max_bytes: TufLimits,
    /// Bounds on one metadata fetch (TUF slow-retrieval attack), as for Notary.
    #[serde(default)]
    pub fetch: super::NotaryFetch,
}

/// `[registries.tuf.max_bytes]`: python-tuf's defaults.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TufLimits {
    pub root: u64,
    pub timestamp: u64,
    pub snapshot: u64,
    /// Each targets role, top-level or delegated.
    pub targets: u64,
}

impl Default for TufLimits {
    fn default() -> Self {
        TufLimits {
            root: 512_000,
            timestamp: 16_384,
            snapshot: 2_000_000,
            targets: 5_000_000,
        }
    }
}

fn default_target_name() -> String {
    "{repository}:{tag}".into()
}

fn default_refresh() -> String {
    "5m".into()
}

impl TufConfig {
    /// `refresh_interval` parsed (validation rejects a value that does not parse).
    pub fn refresh_interval(&self) -> std::time::Duration {
        humantime::parse_duration(&self.refresh_interval)
            .unwrap_or(std::time::Duration::from_secs(300))
    }

    /// The metadata URL for `repo` (`{repository}` replaced).
    pub fn metadata_url_for(&self, repo: &str) -> String {
        self.metadata_url.replace("{repository}", repo)
    }
}

pub(crate) fn check_tuf(t: &TufConfig, key: &str) -> Result<(), ConfigError> {
    let url_key = format!("{key}.metadata_url");
    let probe = t.metadata_url_for("probe");
    let url = url::Url::parse(&probe)
        .map_err(|e| invalid(&url_key, format!("{:?} is not a URL: {e}", t.metadata_url)))?;
    match url.scheme() {
        "http" | "https" if url.host_str().is_some() => {}
        "file" => {}
        s => {
            return Err(invalid(
                &url_key,
                format!("scheme {s:?}: use https://, http:// (with a host) or file://"),
            ));
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(&url_key, "must not carry a query or fragment"));
    }
    if t.root_file.as_os_str().is_empty() {
        return Err(invalid(format!("{key}.root_file"), "is empty"));
    }
    if let Some(h) = &t.root_sha256
        && (h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(invalid(
            format!("{key}.root_sha256"),
            "must be 64 hex digits (sha256sum of root_file)",
        ));
    }
    let name = &t.target_name;
    if !name.contains("{tag}") {
        return Err(invalid(format!("{key}.target_name"), "must contain {tag}"));
    }
    if name != "{repository}:{tag}" && name != "{tag}" {
        return Err(invalid(
            format!("{key}.target_name"),
            "must be \"{repository}:{tag}\" or \"{tag}\"",
        ));
    }
    if name == "{tag}" && !t.metadata_url.contains("{repository}") && t.prefix.is_empty() {
        // Every repository would share one namespace of tags: `v1` of one image would vouch
        // for `v1` of every other.
        return Err(invalid(
            format!("{key}.target_name"),
            "\"{tag}\" names tags without their repository: use it only with a metadata_url \
             containing {repository} (one TUF repository per image repository)",
        ));
    }
    match humantime::parse_duration(&t.refresh_interval) {
        Ok(d) if !d.is_zero() => {}
        Ok(_) => {
            return Err(invalid(
                format!("{key}.refresh_interval"),
                "must be above 0",
            ));
        }
        Err(e) => {
            return Err(invalid(
                format!("{key}.refresh_interval"),
                format!(
                    "{:?} is not a duration like \"5m\": {e}",
                    t.refresh_interval
                ),
            ));
        }
    }
    for (what, v) in [
        ("root", t.max_bytes.root),
        ("timestamp", t.max_bytes.timestamp),
        ("snapshot", t.max_bytes.snapshot),
        ("targets", t.max_bytes.targets),
    ] {
        if v == 0 {
            return Err(invalid(
                format!("{key}.max_bytes.{what}"),
                "must be above 0",
            ));
        }
    }
    super::check_fetch(&t.fetch, key)
}
