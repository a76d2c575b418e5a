//! Node configuration for the runtimes that pull through Portcullis, one module per file:
//! [`containerd`] (`hosts.toml`), [`containers`] (the registries.conf of CRI-O, podman and
//! skopeo) and [`docker`] (`daemon.json`).
//!
//! This module owns what they share: the [`Target`] names, how a node reaches the proxy
//! ([`Proxy`], from the config and [`Options`]), which registries may be routed to each runtime,
//! the [`Output`] of `portcullis config`, and [`write_tree`], the only I/O. The generators are
//! pure functions of a [`Proxy`] and the selected registries, so `portcullis doctor` can build
//! the same [`Proxy`] and compare what a node has with what it should have. The CLI
//! (`portcullis config <target> [--registry HOST ...] [--out DIR]`) lives in `main.rs`.
//!
//! Every file is shaped so that a refusal by the proxy is final, because each runtime has a way
//! to quietly go around a mirror that refuses (see the testbed's "Clients through a mirror");
//! each module says how its runtime does and what its file does against it.
//!
//! containerd tells the proxy which registry it means with `?ns=`; containers/image and dockerd
//! do not, so through those the proxy can only serve the registry it picks for requests without
//! `?ns=` (the `default`, or the only one). [`render`] refuses to route another registry there
//! rather than let the proxy answer for the wrong one.

pub mod containerd;
pub mod containers;
pub mod docker;

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::config::{ClientAuth, Config, RegistryConfig};

/// Which runtime to write configuration for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `hosts.toml` per registry, under containerd's `config_path` (`/etc/containerd/certs.d`).
    Containerd,
    /// `registries.conf` for CRI-O (`/etc/containers/registries.conf.d/`).
    Crio,
    /// `registries.conf` for podman, buildah and skopeo (same format as CRI-O's).
    Podman,
    /// `daemon.json` for dockerd.
    Docker,
}

impl Target {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Containerd => "containerd",
            Target::Crio => "crio",
            Target::Podman => "podman",
            Target::Docker => "docker",
        }
    }
}

impl std::str::FromStr for Target {
    type Err = Error;
    fn from_str(s: &str) -> Result<Target, Error> {
        match s {
            "containerd" => Ok(Target::Containerd),
            "crio" | "cri-o" => Ok(Target::Crio),
            "podman" => Ok(Target::Podman),
            "docker" | "dockerd" => Ok(Target::Docker),
            other => Err(Error::UnknownTarget(other.to_string())),
        }
    }
}

/// One generated file: a path relative to the `--out` directory, and its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFile {
    pub path: PathBuf,
    pub contents: String,
}

/// What [`render`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Exactly one file: printed as is on stdout, or written under `--out DIR` at `path`.
    File(OutFile),
    /// Several files (containerd with several registries); for `--out DIR`.
    Tree(Vec<OutFile>),
}

impl Output {
    /// The files, in order.
    pub fn files(&self) -> &[OutFile] {
        match self {
            Output::File(f) => std::slice::from_ref(f),
            Output::Tree(t) => t,
        }
    }

    /// Text for stdout: a single file as is; a tree as its files, each after a
    /// `# ==> path <==` line (every tree is TOML, where `#` starts a comment).
    pub fn stdout_text(&self) -> String {
        match self {
            Output::File(f) => f.contents.clone(),
            Output::Tree(files) => {
                let mut s = String::new();
                for (i, f) in files.iter().enumerate() {
                    if i > 0 {
                        s.push('\n');
                    }
                    let _ = writeln!(s, "# ==> {} <==", f.path.display());
                    s.push_str(&f.contents);
                }
                s
            }
        }
    }
}

