//! The files `portcullis config` writes, read by the programs that read them on a node:
//! skopeo (containers/image, as CRI-O and podman) and containerd (`ctr` with a private daemon).
//! A fake "proxy" refuses every manifest; a fake "registry" records whether anything reached
//! it. The property: with the generated files a refusal is final (the registry sees nothing);
//! with the shapes they avoid ([[registry.mirror]], `server` = the registry), it is not.
//! Needs skopeo and containerd (Debian packages); panics without them.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis::config::Config;
use portcullis::node::{Target, render, write_tree};

/// An HTTP server that logs request lines and answers `/v2/` with 200, anything else with 403
/// `DENIED`, like Portcullis refusing an unsigned tag.
struct Fake {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Fake {
    fn start() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    loop {
                        let mut first = String::new();
                        if reader.read_line(&mut first).unwrap_or(0) == 0 {
                            return;
                        }
                        // headers until the blank line
                        loop {
                            let mut h = String::new();
                            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                                break;
                            }
                        }
                        let first = first.trim_end().to_string();
                        if !first.contains("HTTP/1") {
                            return; // a TLS ClientHello: containers/image tries https first
                        }
                        log.lock().unwrap().push(first.clone());
                        let head = first.starts_with("HEAD ");
                        let (status, body) = if first.split(' ').nth(1) == Some("/v2/") {
                            ("200 OK", "{}".to_string())
                        } else {
                            (
                                "403 Forbidden",
                                r#"{"errors":[{"code":"DENIED","message":"fake: refused"}]}"#
                                    .to_string(),
                            )
                        };
                        let resp = format!(
                            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
                             Docker-Distribution-Api-Version: registry/2.0\r\n\
                             Content-Length: {}\r\n\r\n{}",
                            body.len(),
                            if head { "" } else { &body }
                        );
                        if conn.write_all(resp.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Fake { port, seen }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// A config whose proxy listens at `proxy` and fronts `registry`.
fn config(proxy: &Fake, registry: &Fake) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"{}\"\n[[registries]]\nname = \"{}\"\nupstream = \"http://{}\"\ndefault = true\n",
            proxy.addr(),
            registry.addr(),
            registry.addr()
        ),
    )
    .unwrap();
    Config::load(Some(&path)).unwrap()
}

fn need(prog: &str, package: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/bin"] {
        let p = Path::new(dir).join(prog);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "{prog} is not installed: cannot check the generated node config with it. Install it \
         (Debian: apt-get install {package}) — scripts/install-test-deps.sh should."
    );
}

fn skopeo_copy(conf: &Path, image: &str, out: &Path) -> std::process::Output {
    Command::new(need("skopeo", "skopeo"))
        .arg("--registries-conf")
        .arg(conf)
        .args(["copy", "--quiet", &format!("docker://{image}")])
        .arg(format!("oci:{}:x", out.display()))
        .output()
        .unwrap()
}

#[test]
fn registries_conf_makes_skopeo_pull_only_through_the_proxy() {
    let (proxy, registry) = (Fake::start(), Fake::start());
    let cfg = config(&proxy, &registry);
    let dir = tempfile::tempdir().unwrap();
    let out = render(&cfg, Target::Podman, &[]).unwrap();
    write_tree(&out, dir.path()).unwrap();
    let image = format!("{}/demo/app:v1", registry.addr());

    let pull = skopeo_copy(
        &dir.path().join("registries.conf"),
        &image,
        &dir.path().join("o1"),
    );
    let err = String::from_utf8_lossy(&pull.stderr);
    assert!(!pull.status.success(), "the fake proxy refuses everything");
    assert!(
        err.contains("fake: refused") || err.contains("denied"),
        "{err}"
    );
    assert!(
        proxy
            .seen()
            .iter()
            .any(|l| l.starts_with("GET /v2/demo/app/manifests/v1")),
        "skopeo did not ask the proxy: {:?}",
        proxy.seen()
    );
    assert!(
        registry.seen().is_empty(),
        "skopeo went around the proxy: {:?}",
        registry.seen()
    );

    // The shape the generator avoids: a mirror. The refusal falls back to the registry.
    let mirror = dir.path().join("mirror.conf");
    std::fs::write(
        &mirror,
        format!(
            "[[registry]]\nprefix = \"{r}\"\nlocation = \"{r}\"\ninsecure = true\n\
             [[registry.mirror]]\nlocation = \"{p}\"\ninsecure = true\n",
            r = registry.addr(),
            p = proxy.addr()
        ),
    )
    .unwrap();
    let _ = skopeo_copy(&mirror, &image, &dir.path().join("o2"));
    assert!(
        !registry.seen().is_empty(),
        "control: a [[registry.mirror]] was expected to fall back to the registry"
    );
}

