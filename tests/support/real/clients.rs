//! Real clients pulling through a mirror address (the proxy under test, or a registry itself):
//! skopeo (registries.conf rewrite), containerd (private daemon, `ctr` with hosts.toml), podman
//! (private root, vfs). Each call returns success plus the combined output, so tests can assert
//! that the proxy's refusal reason reaches the client.
//!
//! References are `REGISTRY_HOST/REPO:TAG` as a node names them (the registry host, e.g.
//! `127.0.0.1:PORT`); `mirror` is `host:port` of what actually serves them (plain HTTP).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::proc::{CLEAN_PATH, CmdOutput, Daemon, require_tool, run, tempdir, unique};
use super::registry::sha256_hex;

/// A client's result.
#[derive(Clone, Debug)]
pub struct ClientResult {
    pub ok: bool,
    /// stdout + stderr of the client command(s).
    pub output: String,
    /// The digest of what was pulled (top-level manifest as stored by the client), when it worked.
    pub digest: Option<String>,
}

impl ClientResult {
    fn from_cmd(out: CmdOutput) -> Self {
        ClientResult {
            ok: out.ok,
            output: out.combined(),
            digest: None,
        }
    }

    /// Panics with the output unless the client succeeded.
    pub fn assert_ok(&self, what: &str) -> &Self {
        assert!(self.ok, "{what} failed:\n{}", self.output);
        self
    }

    /// Panics unless the client failed and its output contains `needle`.
    pub fn assert_refused(&self, what: &str, needle: &str) -> &Self {
        assert!(
            !self.ok,
            "{what} succeeded but should have failed:\n{}",
            self.output
        );
        assert!(
            self.output.contains(needle),
            "{what} failed, but its output lacks {needle:?}:\n{}",
            self.output
        );
        self
    }
}

/// Splits `HOST/REPO:TAG` into (HOST, REPO:TAG).
pub fn split_host(reference: &str) -> (&str, &str) {
    reference
        .split_once('/')
        .expect("reference must be HOST/REPO:TAG")
}

