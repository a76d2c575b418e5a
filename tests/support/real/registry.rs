//! A real Distribution registry (Debian's docker-registry 2.8): plain HTTP on 127.0.0.1:PORT,
//! filesystem storage in its own tempdir, delete enabled, started with `env -i` (it reads
//! REGISTRY_* variables as config overrides).

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::proc::{
    CLEAN_PATH, CmdOutput, Daemon, free_port, http_status, require_tool, run, run_ok,
    start_with_retry, tempdir,
};
use super::token::{TOKEN_ISSUER, TOKEN_SERVICE, TokenIssuer};

/// Every manifest media type; the registry hides OCI content from requests without it.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// How clients authenticate to the registry.
#[derive(Clone, Debug)]
pub enum RegistryAuth {
    /// Anyone may pull and push.
    None,
    /// `auth: htpasswd` (bcrypt entry made with `htpasswd -Bbn`): `/v2/` answers 401 Basic.
    Htpasswd { user: String, pass: String },
    /// `auth: token` with the harness's token issuer: `/v2/` answers 401 Bearer realm=...
    /// `user`/`pass` get every action; anonymous callers get `anonymous_actions` (e.g. "pull").
    Token {
        user: String,
        pass: String,
        anonymous_actions: Vec<String>,
    },
}

impl RegistryAuth {
    pub fn htpasswd(user: &str, pass: &str) -> Self {
        RegistryAuth::Htpasswd {
            user: user.into(),
            pass: pass.into(),
        }
    }
    /// Token auth; anonymous callers get nothing.
    pub fn token(user: &str, pass: &str) -> Self {
        RegistryAuth::Token {
            user: user.into(),
            pass: pass.into(),
            anonymous_actions: vec![],
        }
    }
}

