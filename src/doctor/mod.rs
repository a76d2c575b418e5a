//! `portcullis doctor`: proves that each container runtime on this node pulls through this
//! Portcullis, and says what to change when one does not.
//!
//! Map:
//! - this file: options, which runtimes are checked, the [`Report`] (one line per check, or
//!   JSON) and the exit rule (0 only when nothing FAILed and at least one runtime was checked)
//! - `containerd`: config.toml's `config_path` and each registry's hosts.toml, read as
//!   containerd 1.6 and 1.7/2.x read them, compared with what `portcullis config` generates
//! - `containerd_config`: config.toml merged with its `imports` as containerd merges them
//! - `containers`: the effective containers-registries.conf after drop-ins
//! - `docker`: daemon.json, and the canary pulled through the Docker Engine API
//! - `pull`: the canary pulled by CRI `PullImage` and by `skopeo`
//! - `canary`: the nonce, its key and the canary image, shared with `serve`
//!
//! Static checks alone cannot prove a pull path (containerd quietly ignores files it cannot
//! parse, drop-ins are merged in an order easy to get wrong), so every runtime that can be
//! asked also pulls the canary; a pull that succeeds proves the traffic went through here.

pub mod canary;
mod containerd;
mod containerd_config;
mod containers;
mod docker;
pub mod pull;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::config::Config;
use crate::node::{self, Proxy};

/// Where each runtime's files are, from the command line; `None` means the standard path, used
/// only when nothing was named (then every runtime found there is checked).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Options {
    /// containerd's config.toml (default /etc/containerd/config.toml).
    #[arg(long)]
    pub containerd_config: Option<PathBuf>,
    /// The CRI socket to send PullImage to (default /run/containerd/containerd.sock).
    #[arg(long)]
    pub cri_socket: Option<PathBuf>,
    /// dockerd's API, unix:///path (default unix:///var/run/docker.sock, or DOCKER_HOST).
    #[arg(long)]
    pub docker_host: Option<String>,
    /// dockerd's daemon.json (default /etc/docker/daemon.json).
    #[arg(long)]
    pub docker_daemon_json: Option<PathBuf>,
    /// The main containers-registries.conf (default /etc/containers/registries.conf); its
    /// drop-in directories are read as containers/image reads them.
    #[arg(long)]
    pub registries_conf: Option<PathBuf>,
    /// `host:port` the node dials for the proxy, when it differs from `server.listen`.
    #[arg(long)]
    pub proxy_addr: Option<String>,
    /// Static checks only: no canary pulls.
    #[arg(long)]
    pub no_pull: bool,
}

const CONTAINERD_CONFIG: &str = "/etc/containerd/config.toml";
const CRI_SOCKET: &str = "/run/containerd/containerd.sock";
const DOCKER_SOCKET: &str = "/var/run/docker.sock";
const DAEMON_JSON: &str = "/etc/docker/daemon.json";
const REGISTRIES_CONF: &str = "/etc/containers/registries.conf";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One check: which runtime, what was checked, and the result with what to change.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub runtime: &'static str,
    pub status: Status,
    pub check: String,
    pub message: String,
}

/// Every check of one run.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub proxy: String,
    pub registries: Vec<String>,
    pub runtimes: Vec<&'static str>,
    pub checks: Vec<Check>,
    /// true exactly when the exit code is 0.
    pub ok: bool,
}

impl Report {
    fn push(
        &mut self,
        runtime: &'static str,
        status: Status,
        check: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.checks.push(Check {
            runtime,
            status,
            check: check.into(),
            message: message.into(),
        });
    }

    /// The human form: one line per check, then a summary line.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for c in &self.checks {
            let _ = writeln!(
                s,
                "{} {:<10} {}: {}",
                c.status.as_str(),
                c.runtime,
                c.check,
                c.message
            );
        }
        let count = |st| self.checks.iter().filter(|c| c.status == st).count();
        let _ = writeln!(
            s,
            "{}: {} passed, {} warnings, {} failed (runtimes: {}; proxy {})",
            if self.ok { "OK" } else { "NOT ENFORCED" },
            count(Status::Pass),
            count(Status::Warn),
            count(Status::Fail),
            if self.runtimes.is_empty() {
                "none".to_string()
            } else {
                self.runtimes.join(", ")
            },
            self.proxy,
        );
        s
    }
}

/// A tiny view of `cfg` and the node, shared by the runtime checks.
pub(crate) struct Ctx<'a> {
    pub cfg: &'a Config,
    pub proxy: Proxy,
    /// The nonce for this run's canary pulls, or why there is none.
    pub nonce: Result<String, String>,
    pub pull: bool,
}

impl Ctx<'_> {
    /// `<registry>/portcullis-doctor/canary:<nonce>`.
    pub fn canary_ref(&self, registry: &str) -> Option<String> {
        let n = self.nonce.as_ref().ok()?;
        Some(format!("{registry}/{}:{n}", canary::REPOSITORY))
    }
}

fn named(p: &Option<PathBuf>, default: &str, any_named: bool) -> Option<PathBuf> {
    match p {
        Some(p) => Some(p.clone()),
        None if !any_named && Path::new(default).exists() => Some(PathBuf::from(default)),
        None => None,
    }
}

