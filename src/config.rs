//! Configuration: built-in defaults < TOML file < `PORTCULLIS_*` environment variables
//! (figment, `__` separating nested keys), then [`Config::validate`], whose errors name the
//! offending key. This module owns the shape of the config and its checks; it does not open
//! files other than the config itself (certificates, password files are read where used).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    #[serde(default)]
    pub upstream: UpstreamLimits,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub registries: Vec<RegistryConfig>,
}

/// `[server]`: the listeners clients and operators talk to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Registry API listener. Loopback by default: see `client_auth`.
    pub listen: SocketAddr,
    /// `/healthz`, `/readyz`, `/metrics`.
    pub admin_listen: SocketAddr,
    /// TLS for the registry API listener (both or neither).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Who may use the proxy (and so its upstream credentials).
    pub client_auth: ClientAuth,
    /// Largest manifest read into memory (bytes).
    pub max_manifest_bytes: usize,
    /// Largest request header block accepted from clients (bytes).
    pub max_header_bytes: usize,
    /// How long in-flight requests may run after SIGTERM (seconds).
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: ([127, 0, 0, 1], 5050).into(),
            admin_listen: ([127, 0, 0, 1], 9090).into(),
            tls_cert: None,
            tls_key: None,
            client_auth: ClientAuth::default(),
            max_manifest_bytes: 4 * 1024 * 1024,
            max_header_bytes: 64 * 1024,
            shutdown_grace_secs: 30,
        }
    }
}

/// How clients prove they may use the proxy. Anything but `none` is required for a
/// non-loopback listener, because the proxy lends its upstream credentials to every client.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClientAuth {
    /// Anyone who can connect. Only allowed on loopback listeners.
    #[default]
    None,
    /// Client certificates verified against `ca_file` (requires server TLS).
    Mtls { ca_file: PathBuf },
    /// HTTP basic auth checked against an htpasswd file (bcrypt entries only).
    Basic { htpasswd: PathBuf },
    /// The proxy holds no upstream credentials; each client's own `Authorization` header is
    /// forwarded and the upstream's 401 challenge is passed back.
    Passthrough,
}

/// `[cache]`: where state lives.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Trust metadata (`notary/`) and the verified blob cache (`blobs/`).
    pub dir: PathBuf,
    /// Bytes of verified blobs kept under `<dir>/blobs/`, least recently used evicted first;
    /// 0 turns blob caching off. Not used in passthrough client-auth mode.
    pub max_size: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            dir: PathBuf::from("/var/lib/portcullis"),
            max_size: 10 * 1024 * 1024 * 1024,
        }
    }
}

/// `[upstream]`: limits toward registries, shared by all of them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamLimits {
    pub connect_timeout_secs: u64,
    /// Time until the upstream's response headers arrive.
    pub first_byte_timeout_secs: u64,
    /// Longest silence inside a response body before the transfer is abandoned.
    pub idle_timeout_secs: u64,
    /// Cap on concurrent upstream requests (all registries together).
    pub max_concurrent: usize,
}

impl Default for UpstreamLimits {
    fn default() -> Self {
        UpstreamLimits {
            connect_timeout_secs: 10,
            first_byte_timeout_secs: 30,
            idle_timeout_secs: 60,
            max_concurrent: 256,
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing `EnvFilter` directive; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// What the proxy does with content that trust verification refuses.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Serve only trusted content (the default).
    #[default]
    Enforce,
    /// Serve everything, but log and count what `enforce` would refuse.
    Audit,
    /// No verification at all for this registry. Explicit, and logged at start.
    Skip,
}

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
    /// The trust source. With no trust source and `mode = "enforce"` every pull is refused.
    #[serde(default)]
    pub notary: Option<NotaryConfig>,
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

/// A trust source's configuration, naming its kind (`[registries.notary]` today).
#[derive(Debug, Clone, Copy)]
pub enum SourceConfig<'a> {
    Notary(&'a NotaryConfig),
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
        self.notary.as_ref().map(SourceConfig::Notary)
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
        }
    }
}

