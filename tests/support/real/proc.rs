//! Processes for real-component tests: tool checks, run-time ports, daemons in their own process
//! group (killed on Drop, and by a watchdog if the test process dies), readiness waits, log tails.

use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// PATH given to daemons started with a clean environment (`env -i`).
pub const CLEAN_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Panics (never skips) when `tool` is not on PATH, naming the Debian package that has it.
pub fn require_tool(tool: &str, package: &str) {
    let found = if tool.starts_with('/') {
        Path::new(tool).exists()
    } else {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false)
            || CLEAN_PATH
                .split(':')
                .any(|d| Path::new(d).join(tool).is_file())
    };
    if !found {
        panic!(
            "required tool `{tool}` is not installed: install the Debian package `{package}` \
             (scripts/install-test-deps.sh installs every test dependency)"
        );
    }
}

/// A loopback port free right now (bind 127.0.0.1:0, read the port, close). Daemons started on it
/// are retried on another port when they lose the race (see [`start_with_retry`]).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A loopback port where nothing listens for the rest of this test process: bound (never
/// listening) and held, so connecting is refused and no daemon of a test running alongside can
/// take it. [`free_port`] only says "free right now": an "unreachable" address built on it was
/// once answered by another test's HTTP server (404 instead of connection refused).
pub fn dead_port() -> u16 {
    use socket2::{Domain, Socket, Type};
    static HELD: std::sync::Mutex<Vec<Socket>> = std::sync::Mutex::new(Vec::new());
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    s.bind(&addr.into()).expect("bind 127.0.0.1:0");
    let port = s
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map(|a| a.port())
        .expect("bound port");
    HELD.lock().unwrap_or_else(|e| e.into_inner()).push(s);
    port
}

/// A process-unique, increasing number (for names of containers, namespaces, files).
pub fn unique() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A new temporary directory for one component; kept when `PORTCULLIS_KEEP_TEST_DIRS=1`.
pub fn tempdir(prefix: &str) -> tempfile::TempDir {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix);
    if std::env::var("PORTCULLIS_KEEP_TEST_DIRS").as_deref() == Ok("1") {
        b.disable_cleanup(true);
    }
    b.tempdir_in("/tmp").expect("create tempdir in /tmp")
}