fn auth_json(hosts: &[&str], creds: Option<(&str, &str)>) -> String {
    match creds {
        None => r#"{"auths":{}}"#.to_string(),
        Some((u, p)) => {
            let b = STANDARD.encode(format!("{u}:{p}"));
            let entries: Vec<String> = hosts
                .iter()
                .map(|h| format!(r#""{h}":{{"auth":"{b}"}}"#))
                .collect();
            format!(r#"{{"auths":{{{}}}}}"#, entries.join(","))
        }
    }
}

fn registries_conf(registry_host: &str, mirror: &str) -> String {
    format!(
        "unqualified-search-registries = []\n\n[[registry]]\nprefix = \"{registry_host}\"\nlocation = \"{mirror}\"\ninsecure = true\n"
    )
}

const POLICY: &str = r#"{"default":[{"type":"insecureAcceptAnything"}]}"#;

/// Private containers/image settings for skopeo: registries.conf with `prefix=REGISTRY_HOST`
/// `location=MIRROR` (no fallback to the registry), a permissive policy.json, and an auth file
/// (containers/image drops `--creds` for rewritten endpoints, so creds go in the file under
/// both the registry host and the mirror host).
pub struct SkopeoEnv {
    dir: tempfile::TempDir,
}

impl SkopeoEnv {
    pub fn new(registry_host: &str, mirror: &str, creds: Option<(String, String)>) -> SkopeoEnv {
        require_tool("skopeo", "skopeo");
        let dir = tempdir("pc-skopeo-");
        fs::write(
            dir.path().join("registries.conf"),
            registries_conf(registry_host, mirror),
        )
        .unwrap();
        fs::write(dir.path().join("policy.json"), POLICY).unwrap();
        let c = creds.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
        fs::write(
            dir.path().join("auth.json"),
            auth_json(&[registry_host, mirror], c),
        )
        .unwrap();
        fs::create_dir_all(dir.path().join("tmp")).unwrap();
        SkopeoEnv { dir }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `skopeo --registries-conf .. --policy ..` with REGISTRY_AUTH_FILE and TMPDIR set.
    pub fn command(&self) -> Command {
        let d = self.dir.path();
        let mut cmd = Command::new("skopeo");
        cmd.arg("--registries-conf")
            .arg(d.join("registries.conf"))
            .arg("--policy")
            .arg(d.join("policy.json"))
            .env("REGISTRY_AUTH_FILE", d.join("auth.json"))
            .env("TMPDIR", d.join("tmp"));
        cmd
    }
}

/// `skopeo copy --all docker://REFERENCE dir:DIR` through `mirror`. The digest is that of the
/// manifest bytes as received (dir: keeps them; for an index, the index).
pub fn skopeo_pull(mirror: &str, reference: &str, creds: Option<(&str, &str)>) -> ClientResult {
    let (host, _) = split_host(reference);
    let env = SkopeoEnv::new(
        host,
        mirror,
        creds.map(|(u, p)| (u.to_string(), p.to_string())),
    );
    let dest = env.dir().join("image");
    let mut cmd = env.command();
    cmd.args(["copy", "--all", "--retry-times", "0"])
        .arg(format!("docker://{reference}"))
        .arg(format!("dir:{}", dest.display()));
    let out = run(&mut cmd);
    let mut r = ClientResult::from_cmd(out);
    if r.ok {
        r.digest = fs::read(dest.join("manifest.json"))
            .ok()
            .map(|b| format!("sha256:{}", sha256_hex(&b)));
    }
    r
}

/// A private containerd (own root, state, socket; CRI plugin off) for `ctr` pulls and runs.
/// Drop kills leftover tasks, stops the daemon and unmounts what it left under its root.
pub struct Containerd {
    daemon: Option<Daemon>,
    sock: PathBuf,
    snapshotter: String,
    namespace: String,
    dir: tempfile::TempDir,
}

impl Containerd {
    pub fn start() -> Containerd {
        require_tool("containerd", "containerd");
        require_tool("ctr", "containerd");
        require_tool("runc", "runc");
        let dir = tempdir("pc-ctrd-");
        let d = dir.path();
        let sock = d.join("c.sock");
        let config = d.join("config.toml");
        fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n\
                 [debug]\n  address = \"{d}/debug.sock\"\n  level = \"info\"\n[metrics]\n  address = \"\"\n",
                root = d.join("root").display(),
                state = d.join("state").display(),
                sock = sock.display(),
                d = d.display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new("env");
        cmd.args([
            "-i",
            &format!("PATH={CLEAN_PATH}"),
            "containerd",
            "--config",
        ])
        .arg(&config);
        let mut daemon = Daemon::spawn("containerd", cmd, &d.join("containerd.log"));
        let s = sock.clone();
        daemon
            .wait_ready(Duration::from_secs(30), || {
                Command::new("ctr")
                    .arg("--address")
                    .arg(&s)
                    .arg("version")
                    .output()
                    .map(|o| o.status.success())
                    .unwrap_or(false)
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let mut c = Containerd {
            daemon: Some(daemon),
            sock,
            snapshotter: "native".into(),
            namespace: "portcullis".into(),
            dir,
        };
        let plugins = c.ctr(&["plugins", "ls"]).stdout;
        if plugins.lines().any(|l| {
            l.contains("io.containerd.snapshotter.v1")
                && l.contains("overlayfs")
                && l.trim_end().ends_with("ok")
        }) {
            c.snapshotter = "overlayfs".into();
        }
        c
    }

    /// The snapshotter in use (overlayfs when it works here, else native).
    pub fn snapshotter(&self) -> &str {
        &self.snapshotter
    }

    pub fn socket(&self) -> &Path {
        &self.sock
    }

    pub fn log(&self) -> String {
        self.daemon.as_ref().map(|d| d.log()).unwrap_or_default()
    }

    /// `ctr --address SOCK --namespace NS ARGS...`
    pub fn ctr(&self, args: &[&str]) -> CmdOutput {
        run(Command::new("ctr")
            .arg("--address")
            .arg(&self.sock)
            .args(["--namespace", &self.namespace])
            .args(args))
    }

    /// Writes `HOSTS/REGISTRY_HOST/hosts.toml` whose `server` AND `[host]` are the mirror, so
    /// containerd cannot quietly fall back to the registry.
    pub fn hosts_dir(&self, registry_host: &str, mirror: &str) -> PathBuf {
        let h = self.dir.path().join(format!("hosts-{}", unique()));
        fs::create_dir_all(h.join(registry_host)).unwrap();
        fs::write(
            h.join(registry_host).join("hosts.toml"),
            format!(
                "server = \"http://{mirror}\"\n\n[host.\"http://{mirror}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
            ),
        )
        .unwrap();
        h
    }

    /// Forgets `reference` and every content blob, so that the next pull fetches everything.
    pub fn forget(&self, reference: &str) {
        self.ctr(&["images", "rm", reference]);
        let ls = self.ctr(&["content", "ls", "-q"]).stdout;
        let digests: Vec<&str> = ls.split_whitespace().collect();
        if !digests.is_empty() {
            let mut args = vec!["content", "rm"];
            args.extend(digests);
            self.ctr(&args);
        }
    }

    /// `ctr images pull --hosts-dir` through `mirror` (after [`Containerd::forget`]).
    pub fn pull(&self, mirror: &str, reference: &str, creds: Option<(&str, &str)>) -> ClientResult {
        self.pull_with(mirror, reference, creds, &[])
    }

    /// Like [`Containerd::pull`] with extra `ctr images pull` flags (e.g. `--all-platforms`).
    pub fn pull_with(
        &self,
        mirror: &str,
        reference: &str,
        creds: Option<(&str, &str)>,
        extra: &[&str],
    ) -> ClientResult {
        let (host, _) = split_host(reference);
        self.forget(reference);
        let hosts = self.hosts_dir(host, mirror);
        let hosts_s = hosts.display().to_string();
        let user = creds.map(|(u, p)| format!("{u}:{p}"));
        let mut args = vec![
            "images",
            "pull",
            "--snapshotter",
            &self.snapshotter,
            "--hosts-dir",
            &hosts_s,
        ];
        if let Some(u) = &user {
            args.extend(["--user", u.as_str()]);
        }
        args.extend(extra);
        args.push(reference);
        let mut r = ClientResult::from_cmd(self.ctr(&args));
        if r.ok {
            r.digest = self.image_digest(reference);
        }
        r
    }

    /// The digest containerd recorded for `reference` (`ctr images ls`).
    pub fn image_digest(&self, reference: &str) -> Option<String> {
        let ls = self.ctr(&["images", "ls"]).stdout;
        ls.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.first() == Some(&reference))
            .and_then(|f| {
                f.iter()
                    .find(|x| x.starts_with("sha256:"))
                    .map(|s| s.to_string())
            })
    }

    /// `ctr run --rm REFERENCE ID [ARGS]` of a pulled image (60 s limit).
    pub fn run(&self, reference: &str, args: &[&str]) -> ClientResult {
        let id = format!("pc-{}-{}", std::process::id(), unique());
        let mut a = vec![
            "run",
            "--rm",
            "--snapshotter",
            &self.snapshotter,
            reference,
            &id,
        ];
        a.extend(args);
        let out = run(Command::new("timeout")
            .arg("60")
            .arg("ctr")
            .arg("--address")
            .arg(&self.sock)
            .args(["--namespace", &self.namespace])
            .args(&a));
        ClientResult::from_cmd(out)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // tasks' shims live in their own process groups: end them through containerd
        let tasks = self.ctr(&["tasks", "ls", "-q"]).stdout;
        for t in tasks.split_whitespace() {
            self.ctr(&["tasks", "kill", "-s", "SIGKILL", t]);
            std::thread::sleep(Duration::from_millis(200));
            self.ctr(&["tasks", "rm", "-f", t]);
            self.ctr(&["containers", "rm", t]);
        }
        if let Some(mut d) = self.daemon.take() {
            d.stop(Duration::from_secs(5));
        }
        unmount_under(self.dir.path());
    }
}

/// Unmounts every mount point under `dir` (deepest first).
pub fn unmount_under(dir: &Path) {
    let prefix = format!("{}/", dir.display());
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    points.sort();
    points.reverse();
    for m in points {
        let ok = Command::new("umount")
            .arg(m)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
    }
}

/// podman with a private root, runroot and tmpdir (vfs, cgroupfs, file events), registries.conf
/// rewriting the registry host to the mirror, a permissive policy and a private auth file.
pub struct Podman {
    dir: tempfile::TempDir,
}

impl Default for Podman {
    fn default() -> Self {
        Self::new()
    }
}

impl Podman {
    pub fn new() -> Podman {
        require_tool("podman", "podman");
        require_tool("conmon", "conmon");
        require_tool("runc", "runc");
        let dir = tempdir("pc-podman-");
        for sub in ["root", "runroot", "tmp", "conf"] {
            fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        fs::write(dir.path().join("conf/policy.json"), POLICY).unwrap();
        fs::write(dir.path().join("conf/auth.json"), auth_json(&[], None)).unwrap();
        fs::write(
            dir.path().join("conf/registries.conf"),
            "unqualified-search-registries = []\n",
        )
        .unwrap();
        Podman { dir }
    }

    /// `podman --root .. --runroot .. --tmpdir .. --storage-driver vfs ...` with the private files.
    pub fn command(&self) -> Command {
        let d = self.dir.path();
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ])
            .env("CONTAINERS_REGISTRIES_CONF", d.join("conf/registries.conf"))
            .env("REGISTRY_AUTH_FILE", d.join("conf/auth.json"))
            .env("TMPDIR", d.join("tmp"));
        cmd
    }

    /// `podman pull REFERENCE` through `mirror`, into an emptied store.
    pub fn pull(&self, mirror: &str, reference: &str, creds: Option<(&str, &str)>) -> ClientResult {
        let (host, _) = split_host(reference);
        let conf = self.dir.path().join("conf");
        fs::write(conf.join("registries.conf"), registries_conf(host, mirror)).unwrap();
        fs::write(conf.join("auth.json"), auth_json(&[host, mirror], creds)).unwrap();
        // an empty store for every pull: nothing is served from local layers, and the digest
        // podman records is the one just pulled (it merges images that share a config)
        let _ = run(self.command().args(["rm", "-af", "-t", "0"]));
        let _ = run(self.command().args(["rmi", "-af"]));
        let mut cmd = self.command();
        cmd.args(["pull", "--signature-policy"])
            .arg(conf.join("policy.json"))
            .arg(reference);
        let mut r = ClientResult::from_cmd(run(&mut cmd));
        if r.ok {
            let out = run(self.command().args([
                "image",
                "inspect",
                "--format",
                "{{.Digest}}",
                reference,
            ]));
            r.digest = Some(out.stdout.trim().to_string()).filter(|s| s.starts_with("sha256:"));
        }
        r
    }

    /// `podman run --rm` of a pulled image (no network; the ulimits this sandbox needs).
    pub fn run(&self, reference: &str, args: &[&str]) -> ClientResult {
        let mut cmd = Command::new("timeout");
        let inner = self.command();
        cmd.arg("60")
            .arg(inner.get_program())
            .args(inner.get_args());
        for (k, v) in inner.get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        cmd.args([
            "run",
            "--rm",
            "--pull",
            "never",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            reference,
        ])
        .args(args);
        ClientResult::from_cmd(run(&mut cmd))
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = run(self.command().args(["rm", "-af", "-t", "0"]));
        unmount_under(self.dir.path());
    }
}
