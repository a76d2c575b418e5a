//! Drives `portcullis check` as a black box: writes a config, runs the binary with a time
//! limit, and returns what it said.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The registry name configured for every test; only a name (no registry is contacted).
pub const REGISTRY: &str = "127.0.0.1:5000";
/// The repository every test signs.
pub const REPO: &str = "demo/app";

/// The GUN of [`REPO`] under the default `gun_template`.
pub fn gun() -> String {
    format!("{REGISTRY}/{REPO}")
}

/// The image reference `portcullis check` takes for `tag`.
pub fn image(tag: &str) -> String {
    format!("{REGISTRY}/{REPO}:{tag}")
}

/// The root of trust a test configures.
#[derive(Clone, Debug)]
pub enum Pinning {
    /// `tofu = true`: the first root seen for a GUN is persisted.
    Tofu,
    /// `certs = { "<GUN glob>" = [ids] }`, `tofu = false`.
    Certs { glob: String, ids: Vec<String> },
}

/// A cache dir and a config file pointing at a notary server.
pub struct Env {
    pub dir: TempDir,
    pub config: PathBuf,
}

impl Env {
    /// A fresh cache dir and a config for `notary_url` with TOFU.
    pub fn new(notary_url: &str) -> Env {
        Env::with_pinning(notary_url, Pinning::Tofu)
    }

    pub fn with_pinning(notary_url: &str, pinning: Pinning) -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("portcullis.toml");
        let env = Env { dir, config };
        env.write_config(notary_url, &pinning);
        env
    }

    /// The `[cache] dir` the check persists its state in.
    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// (Re)writes the config, e.g. to point at another server with the same cache.
    pub fn write_config(&self, notary_url: &str, pinning: &Pinning) {
        let pinning = match pinning {
            Pinning::Tofu => "tofu = true".to_string(),
            Pinning::Certs { glob, ids } => {
                let ids: Vec<String> = ids.iter().map(|i| format!("{i:?}")).collect();
                format!(
                    "tofu = false\ncerts = {{ {glob:?} = [{}] }}",
                    ids.join(", ")
                )
            }
        };
        let text = format!(
            r#"[cache]
dir = {cache:?}

[[registries]]
name = "{REGISTRY}"
upstream = "http://127.0.0.1:9"
default = true

[registries.notary]
server = "{notary_url}"
refresh_interval_secs = 1

[registries.notary.trust_pinning]
{pinning}
"#,
            cache = self.cache_dir().display().to_string(),
        );
        std::fs::write(&self.config, text).expect("write config");
    }

    /// Runs `portcullis check --config <config> <image(tag)>`; kills it after `limit`.
    pub async fn check_within(&self, tag: &str, limit: Duration) -> Outcome {
        run_check(&self.config, &image(tag), limit).await
    }

    /// [`Env::check_within`] with a 60 s limit.
    pub async fn check(&self, tag: &str) -> Outcome {
        self.check_within(tag, Duration::from_secs(60)).await
    }

    /// Lets the refresh interval (1 s) pass, so that the next check goes to the server
    /// rather than answering from metadata it considers fresh.
    pub async fn let_refresh_pass(&self) {
        tokio::time::sleep(Duration::from_millis(1300)).await;
    }
}

/// What one `portcullis check` run did.
#[derive(Debug)]
pub struct Outcome {
    /// `None` when the process was killed at the time limit.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Outcome {
    /// stdout and stderr together, lower-cased, for matching reasons.
    pub fn text(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr).to_lowercase()
    }

    /// Asserts exit 0 and that the output names `digest` and the signing `role`.
    #[track_caller]
    pub fn assert_trusted(&self, digest: &str, role: &str) {
        assert_eq!(self.code, Some(0), "expected trusted (exit 0): {self:#?}");
        assert!(
            self.stdout.contains(digest),
            "digest {digest} not printed: {self:#?}"
        );
        assert!(
            self.text().contains(role),
            "role {role} not named: {self:#?}"
        );
    }

    /// Asserts exit 1 and that the output contains one of `reasons` and, when given, `role`
    /// (case-insensitive).
    #[track_caller]
    pub fn assert_refused(&self, reasons: &[&str], role: Option<&str>) {
        assert_eq!(self.code, Some(1), "expected refused (exit 1): {self:#?}");
        let text = self.text();
        assert!(
            reasons.iter().any(|r| text.contains(&r.to_lowercase())),
            "none of {reasons:?} in the output: {self:#?}"
        );
        if let Some(role) = role {
            assert!(text.contains(role), "role {role} not named: {self:#?}");
        }
    }

    /// Asserts that no digest was printed (a refusal must not leak a digest).
    #[track_caller]
    pub fn assert_no_digest(&self, digest: &str) {
        assert!(
            !self.text().contains(digest),
            "refused but printed {digest}: {self:#?}"
        );
    }
}

/// The `portcullis` binary Cargo built for these tests.
pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_portcullis"))
}

async fn run_check(config: &Path, image: &str, limit: Duration) -> Outcome {
    let start = Instant::now();
    let child = tokio::process::Command::new(binary())
        .arg("check")
        .arg("--config")
        .arg(config)
        .arg(image)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn portcullis");
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(out) => {
            let out = out.expect("wait for portcullis");
            Outcome {
                code: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                elapsed: start.elapsed(),
            }
        }
        // Dropping the future drops the child, which kill_on_drop kills.
        Err(_) => Outcome {
            code: None,
            stdout: String::new(),
            stderr: format!("killed after {limit:?}"),
            elapsed: start.elapsed(),
        },
    }
}
