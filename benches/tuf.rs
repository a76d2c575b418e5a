//! Plain TUF trust source benchmark (rerun with `cargo bench --bench tuf`; needs python-tuf,
//! installed by scripts/install-test-deps.sh into /opt/portcullis-test-venv, or TUF_PYTHON):
//! 1. tag resolution cost with warm metadata (what a pull by tag adds at p50/p99): a tag in the
//!    top-level `targets` and a tag in the last of ROLES delegated roles (default 1,000);
//! 2. the first resolution of each of the ROLES roles (each role fetched and verified once);
//! 3. a refresh after one of the ROLES roles changed: time, files and bytes fetched;
//! 4. a restart (new source, same state directory): time, files and bytes fetched.
//!
//! The repository is made with python-tuf (bench/tuf_repo.py) and served by `python3 -m
//! http.server` on loopback; bytes are the sizes of the files its log says were sent.
//! Written to bench/results/<UTC>-tuf.md and printed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis::config::TufConfig;
use portcullis::refs::{RepoName, Tag};
use portcullis::trust::TrustSource;
use portcullis::trust::tuf::TufSource;

fn python() -> String {
    let py = std::env::var("TUF_PYTHON")
        .unwrap_or_else(|_| "/opt/portcullis-test-venv/bin/python3".to_owned());
    let ok = Command::new(&py)
        .args(["-c", "import tuf.api.metadata"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{py} cannot import tuf: run scripts/install-test-deps.sh (or set TUF_PYTHON)"
    );
    py
}

fn run(py: &str, args: &[&str]) {
    let st = Command::new(py)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/bench/tuf_repo.py"))
        .args(args)
        .status()
        .expect("python");
    assert!(st.success(), "tuf_repo.py {args:?} failed");
}

struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
    dir: PathBuf,
}

impl Server {
    fn start(py: &str, dir: &Path, log: &Path) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(py)
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Server {
            child,
            port,
            log: log.to_owned(),
            dir: dir.to_owned(),
        }
    }

    fn log_len(&self) -> usize {
        std::fs::read_to_string(&self.log).map_or(0, |s| s.len())
    }

    /// Files answered 200 since `mark` (a log length), and their bytes.
    fn fetched_since(&self, mark: usize) -> (usize, u64, Vec<String>) {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let (mut n, mut bytes, mut names) = (0, 0, vec![]);
        for line in log[mark.min(log.len())..].lines() {
            let Some(path) = line
                .split("\"GET ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
            else {
                continue;
            };
            if !line.contains("\" 200 ") {
                continue;
            }
            n += 1;
            bytes += std::fs::metadata(self.dir.join(path.trim_start_matches('/')))
                .map_or(0, |m| m.len());
            names.push(path.rsplit('/').next().unwrap_or(path).to_owned());
        }
        (n, bytes, names)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn warm(source: &TufSource, repo: &RepoName, tag: &Tag, n: usize) -> (f64, f64) {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        source.resolve(repo, tag).await.expect("warm resolve");
        v.push(t.elapsed().as_secs_f64() * 1e6);
    }
    v.sort_by(f64::total_cmp);
    (percentile(&v, 0.5), percentile(&v, 0.99))
}

fn source(cfg: &TufConfig, cache: &Path) -> TufSource {
    TufSource::new(cfg, cache).expect("source")
}

fn name(s: &str) -> (RepoName, Tag) {
    let (r, t) = s.split_once(':').unwrap();
    (r.parse().unwrap(), t.parse().unwrap())
}

#[tokio::main]
async fn main() {
    let roles: usize = std::env::var("ROLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let py = python();
    let tmp = tempfile::tempdir().unwrap();
    let repo_dir = tmp.path().join("repo");
    let t = Instant::now();
    run(&py, &[repo_dir.to_str().unwrap(), &roles.to_string()]);
    let made = t.elapsed();
    let server = Server::start(&py, &repo_dir, &tmp.path().join("http.log"));
    let cfg: TufConfig = toml::from_str(&format!(
        "metadata_url = \"http://127.0.0.1:{}/metadata/\"\nroot_file = \"{}\"\nrefresh_interval = \"1h\"",
        server.port,
        repo_dir.join("root.json").display()
    ))
    .unwrap();
    let cache = tmp.path().join("cache");
    let mut out = vec![format!(
        "# TUF trust source, {roles} delegated roles ({} UTC)\n\nrepository made in {:.1} s; \
         python http.server on loopback; in-process `TufSource::resolve`.\n",
        jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M"),
        made.as_secs_f64()
    )];
    let s = Arc::new(source(&cfg, &cache));

    let (top_r, top_t) = name("demo/app:top");
    let t = Instant::now();
    s.resolve(&top_r, &top_t).await.expect("cold");
    let (n, b, _) = server.fetched_since(0);
    out.push(format!(
        "- cold start, first tag (top-level): {:.1} ms, {n} files, {b} bytes",
        t.elapsed().as_secs_f64() * 1e3
    ));

    let mark = server.log_len();
    let t = Instant::now();
    for i in 0..roles {
        let (r, tg) = name(&format!("demo/app{i}:v1"));
        s.resolve(&r, &tg).await.expect("first lookup");
    }
    let (n, b, _) = server.fetched_since(mark);
    out.push(format!(
        "- first lookup of a tag in each of the {roles} roles: {:.0} ms in all ({:.2} ms per \
         role), {n} files, {b} bytes",
        t.elapsed().as_secs_f64() * 1e3,
        t.elapsed().as_secs_f64() * 1e3 / roles as f64
    ));

    let (last_r, last_t) = name(&format!("demo/app{}:v1", roles - 1));
    let (p50, p99) = warm(&s, &top_r, &top_t, 20_000).await;
    out.push(format!(
        "- warm resolution, top-level tag: p50 {p50:.2} us, p99 {p99:.2} us (20,000 lookups)"
    ));
    let (p50, p99) = warm(&s, &last_r, &last_t, 20_000).await;
    out.push(format!(
        "- warm resolution, tag in role_{}: p50 {p50:.2} us, p99 {p99:.2} us (20,000 lookups)",
        roles - 1
    ));

    run(
        &py,
        &[
            repo_dir.to_str().unwrap(),
            &roles.to_string(),
            "bump",
            &(roles / 2).to_string(),
        ],
    );
    let mark = server.log_len();
    let (b_r, b_t) = name(&format!("demo/app{}:v2", roles / 2));
    let t = Instant::now();
    s.check(&b_r, &b_t).await.expect("changed role");
    let (n, b, names) = server.fetched_since(mark);
    out.push(format!(
        "- refresh after role_{} changed, then its new tag: {:.1} ms, {n} files ({}), {b} bytes",
        roles / 2,
        t.elapsed().as_secs_f64() * 1e3,
        names.join(", ")
    ));

    drop(s);
    let s = source(&cfg, &cache);
    let mark = server.log_len();
    let t = Instant::now();
    s.resolve(&last_r, &last_t).await.expect("after restart");
    let (n, b, names) = server.fetched_since(mark);
    out.push(format!(
        "- restart (same state), tag in role_{}: {:.1} ms, {n} files ({}), {b} bytes",
        roles - 1,
        t.elapsed().as_secs_f64() * 1e3,
        names.join(", ")
    ));

    let report = out.join("\n") + "\n";
    print!("{report}");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/results");
    let file = format!(
        "{dir}/{}-tuf.md",
        jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ")
    );
    std::fs::write(&file, report).unwrap();
    println!("written to {file}");
}
