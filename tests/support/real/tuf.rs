//! Plain TUF 1.0 repositories for the tests of the `tuf` trust source: made with python-tuf's
//! Metadata API by `tests/harness/mktuf.py` (the repository described as JSON: see its
//! docstring), served over HTTP on a loopback port by a real static server
//! (`python3 -m http.server`), with python-tuf's own client (`tests/harness/tufcheck.py`) as
//! the reference verdict a test can hold Portcullis to.
//!
//! ```ignore
//! let reg = Registry::start(RegistryAuth::None);
//! let img = images::push(&reg, "demo/app", "v1", &ImageSpec::single("hi"), Format::Oci);
//! let mut repo = TufRepo::new(&json!({"targets": {"demo/app:v1": tuf::target(&img)}}));
//! let proxy = repo.start_portcullis(&reg, "enforce", &TufOpts::default());
//! skopeo_pull(&proxy.addr(), &format!("{}/demo/app:v1", reg.addr()), None).assert_ok("v1");
//! repo.publish(&json!({"targets": {}}));   // generation 2: every role re-signed, v1 removed
//! ```
//!
//! python-tuf lives in the venv `scripts/install-test-deps.sh` makes ([`TUF_PYTHON`]); without
//! it the tests fail, naming that script.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};

use super::images::ImageInfo;
use super::portcullis::Portcullis;
use super::proc::{
    CmdOutput, Daemon, free_port, http_status, require_tool, run, start_with_retry, tempdir,
};
use super::registry::{MANIFEST_ACCEPT, Registry};

/// The python with python-tuf 7.0.1 (installed by `scripts/install-test-deps.sh`).
pub const TUF_PYTHON: &str = "/opt/portcullis-test-venv/bin/python3";
const MKTUF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/harness/mktuf.py");
const TUFCHECK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/harness/tufcheck.py");
/// The static server's python (stdlib only).
const SERVER_PYTHON: &str = "/usr/bin/python3";

/// [`TUF_PYTHON`], after checking once that python-tuf imports there; panics (never skips)
/// naming the script that installs it.
pub fn tuf_python() -> &'static str {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let r = CHECKED.get_or_init(|| {
        let out = Command::new(TUF_PYTHON)
            .args([
                "-c",
                "import tuf.api.metadata, tuf.ngclient, securesystemslib.signer, cryptography",
            ])
            .output();
        match out {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(String::from_utf8_lossy(&o.stderr).into_owned()),
            Err(e) => Err(e.to_string()),
        }
    });
    if let Err(e) = r {
        panic!(
            "python-tuf does not import with {TUF_PYTHON} ({e}): run scripts/install-test-deps.sh \
             (as root), which installs tuf==7.0.1 and securesystemslib[crypto] into \
             /opt/portcullis-test-venv"
        );
    }
    TUF_PYTHON
}

/// The target entry that signs `img` as the registry serves it: length and sha256 of the
/// manifest bytes, and its media type (`custom.mediaType`).
pub fn target(img: &ImageInfo) -> Value {
    json!({"length": img.size, "sha256": img.sha256_hex(), "mediaType": img.media_type})
}

/// The target entry that signs `bytes` (length and sha256).
pub fn target_entry(bytes: &[u8]) -> Value {
    use sha2::Digest as _;
    json!({"length": bytes.len(), "sha256": hex::encode(sha2::Sha256::digest(bytes))})
}

/// How the proxy is pointed at a [`TufRepo`] (`[registries.tuf]`).
#[derive(Clone, Debug)]
pub struct TufOpts {
    /// `{repository}:{tag}` (default) or `{tag}`.
    pub target_name: String,
    pub required_roles: Vec<String>,
    /// Default "1s": tests publish and expect the proxy to see it soon (the product's is "5m").
    pub refresh_interval: String,
    /// Instead of the repository's own URL (e.g. one with `{repository}`).
    pub metadata_url: Option<String>,
    /// More lines for `[registries.tuf]`.
    pub extra: String,
}

impl Default for TufOpts {
    fn default() -> Self {
        TufOpts {
            target_name: "{repository}:{tag}".into(),
            required_roles: vec![],
            refresh_interval: "1s".into(),
            metadata_url: None,
            extra: String::new(),
        }
    }
}

