//! The canary pulled through a runtime's own pull path: CRI `PullImage` on containerd's socket
//! (what the kubelet sends) and `skopeo copy` with the node's registries.conf (containers/image,
//! the library of podman, CRI-O and buildah). Each removes what it pulled.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::{ImageSpec, PullImageRequest, RemoveImageRequest};
use tonic::transport::{Channel, Endpoint, Uri};

/// How long one CRI call or skopeo run may take: the canary is 2 KiB, but the tests' harness
/// shares this channel for real images.
const PULL_TIMEOUT: Duration = Duration::from_secs(120);

/// A CRI channel over a unix socket (also what the tests' containerd harness uses).
pub async fn connect(sock: &Path) -> Result<Channel, String> {
    let sock = sock.to_path_buf();
    // tonic needs a URI; the connector ignores it and dials the unix socket.
    Endpoint::from_static("http://[::]:50051")
        .connect_timeout(Duration::from_secs(5))
        .timeout(PULL_TIMEOUT)
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let sock = sock.clone();
            async move {
                let s = tokio::net::UnixStream::connect(sock).await?;
                Ok::<_, std::io::Error>(TokioIo::new(s))
            }
        }))
        .await
        .map_err(|e| format!("cannot connect to the CRI socket: {e}"))
}

fn spec(reference: &str) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: reference.to_string(),
        ..Default::default()
    })
}

/// `PullImage` then `RemoveImage`; the image ID on success, the runtime's error otherwise.
pub(super) async fn cri(sock: &Path, reference: &str) -> Result<String, String> {
    let ch = connect(sock).await?;
    let mut c = ImageServiceClient::new(ch);
    let pulled = c
        .pull_image(PullImageRequest {
            image: spec(reference),
            auth: None,
            sandbox_config: None,
        })
        .await
        .map_err(|s| format!("rpc error: code = {:?} desc = {}", s.code(), s.message()))?
        .into_inner()
        .image_ref;
    // A failed removal leaves a 2 KiB image behind; the proof stands, so it is not an error.
    let _ = c
        .remove_image(RemoveImageRequest {
            image: spec(reference),
        })
        .await;
    Ok(pulled)
}

/// `skopeo copy` of the canary into a temporary OCI layout with `registries_conf` (the
/// drop-in directories are read by containers/image itself, as for podman). The policy is not
/// what is tested here, so `--insecure-policy`: the image is never run.
pub(super) async fn skopeo(registries_conf: &Path, reference: &str) -> Result<(), String> {
    let tmp = tempfile::Builder::new()
        .prefix("portcullis-doctor-")
        .tempdir()
        .map_err(|e| format!("temporary directory: {e}"))?;
    let dest = format!("oci:{}:canary", tmp.path().join("oci").display());
    let mut cmd = tokio::process::Command::new("skopeo");
    cmd.arg("--insecure-policy")
        .arg("--registries-conf")
        .arg(registries_conf)
        .arg("copy")
        .arg(format!("docker://{reference}"))
        .arg(dest)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(PULL_TIMEOUT, cmd.output())
        .await
        .map_err(|_| format!("skopeo did not finish within {} s", PULL_TIMEOUT.as_secs()))?
        .map_err(|e| {
            format!("cannot run skopeo ({e}): install skopeo (Debian: apt-get install skopeo)")
        })?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(err
            .trim()
            .lines()
            .last()
            .unwrap_or("skopeo failed")
            .to_string())
    }
}
