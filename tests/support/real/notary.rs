//! A real Notary v1 service (notary-server, plus notary-signer for the remote trust service), with
//! memory storage and TLS from a CA the harness makes; and a notary CLI signer that publishes
//! targets the way `docker push` with content trust does.

use std::collections::HashSet;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use super::certs::{CertKey, KeyType, TestCa, self_signed};
use super::images::ImageInfo;
use super::proc::{
    CLEAN_PATH, CmdOutput, Daemon, free_port, http_status, port_open, require_tool, run,
    start_with_retry, tempdir,
};

/// Where notary-server gets its timestamp/snapshot keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrustService {
    /// notary-signer over gRPC/TLS (ECDSA keys), as in production.
    Remote,
    /// notary-server's own in-memory signer (ED25519 keys).
    Local,
}

const SIGNER_ALIAS: &str = "testalias";
const SIGNER_PASS: &str = "portcullis-signer";

pub struct Notary {
    server: Daemon,
    signer: Option<Daemon>,
    addr: SocketAddr,
    ca: PathBuf,
    trust_service: TrustService,
    dir: tempfile::TempDir,
}

impl Notary {
    /// Starts notary-server (and notary-signer for `Remote`), waits for `/_notary_server/health`.
    pub fn start(trust_service: TrustService) -> Notary {
        require_tool("notary-server", "notary");
        require_tool("notary-signer", "notary");
        require_tool("curl", "curl");
        let dir = tempdir("pc-notary-");
        let ca = TestCa::new(&dir.path().join("certs"), "portcullis-test-ca");
        let tls = ca.issue("server", &["notary-server", "notary-signer"]);
        let signer = match trust_service {
            TrustService::Remote => Some(start_signer(dir.path(), &ca, &tls)),
            TrustService::Local => None,
        };
        let trust_json = match &signer {
            Some((_, sa)) => format!(
                r#"{{"type": "remote", "hostname": "127.0.0.1", "port": "{}", "key_algorithm": "ecdsa",
                   "tls_ca_file": "{}", "tls_client_cert": "{}", "tls_client_key": "{}"}}"#,
                sa.port(),
                ca.cert.display(),
                tls.cert.display(),
                tls.key.display()
            ),
            None => r#"{"type": "local"}"#.to_string(),
        };
        let cfg = dir.path().join("notary-server.json");
        let log = dir.path().join("notary-server.log");
        let (server, addr) = start_with_retry("notary-server", |_| {
            let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            fs::write(
                &cfg,
                format!(
                    r#"{{"server": {{"http_addr": "{addr}", "tls_cert_file": "{}", "tls_key_file": "{}"}},
  "trust_service": {trust_json},
  "storage": {{"backend": "memory"}},
  "logging": {{"level": "info"}}}}"#,
                    tls.cert.display(),
                    tls.key.display()
                ),
            )
            .unwrap();
            let mut cmd = Command::new("env");
            cmd.args([
                "-i",
                &format!("PATH={CLEAN_PATH}"),
                "notary-server",
                "-config",
            ])
            .arg(&cfg);
            let mut d = Daemon::spawn_with_cleanup("notary-server", cmd, &log, Some(dir.path()));
            let url = format!("https://{addr}/_notary_server/health");
            let ca_s = ca.cert.display().to_string();
            d.wait_ready(Duration::from_secs(30), || {
                http_status(&url, &["--cacert", &ca_s]) == Some(200)
            })?;
            Ok((d, addr))
        });
        Notary {
            server,
            signer: signer.map(|(d, _)| d),
            addr,
            ca: ca.cert.clone(),
            trust_service,
            dir,
        }
    }

    /// Stops notary-server and notary-signer (the node's trust server is gone).
    pub fn stop(&mut self) {
        self.server.stop(Duration::from_secs(5));
        if let Some(s) = &mut self.signer {
            s.stop(Duration::from_secs(5));
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA certificate (PEM) that issued the server's TLS certificate.
    pub fn ca_path(&self) -> &Path {
        &self.ca
    }

    pub fn trust_service(&self) -> TrustService {
        self.trust_service
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// notary-server's log.
    pub fn log(&self) -> String {
        self.server.log()
    }

    /// notary-signer's log (empty for `Local`).
    pub fn signer_log(&self) -> String {
        self.signer.as_ref().map(|s| s.log()).unwrap_or_default()
    }

    /// GET a TUF file (`role` like `root`, `targets/releases`), byte-exact; None on 404.
    pub fn get_tuf(&self, gun: &str, role: &str) -> Option<Vec<u8>> {
        let tmp = tempdir("pc-tuf-");
        let body = tmp.path().join("body");
        let out = run(Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(&self.ca)
            .arg("-o")
            .arg(&body)
            .args(["-w", "%{http_code}"])
            .arg(format!("{}/v2/{gun}/_trust/tuf/{role}.json", self.url())));
        match out.stdout.trim() {
            "200" => Some(fs::read(&body).unwrap()),
            "404" => None,
            other => panic!(
                "notary GET {role}.json of {gun}: status {other} {}",
                out.stderr
            ),
        }
    }
}

fn start_signer(dir: &Path, ca: &TestCa, tls: &CertKey) -> (Daemon, SocketAddr) {
    let cfg = dir.join("notary-signer.json");
    let log = dir.join("notary-signer.log");
    start_with_retry("notary-signer", |_| {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        fs::write(
            &cfg,
            format!(
                r#"{{"server": {{"grpc_addr": "{addr}", "tls_cert_file": "{}", "tls_key_file": "{}", "client_ca_file": "{}"}},
  "logging": {{"level": "info"}},
  "storage": {{"backend": "memory", "default_alias": "{SIGNER_ALIAS}"}}}}"#,
                tls.cert.display(),
                tls.key.display(),
                ca.cert.display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new("env");
        cmd.args([
            "-i",
            &format!("PATH={CLEAN_PATH}"),
            &format!(
                "NOTARY_SIGNER_{}={SIGNER_PASS}",
                SIGNER_ALIAS.to_uppercase()
            ),
            "notary-signer",
            "-config",
        ])
        .arg(&cfg);
        let mut d = Daemon::spawn_with_cleanup("notary-signer", cmd, &log, Some(dir));
        d.wait_ready(Duration::from_secs(30), || port_open(addr))?;
        Ok((d, addr))
    })
}

/// Where a target is signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// The top-level `targets` role (the repository key), as `docker push` does.
    Targets,
    /// `targets/releases` (a signer added with `docker trust signer add`), EC key.
    Releases,
    /// Any delegation `targets/NAME` (Docker ignores all but releases), with its key type.
    Delegation { name: String, key: KeyType },
}

impl Role {
    /// `targets`, `targets/releases` or `targets/NAME`.
    pub fn name(&self) -> String {
        match self {
            Role::Targets => "targets".into(),
            Role::Releases => "targets/releases".into(),
            Role::Delegation { name, .. } => format!("targets/{name}"),
        }
    }
    /// A delegation `targets/NAME` with the given key type.
    pub fn delegation(name: &str, key: KeyType) -> Role {
        Role::Delegation {
            name: name.into(),
            key,
        }
    }
}

/// The notary CLI with its own trust directory. One `Signer` per GUN (the first use of a GUN
/// initialises it on the server: `init`, `key rotate snapshot -r`, `publish`).
pub struct Signer {
    url: String,
    ca: PathBuf,
    dir: tempfile::TempDir,
    inited: Mutex<HashSet<String>>,
    delegations: Mutex<HashSet<(String, String)>>,
}

pub const ROOT_PASSPHRASE: &str = "portcullis-root";
pub const TARGETS_PASSPHRASE: &str = "portcullis-targets";
pub const SNAPSHOT_PASSPHRASE: &str = "portcullis-snapshot";
pub const DELEGATION_PASSPHRASE: &str = "portcullis-delegation";

impl Signer {
    pub fn new(notary: &Notary) -> Signer {
        require_tool("notary", "notary");
        Signer {
            url: notary.url(),
            ca: notary.ca_path().to_path_buf(),
            // inside the notary's directory: goes with it even when the Signer is never dropped
            dir: tempfile::Builder::new()
                .prefix("trust-")
                .tempdir_in(notary.dir())
                .expect("create trust dir"),
            inited: Mutex::new(HashSet::new()),
            delegations: Mutex::new(HashSet::new()),
        }
    }

    /// The trust directory (`notary -d`).
    pub fn trust_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `notary -s URL -d DIR --tlscacert CA ARGS...` with the passphrases set.
    pub fn notary(&self, args: &[&str]) -> CmdOutput {
        run(&mut self.with_notary_args(Command::new("notary"), args))
    }

    /// `notary key rotate GUN root`: a new root key, published at once as the next root
    /// version, signed by the old key and the new one. The CLI asks "Are you sure you want to
    /// proceed? (yes/no)" on stdin, so "yes" is piped in.
    pub fn rotate_root(&self, gun: &str) -> CmdOutput {
        let mut sh = Command::new("sh");
        sh.args(["-c", r#"echo yes | exec notary "$@""#, "sh"]);
        let out = run(&mut self.with_notary_args(sh, &["key", "rotate", gun, "root"]));
        assert!(
            out.ok,
            "notary key rotate {gun} root failed:\n{}",
            out.combined()
        );
        out
    }

    /// `cmd` with notary's global flags, `args`, and the passphrases in its environment.
    fn with_notary_args(&self, mut cmd: Command, args: &[&str]) -> Command {
        cmd.arg("-s")
            .arg(&self.url)
            .arg("-d")
            .arg(self.dir.path())
            .arg("--tlscacert")
            .arg(&self.ca)
            .args(args)
            .env("NOTARY_ROOT_PASSPHRASE", ROOT_PASSPHRASE)
            .env("NOTARY_TARGETS_PASSPHRASE", TARGETS_PASSPHRASE)
            .env("NOTARY_SNAPSHOT_PASSPHRASE", SNAPSHOT_PASSPHRASE)
            .env("NOTARY_DELEGATION_PASSPHRASE", DELEGATION_PASSPHRASE)
            .env("HOME", self.dir.path());
        cmd
    }

    /// [`Signer::notary`], panicking with the output unless it succeeds.
    pub fn notary_ok(&self, args: &[&str]) -> CmdOutput {
        let out = self.notary(args);
        assert!(
            out.ok,
            "notary {} failed:\n{}",
            args.join(" "),
            out.combined()
        );
        out
    }

    /// Initialises `gun` on first use (docker push style: server-managed snapshot key).
    pub fn init(&self, gun: &str) {
        let mut inited = self.inited.lock().unwrap();
        if inited.contains(gun) {
            return;
        }
        self.notary_ok(&["init", gun]);
        self.notary_ok(&["key", "rotate", gun, "snapshot", "-r"]);
        self.notary_ok(&["publish", gun]);
        inited.insert(gun.to_string());
    }

    /// Signs `tag` = (size, sha256 hex) into `role` and publishes.
    pub fn sign_hash(&self, gun: &str, tag: &str, size: u64, sha256_hex: &str, role: &Role) {
        self.init(gun);
        let size_s = size.to_string();
        match role {
            Role::Targets => {
                self.notary_ok(&["addhash", gun, tag, &size_s, "--sha256", sha256_hex, "-p"]);
            }
            _ => {
                self.ensure_delegation(gun, role);
                let r = role.name();
                self.notary_ok(&[
                    "addhash", gun, tag, &size_s, "--sha256", sha256_hex, "--roles", &r, "-p",
                ]);
            }
        }
    }

    /// Signs an image pushed by [`super::images`] under `tag`.
    /// Signs the standard set pushed by `images::seed`: `v1` in targets, `multi` in
    /// targets/releases, `qa-only` only in targets/qa (which Docker's rule ignores); `unsigned`
    /// and the rest stay unsigned.
    pub fn sign_seeded(&self, gun: &str, seeded: &super::images::Seeded) {
        self.sign(gun, "v1", seeded.get("v1"), &Role::Targets);
        self.sign(gun, "multi", seeded.get("multi"), &Role::Releases);
        self.sign(
            gun,
            "qa-only",
            seeded.get("qa-only"),
            &Role::delegation("qa", KeyType::Ec),
        );
    }

    pub fn sign(&self, gun: &str, tag: &str, image: &ImageInfo, role: &Role) {
        let hex = image.digest.strip_prefix("sha256:").expect("sha256 digest");
        self.sign_hash(gun, tag, image.size, hex, role);
    }

    /// Removes `tag` from `role` and publishes.
    pub fn unsign(&self, gun: &str, tag: &str, role: &Role) {
        let r = role.name();
        self.notary_ok(&["remove", gun, tag, "--roles", &r, "-p"]);
    }

    fn ensure_delegation(&self, gun: &str, role: &Role) {
        let mut dels = self.delegations.lock().unwrap();
        let name = role.name();
        if dels.contains(&(gun.to_string(), name.clone())) {
            return;
        }
        let kt = match role {
            Role::Delegation { key, .. } => *key,
            _ => KeyType::Ec,
        };
        let base = name.trim_start_matches("targets/").replace('/', "_");
        let kdir = self.dir.path().join("delegation-keys");
        let ck = kdir.join(format!("{base}.crt"));
        let cert = if ck.exists() {
            CertKey {
                cert: ck,
                key: kdir.join(format!("{base}.key")),
            }
        } else {
            let c = self_signed(&kdir, &base, &base, kt);
            self.notary_ok(&[
                "key",
                "import",
                &c.key.display().to_string(),
                "--role",
                &name,
            ]);
            c
        };
        self.notary_ok(&[
            "delegation",
            "add",
            gun,
            &name,
            &cert.cert.display().to_string(),
            "--all-paths",
            "-p",
        ]);
        dels.insert((gun.to_string(), name));
    }

    /// `notary list GUN [--roles ROLE]` output.
    pub fn list(&self, gun: &str, role: Option<&Role>) -> CmdOutput {
        match role {
            None => self.notary(&["list", gun]),
            Some(r) => {
                let n = r.name();
                self.notary(&["list", gun, "--roles", &n])
            }
        }
    }
}
