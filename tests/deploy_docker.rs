//! The container image, built the way deploy/build-image.sh builds it, on a private dockerd:
//! own socket and data root under a temp dir, vfs storage, `--bridge none --iptables=false`
//! (nothing on the machine's own docker is touched). The debootstrap base tarball is cached
//! under target/deploy-cache, so only the first run on a machine pays for debootstrap.
//!
//! Needs (Debian): docker.io (dockerd + a docker CLI), debootstrap, and the Debian mirror apt
//! uses. Panics when they are missing rather than skipping.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// One private dockerd at a time: each test builds images, and two builds on a 2-core CI machine
/// only slow each other down.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn need(prog: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
        .unwrap_or(false);
    assert!(
        found || Path::new("/usr/sbin").join(prog).is_file(),
        "{prog} is not installed: the docker image test cannot run. Install it (Debian: \
         apt-get install {package}) — scripts/install-test-deps.sh should."
    );
}

/// A dockerd of our own. Dropping it stops it (by its PID, SIGTERM then SIGKILL).
struct Dockerd {
    child: Child,
    dir: tempfile::TempDir,
    host: String,
}

impl Dockerd {
    fn start() -> Dockerd {
        need("dockerd", "docker.io");
        need("docker", "docker.io");
        // Short path: containerd's shim sockets live under exec-root, and unix socket paths are short.
        let dir = tempfile::Builder::new()
            .prefix("pcd")
            .tempdir_in("/tmp")
            .unwrap();
        let host = format!("unix://{}/d.sock", dir.path().display());
        let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("x"))
            .arg("--pidfile")
            .arg(dir.path().join("d.pid"))
            .args([
                "-H",
                &host,
                "--storage-driver",
                "vfs",
                "--bridge",
                "none",
                "--iptables=false",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let d = Dockerd { child, dir, host };
        let start = Instant::now();
        while !d.docker(&["info"]).status.success() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "dockerd did not answer within 60 s:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new(prog);
        c.env("DOCKER_HOST", &self.host);
        c
    }

    fn docker(&self, args: &[&str]) -> Output {
        self.cmd("docker").args(args).output().unwrap()
    }

    /// `docker ARGS`, which must succeed; its stdout, trimmed.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// deploy/build-image.sh with the binary cargo built for these tests.
    fn build_image(&self, tag: &str) {
        need("debootstrap", "debootstrap");
        let out = self
            .cmd("bash")
            .arg(repo().join("deploy/build-image.sh"))
            .args(["--binary", env!("CARGO_BIN_EXE_portcullis"), "--tag", tag])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "deploy/build-image.sh failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn wait_healthy(&self, container: &str, within: Duration) {
        let start = Instant::now();
        loop {
            let status = self.ok(&[
                "inspect",
                "-f",
                "{{.State.Status}} {{.State.Health.Status}}",
                container,
            ]);
            if status == "running healthy" {
                return;
            }
            if start.elapsed() > within || status.starts_with("exited") {
                let logs = self.docker(&["logs", container]);
                let health = self.docker(&["inspect", "-f", "{{json .State.Health}}", container]);
                panic!(
                    "{container} is not healthy after {:?} ({status}).\nlogs:\n{}{}\nhealth: {}",
                    start.elapsed(),
                    String::from_utf8_lossy(&logs.stdout),
                    String::from_utf8_lossy(&logs.stderr),
                    String::from_utf8_lossy(&health.stdout)
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The host address docker published `port` of `container` on.
    fn published(&self, container: &str, port: u16) -> String {
        let p = self.ok(&["port", container, &port.to_string()]);
        p.lines().next().unwrap().to_string()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // Our own containers first, then our daemon, by the PID we started.
        if let Ok(out) = self.cmd("docker").args(["ps", "-aq"]).output() {
            let ids = String::from_utf8_lossy(&out.stdout).to_string();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let _ = self.cmd("docker").arg("rm").arg("-f").args(&ids).output();
            }
        }
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").arg("-TERM").arg(&pid).status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    // the registry API may wait out upstream.connect_timeout_secs (10) for an unreachable upstream
    s.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}

#[test]
fn image_is_small_non_root_and_serves_healthz() {
    let _one = serial();
    let d = Dockerd::start();
    d.build_image("portcullis:test");

    let user = d.ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Config.User}}",
        "portcullis:test",
    ]);
    assert_eq!(user, "65532:65532", "the image must not run as root");
    let hc = d.ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.Healthcheck.Test}}",
        "portcullis:test",
    ]);
    assert!(
        hc.contains("/healthz") && hc.contains(":9090"),
        "HEALTHCHECK: {hc}"
    );

    // Small: everything but the binary (libraries, CA bundle, busybox) stays under 10 MB.
    let size: u64 = d
        .ok(&["image", "inspect", "-f", "{{.Size}}", "portcullis:test"])
        .parse()
        .unwrap();
    let bin = std::fs::metadata(env!("CARGO_BIN_EXE_portcullis"))
        .unwrap()
        .len();
    assert!(
        size - bin < 10 << 20,
        "image is {size} bytes for a {bin}-byte binary"
    );
    // No package manager, no shell package: only what the Dockerfile put there.
    let apt = d.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/bin/busybox",
        "portcullis:test",
        "ls",
        "/usr/bin/apt",
    ]);
    assert!(!apt.status.success(), "apt is in the final image");

    // The image's own HEALTHCHECK, as its own user, against a stand-in for the admin port: this
    // checks the probe (busybox wget on 127.0.0.1:9090/healthz) independently of the server.
    d.ok(&["network", "create", "pctest"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "standin",
        "--network",
        "pctest",
        "-p",
        "127.0.0.1::9090",
        "--health-interval",
        "1s",
        "--health-start-period",
        "1s",
        "--entrypoint",
        "/bin/sh",
        "portcullis:test",
        "-c",
        "mkdir -p /tmp/w && echo ok > /tmp/w/healthz && exec busybox httpd -f -p 9090 -h /tmp/w",
    ]);
    d.wait_healthy("standin", Duration::from_secs(30));
    let (code, _) = http_get(&d.published("standin", 9090), "/healthz");
    assert_eq!(code, 200);
    let id = d.ok(&["exec", "standin", "/bin/busybox", "id", "-u"]);
    assert_eq!(id, "65532");

    // The real server: the image's default command and config, healthy by its own HEALTHCHECK,
    // /healthz through a published port.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "pc",
        "--network",
        "pctest",
        "-p",
        "127.0.0.1::5050",
        "-p",
        "127.0.0.1::9090",
        "--health-interval",
        "1s",
        "--health-start-period",
        "2s",
        "portcullis:test",
    ]);
    d.wait_healthy("pc", Duration::from_secs(60));
    let (code, body) = http_get(&d.published("pc", 9090), "/healthz");
    assert_eq!(code, 200, "{body}");
    // the registry API answers too (the upstream is not reachable here; any HTTP answer will do)
    let (code, body) = http_get(&d.published("pc", 5050), "/v2/");
    assert!(code >= 200, "{body}");
}