/// A containerd of our own (no CRI plugin): own root, state and socket. Stopped on drop.
struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Containerd {
    fn start() -> Containerd {
        let bin = need("containerd", "containerd");
        let dir = tempfile::Builder::new()
            .prefix("pcc")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("config.toml"),
            format!(
                "version = 2\nroot = \"{r}/root\"\nstate = \"{r}/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{r}/c.sock\"\n[ttrpc]\n  address = \"{r}/t.sock\"\n",
                r = d.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let child = Command::new(bin)
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let c = Containerd { child, dir };
        let start = Instant::now();
        while !c.ctr(&["version"]).status.success() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "containerd did not start:\n{}",
                std::fs::read_to_string(c.dir.path().join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        c
    }

    fn ctr(&self, args: &[&str]) -> std::process::Output {
        Command::new(need("ctr", "containerd"))
            .arg("--address")
            .arg(self.dir.path().join("c.sock"))
            .args(["--namespace", "portcullis-test"])
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn hosts_toml_makes_containerd_pull_only_through_the_proxy() {
    let (proxy, registry) = (Fake::start(), Fake::start());
    let cfg = config(&proxy, &registry);
    let dir = tempfile::tempdir().unwrap();
    write_tree(&render(&cfg, Target::Containerd, &[]).unwrap(), dir.path()).unwrap();
    let hosts_dir = dir.path().join("certs.d");
    let image = format!("{}/demo/app:v1", registry.addr());
    let c = Containerd::start();

    let pull = c.ctr(&[
        "images",
        "pull",
        "--hosts-dir",
        &hosts_dir.to_string_lossy(),
        &image,
    ]);
    assert!(!pull.status.success(), "the fake proxy refuses everything");
    let ns = format!("ns={}", registry.addr().replace(':', "%3A"));
    assert!(
        proxy
            .seen()
            .iter()
            .any(|l| l.contains("/v2/demo/app/manifests/v1") && l.contains(&ns)),
        "containerd did not ask the proxy with ?{ns}: {:?}",
        proxy.seen()
    );
    assert!(
        registry.seen().is_empty(),
        "containerd went around the proxy: {:?}",
        registry.seen()
    );

    // The shape the generator avoids: `server` left at the registry. containerd falls back to it.
    let generated =
        std::fs::read_to_string(hosts_dir.join(registry.addr()).join("hosts.toml")).unwrap();
    let fallback = generated
        .replace(
            &format!("server = \"http://{}\"", proxy.addr()),
            &format!("server = \"http://{}\"", registry.addr()),
        )
        .replace("capabilities = [\"push\"]\n", "");
    assert_ne!(fallback, generated);
    std::fs::write(hosts_dir.join(registry.addr()).join("hosts.toml"), fallback).unwrap();
    let _ = c.ctr(&[
        "images",
        "pull",
        "--hosts-dir",
        &hosts_dir.to_string_lossy(),
        &image,
    ]);
    assert!(
        !registry.seen().is_empty(),
        "control: server = the registry was expected to fall back to it"
    );
}

/// dockerd reads the generated daemon.json (a private dockerd: own socket and data root under a
/// temp dir, vfs, no bridge, no iptables) and treats the proxy as an insecure (plain HTTP) registry.
#[test]
fn daemon_json_is_accepted_by_dockerd() {
    let dockerd = need("dockerd", "docker.io");
    let docker = std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("docker"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("the docker CLI is not installed (Debian: docker.io)"));
    let (proxy, registry) = (Fake::start(), Fake::start());
    // a non-loopback proxy address: dockerd already treats 127.0.0.0/8 as insecure
    let cfg = config(&proxy, &registry);
    let opts = portcullis::node::Options {
        proxy_addr: Some("portcullis.node.test:5050".into()),
        ..Default::default()
    };
    let out = portcullis::node::render_with(&cfg, Target::Docker, &[], &opts).unwrap();
    let dir = tempfile::Builder::new()
        .prefix("pcd")
        .tempdir_in("/tmp")
        .unwrap();
    write_tree(&out, dir.path()).unwrap();
    let host = format!("unix://{}/d.sock", dir.path().display());
    let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
    let mut child = Command::new(dockerd)
        .arg("--config-file")
        .arg(dir.path().join("daemon.json"))
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
        .unwrap();
    let start = Instant::now();
    let info = loop {
        let o = Command::new(&docker)
            .env("DOCKER_HOST", &host)
            .args(["info", "--format", "{{json .RegistryConfig.IndexConfigs}}"])
            .output()
            .unwrap();
        if o.status.success() {
            break String::from_utf8_lossy(&o.stdout).to_string();
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "dockerd refused the generated daemon.json ({status}):\n{}",
                std::fs::read_to_string(dir.path().join("dockerd.log")).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "dockerd did not start"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let stop = Instant::now();
    while stop.elapsed() < Duration::from_secs(20) && !matches!(child.try_wait(), Ok(Some(_))) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    let configs: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(
        configs["portcullis.node.test:5050"]["Secure"], false,
        "dockerd does not treat the proxy as plain HTTP: {info}"
    );
}