impl RepositoryOverride {
    /// The override's own trust source, if it names one.
    pub fn source(&self) -> Option<SourceConfig<'_>> {
        self.notary.as_ref().map(SourceConfig::Notary)
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

/// A config error that names the key it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

impl Config {
    /// Loads defaults < `path` (if given) < `PORTCULLIS_*` environment, then validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(p) = path {
            if !p.exists() {
                return Err(invalid(
                    "--config",
                    format!("{} does not exist", p.display()),
                ));
            }
            fig = fig.merge(Toml::file(p));
        }
        fig = fig.merge(Env::prefixed("PORTCULLIS_").split("__"));
        let cfg: Config = fig.extract().map_err(Box::new)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks that cannot be expressed in the types; each error names its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if s.tls_cert.is_some() != s.tls_key.is_some() {
            return Err(invalid(
                "server.tls_cert",
                "tls_cert and tls_key must be set together",
            ));
        }
        if s.max_manifest_bytes == 0 {
            return Err(invalid("server.max_manifest_bytes", "must be above 0"));
        }
        if matches!(s.client_auth, ClientAuth::Mtls { .. }) && s.tls_cert.is_none() {
            return Err(invalid(
                "server.client_auth",
                "mode = \"mtls\" needs server.tls_cert and server.tls_key",
            ));
        }
        // The proxy lends its upstream credentials to whoever reaches it: off loopback, the
        // operator must say who may (mTLS, basic) or that no credentials are lent (passthrough).
        if !s.listen.ip().is_loopback() && s.client_auth == ClientAuth::None {
            return Err(invalid(
                "server.client_auth",
                format!(
                    "server.listen = {} is not a loopback address; set server.client_auth.mode to \
                     \"mtls\", \"basic\" or \"passthrough\" so the proxy's upstream credentials \
                     are not lent to anyone who can connect",
                    s.listen
                ),
            ));
        }
        if self.upstream.max_concurrent == 0 {
            return Err(invalid("upstream.max_concurrent", "must be above 0"));
        }
        if self.registries.is_empty() {
            return Err(invalid(
                "registries",
                "at least one [[registries]] entry is needed",
            ));
        }
        let defaults = self.registries.iter().filter(|r| r.default).count();
        if defaults > 1 {
            return Err(invalid(
                "registries.default",
                "only one registry may be the default",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, r) in self.registries.iter().enumerate() {
            let key = |k: &str| format!("registries[{i}].{k}");
            if r.name.is_empty() || r.name.contains('/') || r.name.contains(char::is_whitespace) {
                return Err(invalid(
                    key("name"),
                    "must be a host or host:port, like the ?ns= value",
                ));
            }
            if !seen.insert(r.name.as_str()) {
                return Err(invalid(
                    key("name"),
                    format!("{} is configured twice", r.name),
                ));
            }
            check_url(&r.upstream).map_err(|m| invalid(key("upstream"), m))?;
            if r.auth.is_some() && s.client_auth == ClientAuth::Passthrough {
                return Err(invalid(
                    key("auth"),
                    "server.client_auth.mode = \"passthrough\" forwards each client's own \
                     credentials; the proxy must not hold any",
                ));
            }
            if let Some(n) = &r.notary {
                check_notary(n, &key("notary"))?;
            }
            for (j, o) in r.repositories.iter().enumerate() {
                if o.pattern.is_empty() {
                    return Err(invalid(
                        key(&format!("repositories[{j}].pattern")),
                        "is empty",
                    ));
                }
                if let Some(n) = &o.notary {
                    check_notary(n, &key(&format!("repositories[{j}].notary")))?;
                }
            }
        }
        Ok(())
    }

    /// The registry for a containerd `?ns=` value, or the default one.
    pub fn registry(&self, ns: Option<&str>) -> Option<&RegistryConfig> {
        match ns {
            Some(ns) => self.registries.iter().find(|r| r.name == ns),
            None => self
                .registries
                .iter()
                .find(|r| r.default)
                .or(if self.registries.len() == 1 {
                    self.registries.first()
                } else {
                    None
                }),
        }
    }
}

fn check_url(u: &str) -> Result<(), String> {
    let url = url::Url::parse(u).map_err(|e| format!("{u:?} is not a URL: {e}"))?;
    match url.scheme() {
        "http" | "https" => {}
        s => return Err(format!("scheme {s:?} is not http or https")),
    }
    if url.host_str().is_none() {
        return Err(format!("{u:?} has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{u:?} must not carry a query or fragment"));
    }
    Ok(())
}

fn check_notary(n: &NotaryConfig, key: &str) -> Result<(), ConfigError> {
    check_url(&n.server).map_err(|m| invalid(format!("{key}.server"), m))?;
    if !n.gun_template.contains("{repository}") {
        return Err(invalid(
            format!("{key}.gun_template"),
            "must contain {repository}",
        ));
    }
    if n.refresh_interval_secs == 0 {
        return Err(invalid(
            format!("{key}.refresh_interval_secs"),
            "must be above 0",
        ));
    }
    if n.fetch.deadline_secs == 0 {
        return Err(invalid(
            format!("{key}.fetch.deadline_secs"),
            "must be above 0",
        ));
    }
    if n.fetch.min_rate_after_secs >= n.fetch.deadline_secs {
        return Err(invalid(
            format!("{key}.fetch.min_rate_after_secs"),
            "must be below fetch.deadline_secs (else the rate is never checked)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<Config, ConfigError> {
        let cfg: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(toml))
            .extract()
            .map_err(Box::new)?;
        cfg.validate()?;
        Ok(cfg)
    }

    const ONE: &str = r#"
        [[registries]]
        name = "127.0.0.1:5000"
        upstream = "http://127.0.0.1:5000"
        default = true
    "#;

    #[test]
    fn minimal_config_has_safe_defaults() {
        let c = parse(ONE).unwrap();
        assert!(c.server.listen.ip().is_loopback());
        assert_eq!(c.registries[0].mode, Mode::Enforce);
        assert_eq!(c.server.max_manifest_bytes, 4 << 20);
        assert!(c.registry(None).is_some());
        assert!(c.registry(Some("other:1")).is_none());
    }

    #[test]
    fn non_loopback_without_client_auth_is_refused() {
        let e = parse(&format!("[server]\nlisten = \"0.0.0.0:5050\"\n{ONE}")).unwrap_err();
        assert!(e.to_string().contains("server.client_auth"), "{e}");
        let ok = parse(&format!(
            "[server]\nlisten = \"0.0.0.0:5050\"\nclient_auth = {{ mode = \"passthrough\" }}\n{ONE}"
        ));
        assert!(ok.is_ok());
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse("[[registries]]\nname = \"a\"\nupstream = \"ftp://x\"\n").unwrap_err();
        assert!(e.to_string().contains("registries[0].upstream"), "{e}");
        let e = parse(&format!("{ONE}\nmode = \"loose\"")).unwrap_err();
        assert!(e.to_string().contains("loose"), "{e}");
        let e = parse("[server]\nlisten_typo = 1\n").unwrap_err();
        assert!(e.to_string().contains("listen_typo"), "{e}");
    }

    #[test]
    fn passthrough_forbids_proxy_credentials() {
        let e = parse(&format!(
            "[server]\nclient_auth = {{ mode = \"passthrough\" }}\n{ONE}\n[registries.auth]\nusername = \"u\"\npassword_file = \"/p\"\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("registries[0].auth"), "{e}");
    }

    #[test]
    fn example_config_is_valid() {
        let text = include_str!("../config/portcullis.toml");
        parse(text).unwrap();
    }
}