// ---- docker-compose.yml ---------------------------------------------------------------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The compose stack from docker-compose.yml + deploy/compose/local-images.yml, on ports chosen
/// now, with its run directory (certs, configs) in a temp dir.
struct Compose<'a> {
    d: &'a Dockerd,
    run: tempfile::TempDir,
    project: String,
    registry: u16,
    notary: u16,
    proxy: u16,
    admin: u16,
}

impl<'a> Compose<'a> {
    fn up(d: &'a Dockerd) -> Compose<'a> {
        need("docker-compose", "docker-compose");
        need("openssl", "openssl");
        d.build_image("portcullis:dev");
        let c = Compose {
            d,
            run: tempfile::Builder::new()
                .prefix("pc-compose")
                .tempdir()
                .unwrap(),
            project: format!("pctest{}", std::process::id()),
            registry: free_port(),
            notary: free_port(),
            proxy: free_port(),
            admin: free_port(),
        };
        let out = c
            .cmd(&repo().join("deploy/compose/setup.sh").to_string_lossy())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "setup.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        c.compose(&["up", "-d", "--build"]);
        c
    }

    fn cmd(&self, prog: &str) -> Command {
        let mut cmd = self.d.cmd(prog);
        cmd.current_dir(repo())
            .env("PORTCULLIS_COMPOSE_DIR", self.run.path())
            .env("REGISTRY_PORT", self.registry.to_string())
            .env("NOTARY_PORT", self.notary.to_string())
            .env("PORTCULLIS_PORT", self.proxy.to_string())
            .env("PORTCULLIS_ADMIN_PORT", self.admin.to_string());
        cmd
    }

    fn compose(&self, args: &[&str]) -> String {
        let out = self
            .cmd("docker-compose")
            .args([
                "-p",
                &self.project,
                "-f",
                "docker-compose.yml",
                "-f",
                "deploy/compose/local-images.yml",
            ])
            .args(args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "docker-compose {args:?}:\n{text}");
        text
    }

    fn ca(&self) -> PathBuf {
        self.run.path().join("certs/ca.crt")
    }

    /// `curl` from the host (the notary server speaks TLS with the development CA).
    fn wait_url(&self, url: &str) {
        let start = Instant::now();
        loop {
            let out = Command::new("curl")
                .args(["-sf", "-o", "/dev/null", "--cacert"])
                .arg(self.ca())
                .arg(url)
                .status()
                .expect("curl is missing (Debian: curl)");
            if out.success() {
                return;
            }
            if start.elapsed() > Duration::from_secs(60) {
                panic!(
                    "{url} did not answer in 60 s:\n{}",
                    self.compose(&["logs", "--tail", "20"])
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The docker CLI with this stack's content-trust settings (as in the seed's blog post).
    fn trust_cmd(&self) -> Command {
        let cfg = self.run.path().join("docker-config");
        let mut cmd = self.d.cmd("docker");
        cmd.env("DOCKER_CONFIG", &cfg)
            .env("DOCKER_CONTENT_TRUST", "1")
            .env(
                "DOCKER_CONTENT_TRUST_SERVER",
                format!("https://127.0.0.1:{}", self.notary),
            )
            .env("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", "compose-test-root")
            .env(
                "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE",
                "compose-test-repo",
            );
        cmd
    }

    /// `docker trust key generate NAME` + `docker trust signer add`: later trusted pushes sign
    /// into `targets/releases` (and `targets/NAME`), as a CI signer does.
    fn add_signer(&self, name: &str, repo: &str) {
        let keys = self.run.path().join("signer-keys");
        std::fs::create_dir_all(&keys).unwrap();
        for args in [
            vec!["trust", "key", "generate", name],
            vec![
                "trust",
                "signer",
                "add",
                "--key",
                &format!("{}/{name}.pub", keys.display()),
                name,
                &format!("127.0.0.1:{}/{repo}", self.registry),
            ],
        ] {
            let out = self
                .trust_cmd()
                .current_dir(&keys)
                .args(&args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "docker {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// `docker push` with Docker Content Trust on (signing `tag`), or off.
    fn push(&self, repo_tag: &str, trust: bool) -> String {
        let image = format!("127.0.0.1:{}/{repo_tag}", self.registry);
        let cfg = self.run.path().join("docker-config");
        let tls = cfg.join(format!("tls/127.0.0.1:{}", self.notary));
        std::fs::create_dir_all(&tls).unwrap();
        std::fs::copy(self.ca(), tls.join("ca.crt")).unwrap();
        // an image from a static busybox: nothing can be pulled here
        let root = self.run.path().join("rootfs");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("needs busybox-static");
        let tar = self.run.path().join("rootfs.tar");
        assert!(
            Command::new("tar")
                .arg("-C")
                .arg(&root)
                .arg("-cf")
                .arg(&tar)
                .arg(".")
                .status()
                .unwrap()
                .success()
        );
        self.d.ok(&[
            "import",
            "-c",
            &format!("CMD [\"/bin/busybox\",\"echo\",\"{repo_tag}\"]"),
            &tar.to_string_lossy(),
            &image,
        ]);
        let out = self
            .d
            .cmd("docker")
            .args(["push", &image])
            .env("DOCKER_CONFIG", &cfg)
            .env("DOCKER_CONTENT_TRUST", if trust { "1" } else { "0" })
            .env(
                "DOCKER_CONTENT_TRUST_SERVER",
                format!("https://127.0.0.1:{}", self.notary),
            )
            .env("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", "compose-test-root")
            .env(
                "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE",
                "compose-test-repo",
            )
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "docker push {image} (trust={trust}):\n{text}"
        );
        text
    }
}

impl Drop for Compose<'_> {
    fn drop(&mut self) {
        let _ = self
            .cmd("docker-compose")
            .args([
                "-p",
                &self.project,
                "-f",
                "docker-compose.yml",
                "-f",
                "deploy/compose/local-images.yml",
            ])
            .args(["down", "-v", "--timeout", "5"])
            .output();
    }
}

/// docker-compose.yml with the local images: the registry and notary come up, the docker CLI
/// signs into them with content trust, and a signed pull goes through Portcullis while an
/// unsigned one is refused, with skopeo reading the registries.conf `portcullis config podman`
/// renders.
#[test]
fn compose_signed_pull_through_portcullis_unsigned_refused() {
    use portcullis::node::{Options, Target, render_with};
    let _one = serial();
    let d = Dockerd::start();
    let c = Compose::up(&d);
    c.wait_url(&format!("http://127.0.0.1:{}/v2/", c.registry));
    c.wait_url(&format!(
        "https://127.0.0.1:{}/_notary_server/health",
        c.notary
    ));
    let out = c.push("demo/app:v1", true);
    assert!(out.contains("Successfully signed"), "{out}");
    // v2 is signed by a signer: the docker CLI puts it into targets/releases.
    c.add_signer("alice", "demo/app");
    let out = c.push("demo/app:v2", true);
    assert!(out.contains("Successfully signed"), "{out}");
    c.push("demo/app:unsigned", false);
    // the signed tag is in the notary server under the GUN Portcullis will look up
    let targets = Command::new("curl")
        .args(["-sf", "--cacert"])
        .arg(c.ca())
        .arg(format!(
            "https://127.0.0.1:{n}/v2/127.0.0.1:{r}/demo/app/_trust/tuf/targets.json",
            n = c.notary,
            r = c.registry
        ))
        .output()
        .unwrap();
    let targets = String::from_utf8_lossy(&targets.stdout);
    assert!(
        targets.contains("\"v1\"") && !targets.contains("\"unsigned\""),
        "{targets}"
    );
    // and the proxy's config, as setup.sh wrote it, names the registry as clients do
    let cfg =
        portcullis::config::Config::load(Some(&c.run.path().join("portcullis.toml"))).unwrap();
    assert_eq!(cfg.registries[0].name, format!("127.0.0.1:{}", c.registry));
    d.wait_healthy(
        &format!("{}_portcullis_1", c.project),
        Duration::from_secs(60),
    );

    let cfg =
        portcullis::config::Config::load(Some(&c.run.path().join("portcullis.toml"))).unwrap();
    let opts = Options {
        proxy_addr: Some(format!("127.0.0.1:{}", c.proxy)),
        ..Options::default()
    };
    let conf = render_with(&cfg, Target::Podman, &[], &opts)
        .unwrap()
        .stdout_text();
    let conf_path = c.run.path().join("registries.conf");
    std::fs::write(&conf_path, conf).unwrap();
    // `skopeo copy` (not `inspect`, which pings the prefix's own host and fails here)
    let pull = |tag: &str| {
        Command::new("skopeo")
            .arg("--registries-conf")
            .arg(&conf_path)
            .args(["copy", "--quiet"])
            .arg(format!("docker://127.0.0.1:{}/demo/app:{tag}", c.registry))
            .arg(format!(
                "oci:{}:{tag}",
                c.run.path().join(format!("pulled-{tag}")).display()
            ))
            .output()
            .expect("skopeo is missing (Debian: skopeo)")
    };
    let ok = pull("v1");
    assert!(
        ok.status.success(),
        "signed v1 refused: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let refused = pull("unsigned");
    assert!(
        !refused.status.success(),
        "unsigned was served through Portcullis"
    );
    let ok = pull("v2");
    assert!(
        ok.status.success(),
        "v2 signed by a signer (targets/releases) refused: {}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // The docker daemon itself pulls through the composed Portcullis. For a private registry
    // dockerd has no mirror setting, so the image reference names Portcullis (127.0.0.0/8 is
    // plain HTTP for dockerd without configuration); requests without ?ns= go to the default
    // registry, whose GUN the signatures were made for.
    let via = format!("127.0.0.1:{}", c.proxy);
    for tag in ["v1", "v2"] {
        let out = d.docker(&["pull", &format!("{via}/demo/app:{tag}")]);
        assert!(
            out.status.success(),
            "docker pull {tag} through Portcullis: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let run = d.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &format!("{via}/demo/app:v1"),
    ]);
    assert_eq!(run, "demo/app:v1");
    let out = d.docker(&["pull", &format!("{via}/demo/app:unsigned")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "dockerd pulled unsigned through Portcullis"
    );
    assert!(
        err.contains("not signed"),
        "the reason reaches the docker CLI: {err}"
    );
}
