//! The kubelet's path: a private containerd 1.6 with the CRI plugin ON, driven over its unix
//! socket with the CRI gRPC API (`runtime.v1.ImageService`, crate `k8s-cri`), as crictl and the
//! kubelet do. Pulls go through `[plugins."io.containerd.grpc.v1.cri".registry] config_path`,
//! a hosts.toml directory that containerd re-reads on every pull.
//!
//! The daemon: own root, state and socket; `disable_tcp_service = true`,
//! `stream_server_port = "0"`, an empty private CNI `conf_dir` ("failed to load cni" is logged,
//! harmless for pulls). Images land in containerd's `k8s.io` namespace.
//!
//! `k8s-cri` builds its gRPC stubs with `protoc` (Debian: `protobuf-compiler`) at BUILD time of
//! the dev-dependency; without it `cargo test` fails to compile (prost-build's message names the
//! package). [`CriContainerd::start`] checks for it anyway, so the dependency is stated in code.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    Image, ImageSpec, ImageStatusRequest, ListImagesRequest, PullImageRequest, RemoveImageRequest,
    VersionRequest,
};
use tonic::transport::Channel;

use super::clients::unmount_under;
use super::proc::{CLEAN_PATH, CmdOutput, Daemon, require_tool, run, tempdir};

/// The containerd namespace the CRI plugin uses.
pub const K8S_NAMESPACE: &str = "k8s.io";

/// A failed CRI call: the gRPC code and message exactly as the kubelet receives them.
#[derive(Clone, Debug)]
pub struct CriError {
    pub code: tonic::Code,
    pub message: String,
}

impl std::fmt::Display for CriError {
    /// As the kubelet prints it: `rpc error: code = Unknown desc = MESSAGE`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rpc error: code = {:?} desc = {}",
            self.code, self.message
        )
    }
}

impl From<tonic::Status> for CriError {
    fn from(s: tonic::Status) -> Self {
        CriError {
            code: s.code(),
            message: s.message().to_string(),
        }
    }
}

/// The outcome of `PullImage`: the image ref containerd returns (the image ID, i.e. the config
/// digest) or the gRPC error.
pub type PullResult = Result<String, CriError>;

/// Panics unless `r` failed with gRPC code Unknown (how containerd reports a refused pull) and
/// a message containing every one of `needles`. Returns the message.
pub fn assert_pull_refused(what: &str, r: &PullResult, needles: &[&str]) -> String {
    let e = match r {
        Ok(id) => panic!("{what}: PullImage succeeded ({id}) but should have been refused"),
        Err(e) => e,
    };
    assert_eq!(
        e.code,
        tonic::Code::Unknown,
        "{what}: unexpected gRPC code: {e}"
    );
    for n in needles {
        assert!(
            e.message.contains(n),
            "{what}: the message lacks {n:?}:\n{}",
            e.message
        );
    }
    e.message.clone()
}

/// A private containerd with the CRI plugin, plus a CRI client on its socket.
/// Drop stops the daemon and unmounts what it left under its directory.
pub struct CriContainerd {
    daemon: Option<Daemon>,
    sock: PathBuf,
    hosts: PathBuf,
    snapshotter: String,
    rt: tokio::runtime::Runtime,
    channel: Channel,
    dir: tempfile::TempDir,
}

/// Where the CRI plugin's registry `config_path` is set.
#[derive(Clone, Copy)]
enum Layout {
    /// In config.toml.
    Main,
    /// Nowhere.
    Unset,
    /// Only in the CRI section of an imported drop-in.
    DropInSets,
    /// In config.toml, but an imported drop-in's CRI section (without it) replaces that one.
    DropInDrops,
}

impl CriContainerd {
    /// Starts the daemon (overlayfs when it works here, else native) and waits until the CRI
    /// image service answers. Panics naming the Debian package when a tool is missing.
    pub fn start() -> CriContainerd {
        Self::start_with(Layout::Main)
    }

