//! The proxy under test: `portcullis serve --config FILE` on run-time loopback ports, in its own
//! tempdir, ready when `GET http://ADMIN/readyz` answers 200, killed on Drop.
//!
//! The listen and admin addresses are always set through `PORTCULLIS_SERVER__LISTEN` and
//! `PORTCULLIS_SERVER__ADMIN_LISTEN` (environment wins over the file), and `PORTCULLIS_CACHE__DIR`
//! points into the tempdir unless the config has a `[cache]` table. In the config text,
//! `{dir}` is replaced by the tempdir path (for cache dirs, password files, ...).

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::notary::Notary;
use super::proc::{CLEAN_PATH, Daemon, free_port, http_status, start_with_retry, tempdir};
use super::registry::Registry;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// Extra ways to start the proxy.
#[derive(Clone, Debug, Default)]
pub struct PortcullisOpts {
    /// More environment variables (the proxy otherwise gets a clean environment: PATH, HOME,
    /// RUST_BACKTRACE=1, and RUST_LOG when the test process has it).
    pub env: Vec<(String, String)>,
    /// Run under `faketime -f SPEC` (e.g. "+15d") to shift the proxy's clock.
    pub faketime: Option<String>,
    /// Seconds to wait for /readyz (default 30).
    pub ready_timeout_secs: Option<u64>,
    /// Files written into the proxy's directory before it starts: (relative path, content).
    pub files: Vec<(String, String)>,
    /// Run this program instead of the built `portcullis` (the harness's own tests use a stand-in).
    pub program: Option<Vec<String>>,
}

pub struct Portcullis {
    daemon: Option<Daemon>,
    listen: SocketAddr,
    admin: SocketAddr,
    config: PathBuf,
    opts: PortcullisOpts,
    dir: tempfile::TempDir,
}

impl Portcullis {
    /// Starts the proxy with `config_toml` and waits for /readyz = 200.
    pub fn start(config_toml: &str) -> Portcullis {
        Self::start_with(config_toml, PortcullisOpts::default())
    }

    pub fn start_with(config_toml: &str, opts: PortcullisOpts) -> Portcullis {
        let dir = tempdir("pc-portcullis-");
        let config = dir.path().join("portcullis.toml");
        for (name, content) in &opts.files {
            let f = dir.path().join(name);
            if let Some(parent) = f.parent() {
                fs::create_dir_all(parent).unwrap();
            }
            fs::write(&f, content).unwrap();
        }
        fs::write(
            &config,
            config_toml.replace("{dir}", &dir.path().display().to_string()),
        )
        .unwrap();
        let mut p = Portcullis {
            daemon: None,
            listen: ([127, 0, 0, 1], 0).into(),
            admin: ([127, 0, 0, 1], 0).into(),
            config,
            opts,
            dir,
        };
        let has_cache = config_toml.lines().any(|l| l.trim() == "[cache]");
        let (d, listen, admin) = start_with_retry("portcullis", |_| {
            let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            let admin: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            let d = p.spawn(listen, admin, has_cache)?;
            Ok((d, listen, admin))
        });
        p.daemon = Some(d);
        p.listen = listen;
        p.admin = admin;
        p
    }

    fn spawn(
        &self,
        listen: SocketAddr,
        admin: SocketAddr,
        has_cache: bool,
    ) -> Result<Daemon, String> {
        let mut cmd = Command::new("env");
        cmd.arg("-i")
            .arg(format!("PATH={CLEAN_PATH}"))
            .arg(format!("HOME={}", self.dir.path().display()))
            .arg("RUST_BACKTRACE=1")
            .arg(format!("PORTCULLIS_SERVER__LISTEN={listen}"))
            .arg(format!("PORTCULLIS_SERVER__ADMIN_LISTEN={admin}"));
        if !has_cache {
            cmd.arg(format!(
                "PORTCULLIS_CACHE__DIR={}",
                self.dir.path().join("cache").display()
            ));
        }
        if let Ok(v) = std::env::var("RUST_LOG") {
            cmd.arg(format!("RUST_LOG={v}"));
        }
        for (k, v) in &self.opts.env {
            cmd.arg(format!("{k}={v}"));
        }
        if let Some(ft) = &self.opts.faketime {
            super::proc::require_tool("faketime", "faketime");
            cmd.args(["faketime", "-f", ft]);
        }
        match &self.opts.program {
            Some(p) => cmd.args(p),
            None => cmd.arg(BIN),
        };
        cmd.arg("serve").arg("--config").arg(&self.config);
        let mut d = Daemon::spawn_with_cleanup(
            "portcullis",
            cmd,
            &self.dir.path().join("portcullis.log"),
            Some(self.dir.path()),
        );
        let url = format!("http://{admin}/readyz");
        let t = Duration::from_secs(self.opts.ready_timeout_secs.unwrap_or(30));
        d.wait_ready(t, || http_status(&url, &[]) == Some(200))?;
        Ok(d)
    }