/// python-tuf's verdict (see `tests/harness/tufcheck.py`).
#[derive(Clone, Debug)]
pub struct Verdict {
    /// The refresh's error, if it failed.
    pub refresh: Option<String>,
    /// Per name: null (not a target), {"length", "sha256"}, or {"error"}.
    pub targets: BTreeMap<String, Value>,
}

impl Verdict {
    /// The sha256 python-tuf trusts for `name`, if any.
    pub fn sha256(&self, name: &str) -> Option<String> {
        self.targets
            .get(name)
            .and_then(|v| v.get("sha256"))
            .and_then(|s| s.as_str())
            .map(str::to_owned)
    }
}

/// A TUF repository made by mktuf.py and served on `127.0.0.1:PORT/metadata/`.
pub struct TufRepo {
    dir: tempfile::TempDir,
    port: u16,
    server: Option<Daemon>,
    generation: u64,
}

impl TufRepo {
    /// Generation 1 from `spec` (keys made now), served at once.
    pub fn new(spec: &Value) -> TufRepo {
        require_tool(SERVER_PYTHON, "python3");
        let dir = tempdir("pc-tuf-");
        fs::create_dir_all(dir.path().join("www")).unwrap();
        // Only metadata/ is served; keys/ and the history stay out of reach.
        std::os::unix::fs::symlink("../repo/metadata", dir.path().join("www/metadata"))
            .expect("symlink www/metadata");
        let mut repo = TufRepo {
            dir,
            port: 0,
            server: None,
            generation: 0,
        };
        repo.publish(spec);
        let (server, port) = start_with_retry("tuf metadata server", |_| {
            let port = free_port();
            repo.spawn_server(port).map(|d| (d, port))
        });
        repo.server = Some(server);
        repo.port = port;
        repo
    }