    /// Like [`CriContainerd::start`], but with the CRI plugin's registry `config_path` unset
    /// (containerd then reads no hosts.toml at all): the node `portcullis doctor` must fail.
    pub fn start_without_config_path() -> CriContainerd {
        Self::start_with(Layout::Unset)
    }

    /// Like [`CriContainerd::start`], with the CRI plugin's section moved into a drop-in that
    /// config.toml imports (`imports = ["<dir>/conf.d/*.toml"]`): `with_config_path` says
    /// whether that section sets the registry `config_path` (it replaces the main file's whole
    /// section, which then sets it in vain).
    pub fn start_with_drop_in(with_config_path: bool) -> CriContainerd {
        Self::start_with(if with_config_path {
            Layout::DropInSets
        } else {
            Layout::DropInDrops
        })
    }

    fn start_with(layout: Layout) -> CriContainerd {
        require_tool("containerd", "containerd");
        require_tool("ctr", "containerd");
        require_tool("protoc", "protobuf-compiler");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let dir = tempdir("pc-cri-");
        let mut tried = Vec::new();
        for snapshotter in ["overlayfs", "native"] {
            match Self::try_start(&rt, dir.path(), snapshotter, layout) {
                Ok((daemon, channel)) => {
                    return CriContainerd {
                        daemon: Some(daemon),
                        sock: dir.path().join("c.sock"),
                        hosts: dir.path().join("certs.d"),
                        snapshotter: snapshotter.to_string(),
                        rt,
                        channel,
                        dir,
                    };
                }
                Err(e) => tried.push(format!("with snapshotter {snapshotter}: {e}")),
            }
        }
        panic!(
            "containerd with the CRI plugin did not start:\n{}",
            tried.join("\n----\n")
        );
    }

    /// The CRI plugin's section, with or without the registry's `config_path`.
    fn cri_section(d: &Path, snapshotter: &str, config_path: bool) -> String {
        let registry = if config_path {
            format!(
                "  [plugins.\"io.containerd.grpc.v1.cri\".registry]\n    config_path = \"{}\"\n",
                d.join("certs.d").display()
            )
        } else {
            String::new()
        };
        format!(
            r#"[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "{snapshotter}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{d}/cni-bin"
    conf_dir = "{d}/cni-conf"
{registry}"#,
            d = d.display(),
        )
    }

