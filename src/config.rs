//! Configuration: built-in defaults < TOML file < `PORTCULLIS_*` environment variables
//! (figment, `__` separating nested keys), then [`Config::validate`], whose errors name the
//! offending key. This module owns the shape of the config and its checks; `preflight` checks at
//! start that the files it names can be opened and `cache.dir` written, but certificates and
//! password files are parsed where they are used. `diagnose` words figment's errors.

mod diagnose;
mod policy;
mod preflight;
mod registry;
mod tuf;
pub use policy::{
    PolicyRule, REGISTRY_SOURCE, SignaturesConfig, TrustSourceConfig, TrustSources,
    rule_covers_registry, rule_for,
};
pub(crate) use preflight::shown;
pub use registry::*;
pub(crate) use tuf::check_tuf;
pub use tuf::{TufConfig, TufLimits};

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
    /// `[trust.<name>]`: named trust sources for `[[policy]]`.
    #[serde(default)]
    pub trust: TrustSources,
    /// `[[policy]]`: which named sources vouch for which repositories.
    #[serde(default)]
    pub policy: Vec<PolicyRule>,
    /// `[signatures]`: discovery bounds and verdict caching for cosign / Notation sources.
    #[serde(default)]
    pub signatures: SignaturesConfig,
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
    /// Client connections open at once; past it a connection gets 503 `TOOMANYREQUESTS` and
    /// is closed (each open connection costs buffers and a task: the bound keeps a flood of
    /// clients from taking the node's memory).
    pub max_connections: usize,
    /// How long a client has to send a request's headers (slowloris), seconds.
    pub header_read_timeout_secs: u64,
    /// How long a client may accept no response bytes before its connection is closed
    /// (a client that stops reading holds an upstream stream and its permit), seconds.
    pub client_stall_timeout_secs: u64,
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
            max_connections: 1024,
            header_read_timeout_secs: 30,
            client_stall_timeout_secs: 120,
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
    /// Write downloaded blobs with direct I/O, past the page cache (see `cache::direct`): a
    /// cold pull costs less CPU and leaves the page cache to the runtime's own copy, but the
    /// first hit after a fill reads the disk. `false` writes through the page cache.
    pub direct_io: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            dir: PathBuf::from("/var/lib/portcullis"),
            max_size: 10 * 1024 * 1024 * 1024,
            direct_io: true,
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

/// A config error that names the key it is about (and the file or variable it came from).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment could not be read into the types; already worded as
    /// ``config key `…`: … (in /abs/path)``, one line per error.
    #[error("{0}")]
    Load(String),
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
            // Absolute, so errors name the file wherever the process runs, and so figment does
            // not search parent directories for a relative name.
            let p = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
            if !p.is_file() {
                return Err(invalid(
                    "--config",
                    format!("{} does not exist or is not a file", p.display()),
                ));
            }
            fig = fig.merge(Toml::file(p));
        }
        fig = fig.merge(Env::prefixed("PORTCULLIS_").split("__"));
        let cfg: Config = fig.extract().map_err(diagnose::from_figment)?;
        if path.is_none() && cfg.registries.is_empty() {
            // The usual first-run mistake: say that no file was read, rather than only what
            // the (empty) defaults lack.
            return Err(invalid(
                "registries",
                "at least one [[registries]] entry is needed, and no config file was read: \
                 no --config was given, and portcullis looks for no file by itself (the \
                 installed one is /etc/portcullis/portcullis.toml; the demo's is \
                 config/portcullis.toml). Only the built-in defaults and PORTCULLIS_* \
                 environment variables were used",
            ));
        }
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
        if s.max_connections == 0 {
            return Err(invalid("server.max_connections", "must be above 0"));
        }
        if s.header_read_timeout_secs == 0 {
            return Err(invalid(
                "server.header_read_timeout_secs",
                "must be above 0",
            ));
        }
        if s.client_stall_timeout_secs == 0 {
            return Err(invalid(
                "server.client_stall_timeout_secs",
                "must be above 0",
            ));
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
            if let Some(t) = &r.tuf {
                check_one_source(r.notary.is_some(), &key("tuf"))?;
                tuf::check_tuf(t, &key("tuf"))?;
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
                if let Some(t) = &o.tuf {
                    let k = key(&format!("repositories[{j}].tuf"));
                    check_one_source(o.notary.is_some(), &k)?;
                    tuf::check_tuf(t, &k)?;
                }
            }
        }
        policy::check(self)
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

/// `notary` and `tuf` on one registry or override: which one vouches would be a guess, and a
/// fallback from one to the other would loosen both. A config error, never a fallback.
fn check_one_source(has_notary: bool, tuf_key: &str) -> Result<(), ConfigError> {
    if has_notary {
        return Err(invalid(
            tuf_key,
            "both notary and tuf are set here: configure one trust source (use              [[registries.repositories]] to give some repositories the other)",
        ));
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
    check_fetch(&n.fetch, key)?;
    if let Some(g) = &n.offline_grace {
        match humantime::parse_duration(g) {
            Ok(d) if d <= registry::MAX_OFFLINE_GRACE => {}
            Ok(_) => {
                return Err(invalid(
                    format!("{key}.offline_grace"),
                    "must be at most 366d (a bounded time past the timestamp's expiry)",
                ));
            }
            Err(e) => {
                return Err(invalid(
                    format!("{key}.offline_grace"),
                    format!("{g:?} is not a duration like \"30d\" or \"12h\": {e}"),
                ));
            }
        }
    }
    Ok(())
}

/// `fetch` of a trust source (`notary` or `tuf`): the deadline and the minimum rate.
fn check_fetch(f: &NotaryFetch, key: &str) -> Result<(), ConfigError> {
    if f.deadline_secs == 0 {
        return Err(invalid(
            format!("{key}.fetch.deadline_secs"),
            "must be above 0",
        ));
    }
    if f.min_rate_after_secs >= f.deadline_secs {
        return Err(invalid(
            format!("{key}.fetch.min_rate_after_secs"),
            "must be below fetch.deadline_secs (else the rate is never checked)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