    /// The next generation from `spec` (the whole repository as it should be now; every role
    /// re-signed with its version bumped). Returns mktuf.py's summary (versions, keyids).
    pub fn publish(&mut self, spec: &Value) -> Value {
        let mut child = Command::new(tuf_python())
            .arg(MKTUF)
            .arg(self.dir.path().join("repo"))
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run mktuf.py");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(spec.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().expect("mktuf.py runs");
        assert!(
            out.status.success(),
            "mktuf.py failed on {spec}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.generation += 1;
        serde_json::from_slice(&out.stdout).expect("mktuf.py prints a JSON summary")
    }

    fn spawn_server(&self, port: u16) -> Result<Daemon, String> {
        let mut cmd = Command::new(SERVER_PYTHON);
        cmd.args([
            "-u",
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(self.dir.path().join("www"))
        .arg(port.to_string());
        let mut d = Daemon::spawn("tuf metadata server", cmd, &self.log_path());
        let url = format!("http://127.0.0.1:{port}/metadata/timestamp.json");
        d.wait_ready(Duration::from_secs(10), || http_status(&url, &[]).is_some())?;
        Ok(d)
    }

    /// Stops serving (the repository goes offline; a later [`TufRepo::start`] serves again).
    pub fn stop(&mut self) {
        if let Some(mut d) = self.server.take() {
            d.stop(Duration::from_secs(5));
        }
    }

    /// Serves again, on the same port.
    pub fn start(&mut self) {
        if self.server.is_none() {
            let d = self
                .spawn_server(self.port)
                .unwrap_or_else(|e| panic!("tuf metadata server did not restart: {e}"));
            self.server = Some(d);
        }
    }

    /// `http://127.0.0.1:PORT/metadata/` (the metadata base URL).
    pub fn metadata_url(&self) -> String {
        format!("http://127.0.0.1:{}/metadata/", self.port)
    }

    /// The served files.
    pub fn metadata_dir(&self) -> PathBuf {
        self.dir.path().join("repo/metadata")
    }

    /// Serves the metadata at `/PATH/` too (e.g. `demo/app/metadata`, for a `metadata_url`
    /// with `{repository}`).
    pub fn serve_also_at(&self, path: &str) {
        let link = self.dir.path().join("www").join(path);
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(self.metadata_dir(), &link).expect("symlink metadata");
    }

    /// Serves `bytes` as target file `name` at `/targets/` under both names a client may ask
    /// for (`<sha256>.<name>` with consistent snapshots, and `<name>`). Sign the entry with
    /// [`target_entry`] in the spec; serving other bytes than signed is how a test tampers.
    pub fn serve_target(&self, name: &str, bytes: &[u8]) {
        use sha2::Digest as _;
        let dir = self.dir.path().join("www/targets");
        fs::create_dir_all(&dir).unwrap();
        let sha = hex::encode(sha2::Sha256::digest(bytes));
        fs::write(dir.join(format!("{sha}.{name}")), bytes).unwrap();
        fs::write(dir.join(name), bytes).unwrap();
    }

    /// `http://127.0.0.1:PORT/targets/` (where [`TufRepo::serve_target`] puts files).
    pub fn targets_url(&self) -> String {
        format!("http://127.0.0.1:{}/targets/", self.port)
    }

    /// Version 1 of root: the file a client pins.
    pub fn root_file(&self) -> PathBuf {
        self.dir.path().join("repo/root.json")
    }

    /// mktuf.py's output directory (metadata/, keys/, history/).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    /// How many generations were published.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("http.log")
    }

    /// The server's request log (one line per request: `"GET /metadata/2.targets.json ..." 200`).
    pub fn requests(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// python-tuf's verdict on `names` as a new client (trusting only the pinned root) sees
    /// the repository now.
    pub fn reference(&self, names: &[&str]) -> Verdict {
        let state = tempdir("pc-tufcheck-");
        self.reference_in(state.path(), names)
    }

    /// python-tuf's verdict with its state kept in `state`: a client that remembers what it
    /// verified in earlier calls with the same directory (rollback, rotation).
    pub fn reference_in(&self, state: &Path, names: &[&str]) -> Verdict {
        let out = run(Command::new(tuf_python())
            .arg(TUFCHECK)
            .arg(self.metadata_url())
            .arg(self.root_file())
            .arg(state)
            .args(names));
        assert!(out.ok, "tufcheck.py failed: {}", out.combined());
        let v: Value = serde_json::from_str(&out.stdout).expect("tufcheck.py prints JSON");
        Verdict {
            refresh: v["refresh"].as_str().map(str::to_owned),
            targets: v["targets"]
                .as_object()
                .map(|m| m.clone().into_iter().collect())
                .unwrap_or_default(),
        }
    }

    /// A proxy config for one registry behind it with this repository as its trust source
    /// (`mode` = enforce | audit | skip), as [`Portcullis::config_for`] makes for Notary.
    pub fn portcullis_config(&self, registry: &Registry, mode: &str) -> String {
        self.portcullis_config_with(registry, mode, &TufOpts::default())
    }

    pub fn portcullis_config_with(&self, registry: &Registry, mode: &str, o: &TufOpts) -> String {
        let roles: Vec<String> = o.required_roles.iter().map(|r| format!("{r:?}")).collect();
        format!(
            r#"{registry}
[registries.tuf]
metadata_url = "{url}"
root_file = "{root}"
target_name = "{target_name}"
required_roles = [{roles}]
refresh_interval = "{refresh}"
{extra}
"#,
            registry = Portcullis::registry_section(registry, mode),
            url = o
                .metadata_url
                .clone()
                .unwrap_or_else(|| self.metadata_url()),
            root = self.root_file().display(),
            target_name = o.target_name,
            roles = roles.join(", "),
            refresh = o.refresh_interval,
            extra = o.extra,
        )
    }

    /// Starts the proxy with [`TufRepo::portcullis_config_with`] (writing the registry's
    /// password file when it has credentials).
    pub fn start_portcullis(&self, registry: &Registry, mode: &str, o: &TufOpts) -> Portcullis {
        let config = self.portcullis_config_with(registry, mode, o);
        Portcullis::start_with(&config, Portcullis::opts_for(registry))
    }
}

/// The proxy's TUF state directory (`cache.dir/tuf/<sha256 of the metadata URL>/`); panics
/// unless there is exactly one.
pub fn state_dir(proxy: &Portcullis) -> PathBuf {
    let root = proxy.dir().join("cache/tuf");
    let dirs: Vec<PathBuf> = fs::read_dir(&root)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        dirs.len(),
        1,
        "TUF state dirs under {}: {dirs:?}",
        root.display()
    );
    dirs.into_iter().next().unwrap()
}

/// `portcullis check --config CONFIG REFERENCE` with its own cache dir `cache` (exit 0 =
/// trusted); stdout+stderr in the result.
pub fn check(proxy: &Portcullis, reference: &str, cache: &Path) -> CmdOutput {
    run(Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("check")
        .arg("--config")
        .arg(proxy.config_path())
        .arg(reference)
        .env("PORTCULLIS_CACHE__DIR", cache))
}

/// GET `/v2/REPO/manifests/TAG` through the proxy: (status, body).
pub fn manifest_get(proxy: &Portcullis, repo: &str, tag: &str) -> (u16, String) {
    let out = run(Command::new("curl")
        .args(["-sS", "-m", "30", "-w", "\n%{http_code}", "-H"])
        .arg(format!("Accept: {MANIFEST_ACCEPT}"))
        .arg(format!("{}/v2/{repo}/manifests/{tag}", proxy.url())));
    let (body, code) = out.stdout.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// Polls [`manifest_get`] until `want(status, body)` (30 s at most); the last answer.
pub fn wait_manifest(
    proxy: &Portcullis,
    repo: &str,
    tag: &str,
    mut want: impl FnMut(u16, &str) -> bool,
) -> (u16, String) {
    let mut last = (0, String::new());
    super::proc::wait_until(Duration::from_secs(30), || {
        last = manifest_get(proxy, repo, tag);
        want(last.0, &last.1)
    });
    last
}

/// The repository of `tests/e2e_tuf.rs` (and of its python-tuf check in `harness_tuf.rs`),
/// with `t(name)` as the target entry of each name it signs:
/// - `targets`: `demo/app:v1`, `demo/app:v1-docker`, `demo/app:lies`, `demo/app:ghost`;
/// - `gate` (terminating, paths `demo/app:hidden*`, searched first): nothing, so it hides
///   `demo/app:hidden` from its siblings;
/// - `releases` (ECDSA, paths `demo/*`): `demo/app:multi`, `demo/app:hidden`, and
///   `demo/sub/app:v3`, which `demo/*` does not cover (`*` stays within one path segment);
/// - `team` under `releases` (ECDSA, paths `demo/app:v2*`): `demo/app:v2`, two levels down;
/// - four hash bins (`bin-0-3` ... `bin-c-f`, path_hash_prefixes): `demo/app:binned`.
pub fn layered_spec(t: impl Fn(&str) -> Value) -> Value {
    let named =
        |names: &[&str]| -> Value { names.iter().map(|n| ((*n).to_owned(), t(n))).collect() };
    json!({
        "keys": {"releases": "ecdsa", "team": "ecdsa"},
        "targets": named(&["demo/app:v1", "demo/app:v1-docker", "demo/app:lies", "demo/app:ghost"]),
        "delegations": [
            {"name": "gate", "keys": ["gate"], "terminating": true,
             "paths": ["demo/app:hidden*"], "targets": {}},
            {"name": "releases", "keys": ["releases"], "paths": ["demo/*"],
             "targets": named(&["demo/app:multi", "demo/app:hidden", "demo/sub/app:v3"]),
             "delegations": [
                {"name": "team", "keys": ["team"], "paths": ["demo/app:v2*"],
                 "targets": named(&["demo/app:v2"])}
             ]}
        ],
        "hash_bins": {"bins": 4, "keys": ["bins"], "targets": named(&["demo/app:binned"])}
    })
}

/// A target entry for bytes nobody serves (`n` makes it unique): for tests of the repository
/// alone.
pub fn fake_target(n: u8) -> Value {
    json!({"length": 100 + u64::from(n), "sha256": format!("{n:02x}").repeat(32)})
}