    /// config.toml, and the drop-in it imports when the layout has one.
    fn config(d: &Path, snapshotter: &str, layout: Layout) -> (String, Option<String>) {
        let (imports, main_cri, drop_in) = match layout {
            Layout::Main => (false, Self::cri_section(d, snapshotter, true), None),
            Layout::Unset => (false, Self::cri_section(d, snapshotter, false), None),
            Layout::DropInSets => (
                true,
                Self::cri_section(d, snapshotter, false),
                Some(Self::cri_section(d, snapshotter, true)),
            ),
            Layout::DropInDrops => (
                true,
                Self::cri_section(d, snapshotter, true),
                Some(Self::cri_section(d, snapshotter, false)),
            ),
        };
        let imports = if imports {
            format!("imports = [\"{}/conf.d/*.toml\"]\n", d.display())
        } else {
            String::new()
        };
        let main = format!(
            r#"version = 2
{imports}root = "{root}"
state = "{state}"

[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = "{d}/debug.sock"
  level = "info"
[metrics]
  address = ""

{main_cri}"#,
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("c.sock").display(),
            d = d.display(),
        );
        (main, drop_in)
    }

    fn try_start(
        rt: &tokio::runtime::Runtime,
        d: &Path,
        snapshotter: &str,
        layout: Layout,
    ) -> Result<(Daemon, Channel), String> {
        for sub in ["cni-bin", "cni-conf", "certs.d", "conf.d"] {
            fs::create_dir_all(d.join(sub)).unwrap();
        }
        let config = d.join(format!("config-{snapshotter}.toml"));
        let (main, drop_in) = Self::config(d, snapshotter, layout);
        fs::write(&config, main).unwrap();
        if let Some(text) = drop_in {
            fs::write(d.join("conf.d").join("50-cri.toml"), text).unwrap();
        }
        let sock = d.join("c.sock");
        let _ = fs::remove_file(&sock);
        let mut cmd = Command::new("env");
        cmd.args([
            "-i",
            &format!("PATH={CLEAN_PATH}"),
            "containerd",
            "--config",
        ])
        .arg(&config);
        let mut daemon = Daemon::spawn(
            "containerd (CRI)",
            cmd,
            &d.join(format!("containerd-{snapshotter}.log")),
        );
        let mut channel = None;
        daemon.wait_ready(Duration::from_secs(30), || {
            if !sock.exists() {
                return false;
            }
            let Ok(ch) = rt.block_on(connect(&sock)) else {
                return false;
            };
            let mut rs = RuntimeServiceClient::new(ch.clone());
            let up = rt
                .block_on(rs.version(VersionRequest {
                    version: "v1".into(),
                }))
                .is_ok();
            if up {
                channel = Some(ch);
            }
            up
        })?;
        let channel = channel.expect("channel once ready");
        // the CRI plugin serves even when its snapshotter is unusable; check that one
        let plugins = ctr_at(&sock, &["plugins", "ls"]).stdout;
        let ok = plugins.lines().any(|l| {
            l.contains("io.containerd.snapshotter.v1")
                && l.split_whitespace().nth(1) == Some(snapshotter)
                && l.trim_end().ends_with("ok")
        });
        if !ok {
            let log = daemon.log_tail(20);
            daemon.stop(Duration::from_secs(5));
            unmount_under(d);
            return Err(format!(
                "snapshotter {snapshotter} is not usable here:\n{plugins}\n{log}"
            ));
        }
        Ok((daemon, channel))
    }

    pub fn snapshotter(&self) -> &str {
        &self.snapshotter
    }

    pub fn socket(&self) -> &Path {
        &self.sock
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The config.toml this daemon runs with.
    pub fn config_file(&self) -> PathBuf {
        self.dir
            .path()
            .join(format!("config-{}.toml", self.snapshotter))
    }

    /// The hosts.toml directory (`config_path`, when set).
    pub fn hosts_dir(&self) -> &Path {
        &self.hosts
    }

    /// The daemon's log (for the CRI plugin's own view of a failed pull).
    pub fn log(&self) -> String {
        self.daemon.as_ref().map(|d| d.log()).unwrap_or_default()
    }

    /// `ctr --address SOCK --namespace k8s.io ARGS...`
    pub fn ctr(&self, args: &[&str]) -> CmdOutput {
        ctr_at(&self.sock, args)
    }

    /// Writes `CONFIG_PATH/REGISTRY_HOST/hosts.toml` with `server` AND `[host."http://MIRROR"]`
    /// both the mirror (capabilities pull, resolve), so that containerd cannot fall back to the
    /// registry. This is the file `portcullis config containerd` is to generate. Returns it.
    pub fn mirror_through(&self, registry_host: &str, mirror: &str) -> PathBuf {
        self.write_hosts_toml(registry_host, &hosts_toml(mirror))
    }

    /// Writes `CONFIG_PATH/REGISTRY_HOST/hosts.toml` as given (read again on the next pull).
    pub fn write_hosts_toml(&self, registry_host: &str, content: &str) -> PathBuf {
        let d = self.hosts.join(registry_host);
        fs::create_dir_all(&d).unwrap();
        let f = d.join("hosts.toml");
        fs::write(&f, content).unwrap();
        f
    }

    fn images(&self) -> ImageServiceClient<Channel> {
        ImageServiceClient::new(self.channel.clone())
    }

    /// `ImageService/PullImage` of `reference` (no auth, no sandbox config), as the kubelet asks.
    pub fn pull(&self, reference: &str) -> PullResult {
        let mut c = self.images();
        self.rt
            .block_on(c.pull_image(PullImageRequest {
                image: Some(spec(reference)),
                auth: None,
                sandbox_config: None,
            }))
            .map(|r| r.into_inner().image_ref)
            .map_err(CriError::from)
    }

    /// `ImageService/ImageStatus`: Some(image) when containerd has `reference`.
    pub fn image_status(&self, reference: &str) -> Option<Image> {
        let mut c = self.images();
        self.rt
            .block_on(c.image_status(ImageStatusRequest {
                image: Some(spec(reference)),
                verbose: false,
            }))
            .unwrap_or_else(|e| panic!("ImageStatus {reference}: {}", CriError::from(e)))
            .into_inner()
            .image
    }

    /// `ImageService/ListImages` (no filter).
    pub fn list_images(&self) -> Vec<Image> {
        let mut c = self.images();
        self.rt
            .block_on(c.list_images(ListImagesRequest { filter: None }))
            .unwrap_or_else(|e| panic!("ListImages: {}", CriError::from(e)))
            .into_inner()
            .images
    }

    /// `ImageService/RemoveImage` (a missing image is not an error in CRI).
    pub fn remove_image(&self, reference: &str) {
        let mut c = self.images();
        self.rt
            .block_on(c.remove_image(RemoveImageRequest {
                image: Some(spec(reference)),
            }))
            .unwrap_or_else(|e| panic!("RemoveImage {reference}: {}", CriError::from(e)));
    }

    /// The manifest digest containerd recorded for `reference` (from ImageStatus' repo_digests,
    /// `HOST/REPO@sha256:...`): for an index, the index's digest.
    pub fn repo_digest(&self, reference: &str) -> Option<String> {
        let repo = reference
            .rsplit_once(':')
            .map(|(r, _)| r)
            .unwrap_or(reference);
        self.image_status(reference)?
            .repo_digests
            .iter()
            .find_map(|d| d.strip_prefix(&format!("{repo}@")).map(str::to_string))
    }
}

impl Drop for CriContainerd {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop(Duration::from_secs(5));
        }
        unmount_under(self.dir.path());
    }
}