/// Why no configuration could be rendered. Each message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown target {0:?}: expected containerd, crio, podman or docker")]
    UnknownTarget(String),
    #[error("--registry {name}: not a configured registry (configured: {configured})")]
    UnknownRegistry { name: String, configured: String },
    #[error("the config has no [[registries]]")]
    NoRegistries,
    #[error(
        "{target} cannot tell the proxy which registry it means (it sends no ?ns=), so only the \
         registry that serves requests without ?ns= can go through it{default}; {name} cannot. \
         Use containerd for several registries, or run one Portcullis per registry"
    )]
    NeedsNamespace {
        target: &'static str,
        name: String,
        /// ` (here: X)` or ` (this config has none: set default = true on one)`.
        default: String,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Settings the config file does not know, for nodes that reach the proxy differently from how
/// it listens. [`render`] uses the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `host:port` the node's runtime dials. Default: `server.listen`, with an unspecified
    /// address (`0.0.0.0`, `::`) replaced by loopback (the DaemonSet runs on every node).
    pub proxy_addr: Option<String>,
    /// CA bundle on the node that verifies the proxy's certificate. Default: `server.tls_cert`
    /// itself (a self-signed certificate is its own CA; on the node it is the same file).
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key for `client_auth = mtls`.
    /// Default: `/etc/portcullis/client.crt` and `/etc/portcullis/client.key`.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// Renders the node configuration of `target` for `registries` (all configured ones when empty).
pub fn render(cfg: &Config, target: Target, registries: &[String]) -> Result<Output, Error> {
    render_with(cfg, target, registries, &Options::default())
}

/// [`render`] with [`Options`].
pub fn render_with(
    cfg: &Config,
    target: Target,
    registries: &[String],
    opts: &Options,
) -> Result<Output, Error> {
    let selected = select(cfg, registries)?;
    let proxy = Proxy::new(cfg, opts);
    match target {
        Target::Containerd => {
            let mut files = containerd::files(&proxy, &selected);
            if files.len() == 1 {
                Ok(Output::File(files.remove(0)))
            } else {
                Ok(Output::Tree(files))
            }
        }
        Target::Crio | Target::Podman => {
            require_default(cfg, target, &selected)?;
            Ok(Output::File(containers::file(&proxy, target, &selected)))
        }
        Target::Docker => {
            require_default(cfg, target, &selected)?;
            Ok(Output::File(docker::file(&proxy)))
        }
    }
}

/// Writes every file of `out` under `dir`, creating directories as needed.
pub fn write_tree(out: &Output, dir: &Path) -> Result<(), Error> {
    for f in out.files() {
        // Paths come from render (registry names were validated: no `/`), never from a client.
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| Error::Write {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&path, &f.contents).map_err(|source| Error::Write { path, source })?;
    }
    Ok(())
}

fn select<'a>(cfg: &'a Config, names: &[String]) -> Result<Vec<&'a RegistryConfig>, Error> {
    if cfg.registries.is_empty() {
        return Err(Error::NoRegistries);
    }
    if names.is_empty() {
        return Ok(cfg.registries.iter().collect());
    }
    names
        .iter()
        .map(|n| {
            cfg.registries
                .iter()
                .find(|r| &r.name == n)
                .ok_or_else(|| Error::UnknownRegistry {
                    name: n.clone(),
                    configured: cfg
                        .registries
                        .iter()
                        .map(|r| r.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
        })
        .collect()
}

/// containers/image and dockerd send no `?ns=`: only the registry the proxy picks for such
/// requests (`Config::registry(None)`) may be routed to it, or the proxy would answer for the
/// wrong registry.
fn require_default(
    cfg: &Config,
    target: Target,
    selected: &[&RegistryConfig],
) -> Result<(), Error> {
    let default = cfg.registry(None).map(|r| r.name.as_str());
    for r in selected {
        if Some(r.name.as_str()) != default {
            return Err(Error::NeedsNamespace {
                target: target.as_str(),
                name: r.name.clone(),
                default: match default {
                    Some(d) => format!(" (here: {d})"),
                    None => " (this config has none: set default = true on one)".into(),
                },
            });
        }
    }
    Ok(())
}

/// How a node reaches the proxy: the part of the config (and [`Options`]) that every node file
/// is made from.
#[derive(Debug, Clone)]
pub struct Proxy {
    /// `host:port`.
    addr: String,
    tls: bool,
    ca_file: Option<PathBuf>,
    client_auth: ClientAuth,
    client_cert: (PathBuf, PathBuf),
}

impl Proxy {
    /// The proxy as `cfg` and `opts` describe it to a node.
    pub fn new(cfg: &Config, opts: &Options) -> Proxy {
        let tls = cfg.server.tls_cert.is_some();
        Proxy {
            addr: opts
                .proxy_addr
                .clone()
                .unwrap_or_else(|| dialable(cfg.server.listen).to_string()),
            tls,
            ca_file: opts.ca_file.clone().or_else(|| cfg.server.tls_cert.clone()),
            client_auth: cfg.server.client_auth.clone(),
            client_cert: opts.client_cert.clone().unwrap_or_else(|| {
                (
                    PathBuf::from("/etc/portcullis/client.crt"),
                    PathBuf::from("/etc/portcullis/client.key"),
                )
            }),
        }
    }

    /// `host:port` the node dials.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the proxy speaks TLS (`server.tls_cert` is set).
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// The CA to name, only when the proxy speaks TLS.
    pub fn ca(&self) -> Option<&Path> {
        self.ca_file.as_deref().filter(|_| self.tls)
    }

    /// `http://host:port` or `https://host:port`.
    pub fn url(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.addr
        )
    }
}

/// A listener on `0.0.0.0`/`::` is reached on the node through loopback.
fn dialable(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, listen.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, listen.port()).into(),
        _ => listen,
    }
}