/// Runs every check for the runtimes named in `opts` (or found at their standard paths).
pub async fn run(cfg: &Config, opts: &Options) -> Report {
    let node_opts = node::Options {
        proxy_addr: opts.proxy_addr.clone(),
        ..Default::default()
    };
    let proxy = Proxy::new(cfg, &node_opts);
    let nonce = canary::read_key(&cfg.cache.dir)
        .map_err(|e| {
            format!(
                "cannot read the canary key {} ({e}): run the doctor where `portcullis serve` with this config runs (same cache.dir), as a user that can read it",
                canary::key_path(&cfg.cache.dir).display()
            )
        })
        .and_then(|k| canary::make_nonce(&k).map_err(|e| e.to_string()));
    let cx = Ctx {
        cfg,
        proxy,
        nonce,
        pull: !opts.no_pull,
    };
    let mut r = Report {
        proxy: cx.proxy.url(),
        registries: cfg.registries.iter().map(|r| r.name.clone()).collect(),
        ..Default::default()
    };
    let any_named = opts.containerd_config.is_some()
        || opts.cri_socket.is_some()
        || opts.docker_host.is_some()
        || opts.docker_daemon_json.is_some()
        || opts.registries_conf.is_some();
    if cx.pull
        && let Err(e) = &cx.nonce
    {
        r.push("portcullis", Status::Fail, "canary", e.clone());
    }
    // A runtime's other file comes from its standard path when one of its files was named.
    let cd_config = named(
        &opts.containerd_config,
        CONTAINERD_CONFIG,
        any_named && opts.cri_socket.is_none(),
    );
    let cri = named(
        &opts.cri_socket,
        CRI_SOCKET,
        any_named && opts.containerd_config.is_none(),
    );
    if cd_config.is_some() || cri.is_some() {
        r.runtimes.push("containerd");
        containerd::check(&cx, cd_config.as_deref(), cri.as_deref(), &mut r).await;
    }
    if let Some(conf) = named(&opts.registries_conf, REGISTRIES_CONF, any_named) {
        r.runtimes.push("containers");
        containers::check(&cx, &conf, &mut r).await;
    }
    let docker_host = opts.docker_host.clone().or_else(|| {
        if any_named {
            None
        } else {
            std::env::var("DOCKER_HOST").ok().or_else(|| {
                Path::new(DOCKER_SOCKET)
                    .exists()
                    .then(|| format!("unix://{DOCKER_SOCKET}"))
            })
        }
    });
    let daemon_json = named(
        &opts.docker_daemon_json,
        DAEMON_JSON,
        any_named && docker_host.is_none(),
    );
    if docker_host.is_some() || daemon_json.is_some() {
        r.runtimes.push("docker");
        docker::check(&cx, docker_host.as_deref(), daemon_json.as_deref(), &mut r).await;
    }
    if r.runtimes.is_empty() {
        r.push(
            "node",
            Status::Fail,
            "runtimes",
            format!("no container runtime found ({CONTAINERD_CONFIG}, {CRI_SOCKET}, {REGISTRIES_CONF}, {DOCKER_SOCKET}); name one with --containerd-config, --cri-socket, --registries-conf or --docker-host"),
        );
    }
    reachability(cfg, &mut r).await;
    r.ok = !r.runtimes.is_empty() && r.checks.iter().all(|c| c.status != Status::Fail);
    r
}

/// A node that can reach the registry itself lets any client without the mirror config (a
/// user's `ctr pull`, a pod with its own runtime config) go around Portcullis.
async fn reachability(cfg: &Config, r: &mut Report) {
    for reg in &cfg.registries {
        let Some(addr) = upstream_addr(&reg.upstream) else {
            continue;
        };
        let open = tokio::time::timeout(
            Duration::from_secs(3),
            tokio::net::TcpStream::connect(&addr),
        )
        .await;
        if matches!(open, Ok(Ok(_))) {
            r.push(
                "node",
                Status::Warn,
                format!("direct route to {}", reg.name),
                format!(
                    "this node opens TCP connections to the registry itself ({addr}): a client without the mirror config pulls around Portcullis, unverified. Allow {addr} only from Portcullis (a network policy or firewall rule), or give the registry credentials only Portcullis holds"
                ),
            );
        } else {
            r.push(
                "node",
                Status::Pass,
                format!("direct route to {}", reg.name),
                format!(
                    "no TCP connection to {addr} from here: only Portcullis reaches the registry"
                ),
            );
        }
    }
}

/// `host:port` of an upstream URL (default port by scheme).
fn upstream_addr(u: &str) -> Option<String> {
    let url = url::Url::parse(u).ok()?;
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    Some(if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

/// Whether containers/image and dockerd can be routed registry `name` (they send no `?ns=`:
/// only the registry the proxy serves without one).
pub(crate) fn routable_without_ns(cfg: &Config, name: &str) -> bool {
    cfg.registry(None).is_some_and(|r| r.name == name)
}

/// 1-based line of the first line of `text` that satisfies `f`.
pub(crate) fn line_of(text: &str, f: impl Fn(&str) -> bool) -> Option<usize> {
    text.lines().position(|l| f(l.trim())).map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_addr_defaults_ports() {
        assert_eq!(
            upstream_addr("https://reg.example").as_deref(),
            Some("reg.example:443")
        );
        assert_eq!(
            upstream_addr("http://127.0.0.1:5000").as_deref(),
            Some("127.0.0.1:5000")
        );
        assert_eq!(
            upstream_addr("http://[::1]:5000").as_deref(),
            Some("[::1]:5000")
        );
    }

    #[test]
    fn text_has_one_line_per_check_and_a_summary() {
        let mut r = Report::default();
        r.push("containerd", Status::Fail, "hosts.toml", "x");
        r.push("node", Status::Warn, "route", "y");
        let t = r.text();
        assert!(t.starts_with("FAIL containerd "), "{t}");
        assert!(
            t.contains("NOT ENFORCED: 0 passed, 1 warnings, 1 failed"),
            "{t}"
        );
    }
}