/// hosts.toml for a registry served only through `mirror` (plain HTTP).
pub fn hosts_toml(mirror: &str) -> String {
    format!(
        "server = \"http://{mirror}\"\n\n[host.\"http://{mirror}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
    )
}

/// Like [`hosts_toml`], with `server` limited to push: containerd then tries only the `[host]`
/// for pulls, so a refused tag costs one HEAD instead of two (the default file's `server` is
/// tried after the refused `[host]`).
pub fn hosts_toml_server_push_only(mirror: &str) -> String {
    format!(
        "server = \"http://{mirror}\"\ncapabilities = [\"push\"]\n\n[host.\"http://{mirror}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
    )
}

/// hosts.toml naming the mirror only as `server`, with no `[host]` table. containerd 1.6.20
/// cannot parse it ("failed to decode hosts.toml": "invalid `host` tree") and then ignores it,
/// pulling from the registry itself: kept to show that failure mode.
pub fn hosts_toml_without_host_table(mirror: &str) -> String {
    format!("server = \"http://{mirror}\"\ncapabilities = [\"pull\", \"resolve\"]\n")
}

fn spec(reference: &str) -> ImageSpec {
    ImageSpec {
        image: reference.to_string(),
        ..Default::default()
    }
}

fn ctr_at(sock: &Path, args: &[&str]) -> CmdOutput {
    run(Command::new("ctr")
        .arg("--address")
        .arg(sock)
        .args(["--namespace", K8S_NAMESPACE])
        .args(args))
}

/// A tonic channel over the unix socket: the one `portcullis doctor` uses.
async fn connect(sock: &Path) -> Result<Channel, String> {
    portcullis::doctor::pull::connect(sock).await
}
