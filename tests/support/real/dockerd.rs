//! A private dockerd for pulls through its Engine API: own data root, exec root and socket
//! under a short /tmp directory (unix socket paths are short), vfs storage, no bridge and no
//! iptables, so nothing of the machine's own docker is touched. Stopped with its process
//! group (its own containerd included) on Drop. Panics naming the package when missing.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::proc::{CLEAN_PATH, Daemon, require_tool, run};

pub struct Dockerd {
    daemon: Option<Daemon>,
    host: String,
    dir: tempfile::TempDir,
}

impl Dockerd {
    pub fn start() -> Dockerd {
        require_tool("dockerd", "docker.io");
        require_tool("docker", "docker.io");
        let dir = tempfile::Builder::new()
            .prefix("pcd")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let d = dir.path();
        let host = format!("unix://{}/d.sock", d.display());
        let mut cmd = Command::new("env");
        cmd.args(["-i", &format!("PATH={CLEAN_PATH}"), "dockerd"])
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("x"))
            .arg("--pidfile")
            .arg(d.join("d.pid"))
            .args([
                "-H",
                &host,
                "--storage-driver",
                "vfs",
                "--bridge",
                "none",
                "--iptables=false",
            ]);
        let mut daemon = Daemon::spawn("dockerd", cmd, &d.join("dockerd.log"));
        let probe = host.clone();
        daemon
            .wait_ready(Duration::from_secs(60), || {
                run(Command::new("docker")
                    .env("DOCKER_HOST", &probe)
                    .arg("info"))
                .ok
            })
            .unwrap_or_else(|e| panic!("dockerd did not start: {e}"));
        Dockerd {
            daemon: Some(daemon),
            host,
            dir,
        }
    }

    /// `unix:///.../d.sock`
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `docker ARGS` against this daemon.
    pub fn docker(&self, args: &[&str]) -> super::proc::CmdOutput {
        run(Command::new("docker")
            .env("DOCKER_HOST", &self.host)
            .args(args))
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop(Duration::from_secs(20));
        }
    }
}
