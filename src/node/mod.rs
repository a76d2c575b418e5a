//! Node configuration for the runtimes that pull through Portcullis: containerd's `hosts.toml`,
//! the containers-registries.conf that CRI-O, podman and skopeo read, and dockerd's `daemon.json`.
//!
//! Pure functions from a validated [`Config`] to file contents; [`write_tree`] is the only I/O.
//! The CLI (`portcullis config <target> [--registry HOST ...] [--out DIR]`) lives in `main.rs`.
//!
//! Every file is shaped so that a refusal by the proxy is final, because each runtime has a way
//! to quietly go around a mirror that refuses (see the testbed's "Clients through a mirror"):
//! - containerd tries the `[host]` entries, then `server`. If `server` named the real registry, a
//!   403 from the proxy would be followed by an unverified pull from the registry. So `server`
//!   names the proxy too.
//! - containers/image (CRI-O, podman, skopeo) falls back from a `[[registry.mirror]]` to the
//!   primary location. So the `location` itself is rewritten to the proxy; there is no fallback.
//! - dockerd's `registry-mirrors` apply to Docker Hub only, and dockerd falls back from a failing
//!   mirror to Docker Hub. For dockerd the image reference must name the proxy itself.
//!
//! containerd tells the proxy which registry it means with `?ns=`; containers/image and dockerd
//! do not, so through those the proxy can only serve the registry it picks for requests without
//! `?ns=` (the `default`, or the only one). [`render`] refuses to route another registry there
//! rather than let the proxy answer for the wrong one.

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
            let mut files: Vec<OutFile> = selected
                .iter()
                .map(|r| OutFile {
                    path: Path::new("certs.d").join(&r.name).join("hosts.toml"),
                    contents: containerd_hosts_toml(&proxy, r),
                })
                .collect();
            if files.len() == 1 {
                Ok(Output::File(files.remove(0)))
            } else {
                Ok(Output::Tree(files))
            }
        }
        Target::Crio | Target::Podman => {
            require_default(cfg, target, &selected)?;
            Ok(Output::File(OutFile {
                path: PathBuf::from("registries.conf"),
                contents: registries_conf(&proxy, target, &selected),
            }))
        }
        Target::Docker => {
            require_default(cfg, target, &selected)?;
            Ok(Output::File(OutFile {
                path: PathBuf::from("daemon.json"),
                contents: daemon_json(&proxy),
            }))
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

/// How a node reaches the proxy.
struct Proxy {
    /// `host:port`.
    addr: String,
    tls: bool,
    ca_file: Option<PathBuf>,
    client_auth: ClientAuth,
    client_cert: (PathBuf, PathBuf),
}

impl Proxy {
    fn new(cfg: &Config, opts: &Options) -> Proxy {
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

    /// The CA to name, only when the proxy speaks TLS.
    fn ca(&self) -> Option<&Path> {
        self.ca_file.as_deref().filter(|_| self.tls)
    }

    fn url(&self) -> String {
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

fn path_str(p: &Path) -> String {
    quote(&p.to_string_lossy())
}

fn containerd_hosts_toml(p: &Proxy, r: &RegistryConfig) -> String {
    let url = p.url();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Generated by `portcullis config containerd` for registry {name}.\n\
         # Install as /etc/containerd/certs.d/{name}/hosts.toml, with containerd's CRI plugin set to\n\
         #   [plugins.\"io.containerd.grpc.v1.cri\".registry]\n\
         #     config_path = \"/etc/containerd/certs.d\"\n\
         # (ctr: `ctr images pull --hosts-dir /etc/containerd/certs.d`). containerd re-reads it on every pull.\n\
         #\n\
         # `server` names Portcullis as well: containerd falls back to `server` when the hosts refuse,\n\
         # and a refusal must not turn into an unverified pull from {name} itself.",
        name = r.name
    );
    let _ = writeln!(s, "server = {}", quote(&url));
    // The server is never asked to pull or resolve: with both it and the [host] naming the
    // proxy, containerd would try the refused tag twice (two HEADs, two denials logged).
    let _ = writeln!(s, "capabilities = [\"push\"]");
    if let Some(ca) = p.ca() {
        let _ = writeln!(s, "ca = {}", path_str(ca));
    }
    push_client_auth_toml(&mut s, p, "");
    let _ = writeln!(s);
    let _ = writeln!(s, "[host.{}]", quote(&url));
    let _ = writeln!(s, "  capabilities = [\"pull\", \"resolve\"]");
    if let Some(ca) = p.ca() {
        let _ = writeln!(s, "  ca = {}", path_str(ca));
    }
    push_client_auth_toml(&mut s, p, "  ");
    s
}

fn push_client_auth_toml(s: &mut String, p: &Proxy, indent: &str) {
    match &p.client_auth {
        ClientAuth::Mtls { .. } => {
            let _ = writeln!(
                s,
                "{indent}client = [[{}, {}]]",
                path_str(&p.client_cert.0),
                path_str(&p.client_cert.1)
            );
        }
        ClientAuth::Basic { .. } => {
            let _ = writeln!(
                s,
                "{indent}# client_auth = basic: put this node's credentials in a header (base64 of user:password)\n\
                 {indent}# [host.\"...\".header]\n\
                 {indent}#   Authorization = [\"Basic <base64>\"]"
            );
        }
        ClientAuth::None | ClientAuth::Passthrough => {}
    }
}

fn registries_conf(p: &Proxy, target: Target, selected: &[&RegistryConfig]) -> String {
    let mut s = String::new();
    let install = match target {
        Target::Crio => "/etc/containers/registries.conf.d/50-portcullis.conf (then restart crio)",
        _ => {
            "/etc/containers/registries.conf.d/50-portcullis.conf, or ~/.config/containers/registries.conf (rootless)"
        }
    };
    let _ = writeln!(
        s,
        "# Generated by `portcullis config {t}`. Install as {install}.\n\
         # Each prefix's `location` IS the proxy, rather than a [[registry.mirror]]: containers/image\n\
         # falls back from a failing mirror to the primary location, which would pull unverified.",
        t = target.as_str()
    );
    if p.tls {
        let _ = writeln!(
            s,
            "# TLS: the proxy's CA goes in /etc/containers/certs.d/{}/ca.crt{}.",
            p.addr,
            if matches!(p.client_auth, ClientAuth::Mtls { .. }) {
                ", with this node's client.cert and client.key beside it"
            } else {
                ""
            }
        );
    }
    if matches!(
        p.client_auth,
        ClientAuth::Basic { .. } | ClientAuth::Passthrough
    ) {
        let _ = writeln!(
            s,
            "# Credentials: containers/image drops --creds for rewritten locations; put them in the\n\
             # auth file (e.g. /etc/containers/auth.json) under {}.",
            p.addr
        );
    }
    for r in selected {
        let _ = writeln!(s);
        let _ = writeln!(s, "[[registry]]");
        let _ = writeln!(s, "prefix = {}", quote(&r.name));
        let _ = writeln!(s, "location = {}", quote(&p.addr));
        if !p.tls {
            let _ = writeln!(s, "insecure = true");
        }
    }
    s
}

fn daemon_json(p: &Proxy) -> String {
    // JSON has no comments: the reasons live in the README (Deploying Portcullis). dockerd needs nothing from us for
    // a TLS proxy except its CA in /etc/docker/certs.d/<proxy>/ca.crt.
    if p.tls {
        "{}\n".to_string()
    } else {
        format!("{{\n  \"insecure-registries\": [{}]\n}}\n", quote(&p.addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::Figment;
    use figment::providers::{Format, Toml};

    fn cfg(extra_server: &str, registries: &str) -> Config {
        let text = format!("[server]\n{extra_server}\n{registries}");
        let c: Config = Figment::from(figment::providers::Serialized::defaults(Config::default()))
            .merge(Toml::string(&text))
            .extract()
            .unwrap();
        c.validate().unwrap();
        c
    }

    const ONE: &str = "[[registries]]\nname = \"127.0.0.1:5000\"\nupstream = \"http://127.0.0.1:5000\"\ndefault = true\n";
    const TWO: &str = "[[registries]]\nname = \"reg.example:5000\"\nupstream = \"https://reg.example:5000\"\ndefault = true\n\
                       [[registries]]\nname = \"docker.io\"\nupstream = \"https://registry-1.docker.io\"\n";

    fn toml(s: &str) -> serde_json::Value {
        Figment::from(Toml::string(s)).extract().unwrap()
    }

    #[test]
    fn containerd_plain_http_points_server_and_host_at_the_proxy() {
        let out = render(&cfg("", ONE), Target::Containerd, &[]).unwrap();
        let Output::File(f) = &out else {
            panic!("one registry is one file")
        };
        assert_eq!(f.path, Path::new("certs.d/127.0.0.1:5000/hosts.toml"));
        let v = toml(&f.contents);
        assert_eq!(v["server"], "http://127.0.0.1:5050");
        let host = &v["host"]["http://127.0.0.1:5050"];
        assert_eq!(host["capabilities"], serde_json::json!(["pull", "resolve"]));
        assert!(
            v.get("ca").is_none() && host.get("ca").is_none(),
            "no ca without TLS"
        );
        assert!(
            !f.contents.contains("5000\"\n"),
            "the registry itself is never a server/host"
        );
    }

    #[test]
    fn containerd_tls_and_mtls() {
        let c = cfg(
            "listen = \"0.0.0.0:5443\"\ntls_cert = \"/etc/portcullis/tls.crt\"\ntls_key = \"/etc/portcullis/tls.key\"\nclient_auth = { mode = \"mtls\", ca_file = \"/etc/portcullis/clients.pem\" }",
            ONE,
        );
        let f = render(&c, Target::Containerd, &[]).unwrap().stdout_text();
        let v = toml(&f);
        assert_eq!(
            v["server"], "https://127.0.0.1:5443",
            "0.0.0.0 is dialed on loopback"
        );
        assert_eq!(v["ca"], "/etc/portcullis/tls.crt");
        let host = &v["host"]["https://127.0.0.1:5443"];
        assert_eq!(host["ca"], "/etc/portcullis/tls.crt");
        assert_eq!(
            host["client"],
            serde_json::json!([["/etc/portcullis/client.crt", "/etc/portcullis/client.key"]])
        );
        let opts = Options {
            proxy_addr: Some("portcullis.node.local:5443".into()),
            ca_file: Some("/etc/pki/portcullis-ca.pem".into()),
            client_cert: None,
        };
        let v = toml(
            &render_with(&c, Target::Containerd, &[], &opts)
                .unwrap()
                .stdout_text(),
        );
        assert_eq!(v["server"], "https://portcullis.node.local:5443");
        assert_eq!(v["ca"], "/etc/pki/portcullis-ca.pem");
    }

    #[test]
    fn containerd_several_registries_make_a_tree() {
        let c = cfg("", TWO);
        let out = render(&c, Target::Containerd, &[]).unwrap();
        let paths: Vec<_> = out.files().iter().map(|f| f.path.clone()).collect();
        assert_eq!(
            paths,
            [
                PathBuf::from("certs.d/reg.example:5000/hosts.toml"),
                PathBuf::from("certs.d/docker.io/hosts.toml")
            ]
        );
        assert!(matches!(out, Output::Tree(_)));
        // the stdout form of a tree is still one valid TOML document per file
        assert!(
            out.stdout_text()
                .contains("# ==> certs.d/docker.io/hosts.toml <==")
        );
        let one = render(&c, Target::Containerd, &["docker.io".into()]).unwrap();
        assert!(matches!(one, Output::File(ref f) if f.path.starts_with("certs.d/docker.io")));
    }

    #[test]
    fn unknown_registry_is_named() {
        let e = render(&cfg("", ONE), Target::Containerd, &["nope:1".into()]).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("nope:1") && m.contains("127.0.0.1:5000"), "{m}");
    }

    #[test]
    fn registries_conf_rewrites_location_and_never_uses_a_mirror() {
        for t in [Target::Crio, Target::Podman] {
            let f = render(&cfg("", ONE), t, &[]).unwrap();
            let Output::File(f) = f else { panic!() };
            assert_eq!(f.path, Path::new("registries.conf"));
            let v = toml(&f.contents);
            let r = &v["registry"][0];
            assert_eq!(r["prefix"], "127.0.0.1:5000");
            assert_eq!(r["location"], "127.0.0.1:5050");
            assert_eq!(r["insecure"], true);
            assert!(r.get("mirror").is_none());
            let live = f
                .contents
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'));
            assert!(
                live.clone().all(|l| !l.contains("mirror")),
                "{}",
                f.contents
            );
        }
        let tls = cfg("tls_cert = \"/c\"\ntls_key = \"/k\"", ONE);
        let v = toml(&render(&tls, Target::Crio, &[]).unwrap().stdout_text());
        assert!(v["registry"][0].get("insecure").is_none());
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
    fn daemon_json_marks_a_plain_http_proxy_insecure() {
        let v: serde_json::Value = serde_json::from_str(
            &render(&cfg("", ONE), Target::Docker, &[])
                .unwrap()
                .stdout_text(),
        )
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"insecure-registries": ["127.0.0.1:5050"]})
        );
        assert!(
            v.get("registry-mirrors").is_none(),
            "mirrors fall back to Docker Hub"
        );
        let tls = cfg("tls_cert = \"/c\"\ntls_key = \"/k\"", ONE);
        let v: serde_json::Value =
            serde_json::from_str(&render(&tls, Target::Docker, &[]).unwrap().stdout_text())
                .unwrap();
        assert_eq!(v, serde_json::json!({}));
    }

    #[test]
    fn ipv6_listener_is_bracketed() {
        let c = cfg("listen = \"[::1]:5050\"", ONE);
        let v = toml(&render(&c, Target::Containerd, &[]).unwrap().stdout_text());
        assert_eq!(v["server"], "http://[::1]:5050");
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