pub struct Registry {
    // field order: the daemon stops before its directory goes
    daemon: Daemon,
    token: Option<TokenIssuer>,
    addr: SocketAddr,
    auth: RegistryAuth,
    config: PathBuf,
    data: PathBuf,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry and waits until `/v2/` answers (200, or 401 with auth).
    pub fn start(auth: RegistryAuth) -> Registry {
        require_tool("docker-registry", "docker-registry");
        require_tool("curl", "curl");
        let dir = tempdir("pc-registry-");
        let data = dir.path().join("data");
        fs::create_dir_all(&data).unwrap();
        let token = match &auth {
            RegistryAuth::Token {
                user,
                pass,
                anonymous_actions,
            } => {
                let acts: Vec<&str> = anonymous_actions.iter().map(String::as_str).collect();
                Some(TokenIssuer::start(
                    &dir.path().join("token"),
                    user,
                    pass,
                    &acts,
                ))
            }
            _ => None,
        };
        let auth_yaml = match &auth {
            RegistryAuth::None => String::new(),
            RegistryAuth::Htpasswd { user, pass } => {
                require_tool("htpasswd", "apache2-utils");
                let out = run_ok(Command::new("htpasswd").args(["-Bbn", user, pass]));
                let f = dir.path().join("htpasswd");
                fs::write(&f, out.stdout.trim()).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: portcullis-test-registry\n    path: {}\n",
                    f.display()
                )
            }
            RegistryAuth::Token { .. } => {
                let t = token.as_ref().unwrap();
                format!(
                    "auth:\n  token:\n    realm: {}\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                    t.realm(),
                    t.cert_path().display()
                )
            }
        };
        let config = dir.path().join("registry.yml");
        let log = dir.path().join("registry.log");
        let (daemon, addr) = start_with_retry("docker-registry", |_| {
            let port = free_port();
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n\
                     http:\n  addr: {addr}\n  headers:\n    X-Content-Type-Options: [nosniff]\n{auth_yaml}",
                    data.display()
                ),
            )
            .unwrap();
            let mut cmd = Command::new("env");
            cmd.arg("-i")
                .arg(format!("PATH={CLEAN_PATH}"))
                .arg("docker-registry")
                .arg("serve")
                .arg(&config);
            let mut d = Daemon::spawn_with_cleanup("docker-registry", cmd, &log, Some(dir.path()));
            let url = format!("http://{addr}/v2/");
            d.wait_ready(Duration::from_secs(30), || {
                matches!(http_status(&url, &[]), Some(200) | Some(401))
            })?;
            Ok((d, addr))
        });
        Registry {
            daemon,
            token,
            addr,
            auth,
            config,
            data,
            dir,
        }
    }

    /// `127.0.0.1:PORT`: the registry host as clients and GUNs name it.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    pub fn socket_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The GUN of a repository on this registry (`127.0.0.1:PORT/REPO`).
    pub fn gun(&self, repo: &str) -> String {
        format!("{}/{repo}", self.addr)
    }

    pub fn auth(&self) -> &RegistryAuth {
        &self.auth
    }

    /// The user and password of the auth setting, if any.
    pub fn creds(&self) -> Option<(String, String)> {
        match &self.auth {
            RegistryAuth::None => None,
            RegistryAuth::Htpasswd { user, pass } | RegistryAuth::Token { user, pass, .. } => {
                Some((user.clone(), pass.clone()))
            }
        }
    }

    /// The token issuer of a `Token` registry.
    pub fn token_issuer(&self) -> Option<&TokenIssuer> {
        self.token.as_ref()
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The storage root (filesystem driver).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the registry process (SIGTERM, then SIGKILL after 5 s); its address then refuses
    /// connections. Its directory stays until Drop.
    pub fn stop(&mut self) {
        self.daemon.stop(Duration::from_secs(5));
    }

    /// The registry's log (includes its access log).
    pub fn log(&self) -> String {
        self.daemon.log()
    }

    pub fn log_path(&self) -> &Path {
        self.daemon.log_path()
    }

    /// curl arguments that authenticate a request for `repo` (Basic, or a minted Bearer token).
    pub fn curl_auth(&self, repo: &str) -> Vec<String> {
        match &self.auth {
            RegistryAuth::None => vec![],
            RegistryAuth::Htpasswd { user, pass } => vec!["-u".into(), format!("{user}:{pass}")],
            RegistryAuth::Token { user, .. } => {
                let t = self
                    .token
                    .as_ref()
                    .unwrap()
                    .mint(user, repo, &["pull", "push", "delete"]);
                vec!["-H".into(), format!("Authorization: Bearer {t}")]
            }
        }
    }

    /// GET a manifest (all media types accepted) as the registry serves it.
    pub fn get_manifest(&self, repo: &str, reference: &str) -> Manifest {
        let tmp = tempdir("pc-manifest-");
        let (body, hdr) = (tmp.path().join("body"), tmp.path().join("hdr"));
        let out = run(Command::new("curl")
            .args(["-sS", "-o"])
            .arg(&body)
            .arg("-D")
            .arg(&hdr)
            .args([
                "-w",
                "%{http_code}",
                "-H",
                &format!("Accept: {MANIFEST_ACCEPT}"),
            ])
            .args(self.curl_auth(repo))
            .arg(format!("{}/v2/{repo}/manifests/{reference}", self.url())));
        let status: u16 = out.stdout.trim().parse().unwrap_or(0);
        let bytes = fs::read(&body).unwrap_or_default();
        assert_eq!(
            status,
            200,
            "GET manifest {repo}:{reference} from {}: {}",
            self.addr,
            String::from_utf8_lossy(&bytes)
        );
        let headers = fs::read_to_string(&hdr).unwrap_or_default();
        let header = |name: &str| {
            headers
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        };
        let digest = format!("sha256:{}", sha256_hex(&bytes));
        let served = header("Docker-Content-Digest");
        assert_eq!(
            served, digest,
            "Docker-Content-Digest differs from the body's sha256"
        );
        Manifest {
            media_type: header("Content-Type"),
            digest,
            bytes,
        }
    }

    /// curl against this registry with auth for `repo` (extra args, then the path after the host).
    pub fn curl(&self, repo: &str, args: &[&str], path: &str) -> CmdOutput {
        run(Command::new("curl")
            .args(["-sS"])
            .args(self.curl_auth(repo))
            .args(args)
            .arg(format!("{}{path}", self.url())))
    }
}

/// A manifest as served.
#[derive(Clone, Debug)]
pub struct Manifest {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

/// Lower-case hex sha256.
pub fn sha256_hex(data: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