/// The last `lines` lines of a file (for failure messages), each cut to 400 characters.
pub fn tail(path: &Path, lines: usize) -> String {
    let s = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..]
        .iter()
        .map(|l| match l.char_indices().nth(400) {
            Some((i, _)) => format!("{}...", &l[..i]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs a command to completion; stdout+stderr of a finished command, and whether it succeeded.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    pub ok: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    /// stdout followed by stderr.
    pub fn combined(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl From<Output> for CmdOutput {
    fn from(o: Output) -> Self {
        CmdOutput {
            ok: o.status.success(),
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Default limit for one command run by [`run`]: 300 s, or `PORTCULLIS_TEST_CMD_TIMEOUT` seconds.
pub fn default_cmd_timeout() -> Duration {
    let secs = std::env::var("PORTCULLIS_TEST_CMD_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    Duration::from_secs(secs)
}

/// Runs `cmd` (stdin closed) with the default time limit and returns its output; panics only
/// when it cannot be spawned. A command that hangs (a proxy that never answers) is killed with
/// its process group and reported as failed, with `[harness] timed out` in its stderr.
pub fn run(cmd: &mut Command) -> CmdOutput {
    run_for(cmd, default_cmd_timeout())
}

/// [`run`] with an explicit time limit.
pub fn run_for(cmd: &mut Command, limit: Duration) -> CmdOutput {
    use std::io::Read;
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = so.read_to_end(&mut b);
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = se.read_to_end(&mut b);
        b
    });
    let end = Instant::now() + limit;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() >= end => {
                timed_out = true;
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .stderr(Stdio::null())
                    .status();
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => break None,
        }
    };
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
    let mut stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
    if timed_out {
        stderr.push_str(&format!("\n[harness] timed out after {limit:?}: {desc}\n"));
    }
    CmdOutput {
        ok: !timed_out && status.map(|s| s.success()).unwrap_or(false),
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
    }
}

/// Runs `cmd` and panics with its output unless it succeeds.
pub fn run_ok(cmd: &mut Command) -> CmdOutput {
    let desc = format!("{cmd:?}");
    let out = run(cmd);
    assert!(
        out.ok,
        "command failed ({:?}): {desc}\n--- stdout\n{}\n--- stderr\n{}",
        out.code, out.stdout, out.stderr
    );
    out
}

/// Polls `cond` every 100 ms until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// True when something accepts TCP connections on `addr`.
pub fn port_open(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

/// The HTTP status of a GET (curl; `extra` = more curl args such as `--cacert F`), or None.
pub fn http_status(url: &str, extra: &[&str]) -> Option<u16> {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-m", "5", "-w", "%{http_code}"])
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .ok()
        .filter(|c| *c != 0)
}

/// The sum of every sample of `name` in a Prometheus text exposition whose labels contain all
/// of `labels` (e.g. `reason="offline_evidence"`).
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The body of a GET (curl), empty when it fails.
pub fn http_get(url: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "-m", "10", url])
        .stdin(Stdio::null())
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A daemon in its own process group with its output in a log file. Drop sends SIGTERM to the
/// group, then SIGKILL after 5 s. A watchdog in the same group kills the group when the test
/// process disappears (a killed test run leaves no orphans).
pub struct Daemon {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    /// Spawns `cmd` (stdin closed, stdout+stderr appended to `log`) in a new process group.
    pub fn spawn(name: &str, cmd: Command, log: &Path) -> Daemon {
        Self::spawn_with_cleanup(name, cmd, log, None)
    }

    /// Like [`Daemon::spawn`]; when the test process dies without dropping the daemon (a killed
    /// run, or a component kept in a `static`), the watchdog also deletes `cleanup_dir`.
    pub fn spawn_with_cleanup(
        name: &str,
        mut cmd: Command,
        log: &Path,
        cleanup_dir: Option<&Path>,
    ) -> Daemon {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("open log {}: {e}", log.display()));
        let err = out.try_clone().expect("clone log fd");
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        let pgid = child.id();
        // Watchdog: joins the daemon's group, so the group kill on Drop ends it too.
        let rm = cleanup_dir
            .filter(|d| d.starts_with("/tmp/"))
            .map(|d| format!("rm -rf '{}';", d.display()))
            .unwrap_or_default();
        // the watchdog is in the group: it must not kill itself before cleaning up
        let watchdog = format!(
            "trap '' TERM; while kill -0 {test} 2>/dev/null; do sleep 1; done; kill -TERM -{pgid} 2>/dev/null; \
             sleep 3; kill -KILL {pgid} 2>/dev/null; {rm} kill -KILL -{pgid} 2>/dev/null",
            test = std::process::id()
        );
        let _ = Command::new("/bin/sh")
            .args(["-c", &watchdog])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(pgid as i32)
            .spawn()
            .map(|mut c| {
                // reaped in a thread so it never becomes a zombie of the test process
                std::thread::spawn(move || c.wait());
            });
        Daemon {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log, n)
    }

    /// Some(exit status text) when the process has ended.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.as_mut()?.try_wait() {
            Ok(Some(st)) => Some(st.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("wait failed: {e}")),
        }
    }

    /// Waits until `ready()`; on timeout or early exit returns Err with the log tail.
    pub fn wait_ready(
        &mut self,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), String> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(st) = self.exited() {
                return Err(format!(
                    "{} exited ({st}) before it was ready; log {}:\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail(30)
                ));
            }
            if ready() {
                return Ok(());
            }
            if Instant::now() >= end {
                return Err(format!(
                    "{} not ready after {timeout:?}; log {}:\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail(30)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM to the group, SIGKILL after `grace`; waits for the process.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pgid = child.id();
        if std::thread::panicking() {
            eprintln!(
                "---- {} (pid {pgid}) log tail, {}:\n{}\n----",
                self.name,
                self.log.display(),
                self.log_tail(25)
            );
        }
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{pgid}")])
            .status();
        let end = Instant::now() + grace;
        while Instant::now() < end {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // the group may still hold children even when the leader is gone
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .stderr(Stdio::null())
            .status();
        let _ = child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// Starts a daemon on fresh ports, retrying (up to 5 times) when it fails to become ready, which
/// covers losing a port to a concurrent test between choosing and binding it.
/// `attempt` gets the attempt number and returns the started, ready component or an error text.
pub fn start_with_retry<T>(what: &str, mut attempt: impl FnMut(u32) -> Result<T, String>) -> T {
    let mut errors = Vec::new();
    for i in 0..5 {
        match attempt(i) {
            Ok(t) => return t,
            Err(e) => {
                // Go says "bind: address already in use"; Rust's io::Error "Address already
                // in use (os error 98)".
                let lower = e.to_lowercase();
                let retry = lower.contains("address already in use") || lower.contains("bind:");
                errors.push(e);
                if !retry {
                    break;
                }
            }
        }
    }
    panic!("{what} did not start:\n{}", errors.join("\n----\n"));
}