    /// Stops the proxy and starts it again on the same ports, config and directory.
    pub fn restart(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop(Duration::from_secs(10));
        }
        let has_cache = fs::read_to_string(&self.config)
            .unwrap_or_default()
            .lines()
            .any(|l| l.trim() == "[cache]");
        let d = self
            .spawn(self.listen, self.admin, has_cache)
            .unwrap_or_else(|e| panic!("portcullis did not restart: {e}"));
        self.daemon = Some(d);
    }

    /// Stops the proxy (SIGTERM, then SIGKILL after `grace`).
    pub fn stop(&mut self, grace: Duration) {
        if let Some(mut d) = self.daemon.take() {
            d.stop(grace);
        }
    }

    /// `127.0.0.1:PORT` of the registry API: the mirror address for clients.
    pub fn addr(&self) -> String {
        self.listen.to_string()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// `127.0.0.1:PORT` of the admin listener.
    pub fn admin_addr(&self) -> String {
        self.admin.to_string()
    }

    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(|d| d.pid())
    }

    /// GET `path` through the proxy with every manifest type accepted: (status, body).
    pub fn get_manifest(&self, path: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-sS", "-m", "20", "-w", "\n%{http_code}"])
            .args([
                "-H",
                "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json",
            ])
            .arg(format!("{}{path}", self.url()))
            .stdin(std::process::Stdio::null())
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// The proxy's log (stdout + stderr).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("portcullis.log")).unwrap_or_default()
    }

    /// Some(status) when the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        self.daemon.as_mut().and_then(|d| d.exited())
    }

    /// Starts the proxy in front of `registry` with `notary` as trust source (see [`Portcullis::config_for`]);
    /// with registry credentials, the password file is written for it.
    pub fn start_for(registry: &Registry, notary: &Notary, mode: &str) -> Portcullis {
        Self::start_with(
            &Self::config_for(registry, notary, mode),
            Self::opts_for(registry),
        )
    }

    /// Options that write `registry`'s password file (read by [`Portcullis::registry_section`]).
    pub fn opts_for(registry: &Registry) -> PortcullisOpts {
        let mut opts = PortcullisOpts::default();
        if let Some((_, pass)) = registry.creds() {
            opts.files.push(("registry-password".into(), pass));
        }
        opts
    }

    /// A config for one registry behind the proxy with `notary` as its trust source
    /// (`mode` = enforce | audit | skip; TOFU trust pinning). Listen addresses come from the harness.
    /// With registry credentials it has `[registries.auth]` reading `{dir}/registry-password`
    /// (write it with [`PortcullisOpts::files`], as [`Portcullis::start_for`] does).
    pub fn config_for(registry: &Registry, notary: &Notary, mode: &str) -> String {
        format!(
            r#"{registry}
[registries.notary]
server = "{notary}"
ca_file = "{ca}"

[registries.notary.trust_pinning]
tofu = true
"#,
            registry = Self::registry_section(registry, mode),
            notary = notary.url(),
            ca = notary.ca_path().display(),
        )
    }

    /// `[server]` without client auth and one `[[registries]]` entry for `registry` (the
    /// default registry, in `mode`, with `[registries.auth]` when it has credentials): the
    /// start of a config, before the trust source's table.
    pub fn registry_section(registry: &Registry, mode: &str) -> String {
        let auth = match registry.creds() {
            Some((user, _)) => format!(
                "\n[registries.auth]\nusername = \"{user}\"\npassword_file = \"{{dir}}/registry-password\"\n"
            ),
            None => String::new(),
        };
        format!(
            r#"[server]
client_auth = {{ mode = "none" }}

[[registries]]
name = "{name}"
upstream = "{upstream}"
default = true
mode = "{mode}"
{auth}"#,
            name = registry.addr(),
            upstream = registry.url(),
        )
    }
}

impl Drop for Portcullis {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop(Duration::from_secs(5));
        }
    }
}