/// A TOML basic string (also a valid JSON string for the characters we escape).
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            '\r' => q.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(q, "\\u{:04X}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// A path as a TOML basic string; the node files only hold UTF-8 paths in practice.
fn path_str(p: &Path) -> String {
    quote(&p.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::Figment;
    use figment::providers::{Format, Toml};

    /// A validated config: `extra_server` under `[server]`, then `registries`.
    pub(super) fn cfg(extra_server: &str, registries: &str) -> Config {
        let text = format!("[server]\n{extra_server}\n{registries}");
        let c: Config = Figment::from(figment::providers::Serialized::defaults(Config::default()))
            .merge(Toml::string(&text))
            .extract()
            .unwrap();
        c.validate().unwrap();
        c
    }

    pub(super) const ONE: &str = "[[registries]]\nname = \"127.0.0.1:5000\"\nupstream = \"http://127.0.0.1:5000\"\ndefault = true\n";
    pub(super) const TWO: &str = "[[registries]]\nname = \"reg.example:5000\"\nupstream = \"https://reg.example:5000\"\ndefault = true\n\
                       [[registries]]\nname = \"docker.io\"\nupstream = \"https://registry-1.docker.io\"\n";

    /// A generated TOML file as JSON, to assert on keys rather than text.
    pub(super) fn toml(s: &str) -> serde_json::Value {
        Figment::from(Toml::string(s)).extract().unwrap()
    }

    #[test]
    fn unknown_registry_is_named() {
        let e = render(&cfg("", ONE), Target::Containerd, &["nope:1".into()]).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("nope:1") && m.contains("127.0.0.1:5000"), "{m}");
    }

    #[test]
    fn no_ns_targets_refuse_registries_the_proxy_cannot_tell_apart() {
        let c = cfg("", TWO);
        for t in [Target::Crio, Target::Podman, Target::Docker] {
            assert!(render(&c, t, &["reg.example:5000".into()]).is_ok());
            let e = render(&c, t, &["docker.io".into()])
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("docker.io") && e.contains("here: reg.example:5000"),
                "{e}"
            );
            assert!(
                render(&c, t, &[]).is_err(),
                "all = includes the non-default one"
            );
        }
        // two registries, none default: no request without ?ns= has a registry
        let none = cfg(
            "",
            "[[registries]]\nname = \"a:1\"\nupstream = \"http://a:1\"\n[[registries]]\nname = \"b:1\"\nupstream = \"http://b:1\"\n",
        );
        let e = render(&none, Target::Podman, &["a:1".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("set default = true"), "{e}");
        assert!(render(&none, Target::Containerd, &[]).is_ok());
    }

    #[test]
    fn quoting_survives_odd_paths() {
        assert_eq!(quote("a\"b\\c\u{1}"), "\"a\\\"b\\\\c\\u0001\"");
        let v = toml(&format!("x = {}", quote("/tmp/we\"ird\\ path")));
        assert_eq!(v["x"], "/tmp/we\"ird\\ path");
    }

    #[test]
    fn write_tree_writes_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = render(&cfg("", TWO), Target::Containerd, &[]).unwrap();
        write_tree(&out, dir.path()).unwrap();
        let got = std::fs::read_to_string(dir.path().join("certs.d/docker.io/hosts.toml")).unwrap();
        assert_eq!(got, out.files()[1].contents);
    }

    #[test]
    fn targets_parse() {
        assert_eq!("cri-o".parse::<Target>().unwrap(), Target::Crio);
        assert!("rkt".parse::<Target>().is_err());
    }

    #[test]
    fn example_config_renders_for_every_target() {
        let c: Config = Figment::from(figment::providers::Serialized::defaults(Config::default()))
            .merge(Toml::string(include_str!("../../config/portcullis.toml")))
            .extract()
            .unwrap();
        for t in [
            Target::Containerd,
            Target::Crio,
            Target::Podman,
            Target::Docker,
        ] {
            render(&c, t, &[]).unwrap();
        }
    }
}
