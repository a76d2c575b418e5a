//! Signature artifacts pushed byte for byte to a real registry the way their tools store them
//! on a registry without the referrers API (Distribution 2.8): a referrer (a manifest with a
//! `subject`) by digest plus the referrers tag schema's index at `sha256-<hex of subject>`
//! listing it, as oras-go maintains it for notation and cosign v3; or a manifest under a tag
//! of its own (cosign's legacy `sha256-<hex>.sig`).

use std::fs;
use std::path::Path;

use super::images::upload_layout;
use super::registry::{Registry, sha256_hex};

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A manifest and the blobs it names (config and layers).
#[derive(Clone, Debug)]
pub struct Artifact {
    pub manifest: Vec<u8>,
    pub blobs: Vec<Vec<u8>>,
}

impl Artifact {
    pub fn digest(&self) -> String {
        format!("sha256:{}", sha256_hex(&self.manifest))
    }

    /// Its entry in a referrers index (oras-go: media type, digest, size, `artifactType` and
    /// the manifest's annotations).
    pub fn descriptor(&self) -> serde_json::Value {
        let m: serde_json::Value = serde_json::from_slice(&self.manifest).expect("manifest json");
        let mut d = serde_json::json!({
            "mediaType": m.get("mediaType").and_then(|v| v.as_str()).unwrap_or(OCI_MANIFEST),
            "digest": self.digest(),
            "size": self.manifest.len(),
        });
        if let Some(a) = m.get("artifactType") {
            d["artifactType"] = a.clone();
        }
        if let Some(a) = m.get("annotations") {
            d["annotations"] = a.clone();
        }
        d
    }
}

/// The referrers tag schema's tag for `digest` (`sha256:<hex>` -> `sha256-<hex>`).
pub fn schema_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

/// Writes an OCI layout holding every blob and manifest of `artifacts` plus `top` (a manifest
/// or index of `top_type`) tagged `top` in index.json.
fn layout(dir: &Path, artifacts: &[&Artifact], top: &[u8], top_type: &str) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| fs::write(blobs.join(sha256_hex(bytes)), bytes).unwrap();
    for a in artifacts {
        a.blobs.iter().for_each(|b| put(b));
        put(&a.manifest);
    }
    put(top);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": top_type,
            "digest": format!("sha256:{}", sha256_hex(top)), "size": top.len(),
            "annotations": {"org.opencontainers.image.ref.name": "top"},
        }],
    });
    fs::write(dir.join("index.json"), index.to_string()).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// Pushes `a` (its blobs, then its manifest) under `reference` (a tag or its digest).
pub fn push_manifest(reg: &Registry, repo: &str, reference: &str, a: &Artifact) {
    let dir = tempfile::tempdir().unwrap();
    layout(dir.path(), &[a], &a.manifest, OCI_MANIFEST);
    upload_layout(reg, repo, reference, dir.path(), "top");
}

/// Stores `referrers` of `subject` as a client does on a registry without the referrers API:
/// each manifest by digest, then the tag schema index listing `listed` (their descriptors)
/// at `sha256-<hex>`. Returns the index bytes.
pub fn push_referrers(
    reg: &Registry,
    repo: &str,
    subject: &str,
    referrers: &[&Artifact],
) -> Vec<u8> {
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": referrers.iter().map(|a| a.descriptor()).collect::<Vec<_>>(),
    }))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    layout(dir.path(), referrers, &index, OCI_INDEX);
    upload_layout(reg, repo, &schema_tag(subject), dir.path(), "top");
    index
}

/// `curl` of `/v2/<repo>/<path>` at `url` (the proxy) accepting an index or a manifest:
/// (status, headers lowercased, body).
pub fn through(url: &str, repo: &str, method: &str, path: &str) -> (u16, String, String) {
    // `-I` for HEAD (with `-X HEAD` curl would wait for a body).
    let verb: &[&str] = if method == "HEAD" {
        &["-I"]
    } else {
        &["-X", method]
    };
    let out = std::process::Command::new("curl")
        .args(["-sS", "-m", "30", "-D", "-", "-w", "\n%{http_code}"])
        .args(verb)
        .args(["-H", "Accept: application/vnd.oci.image.index.v1+json"])
        .args(["-H", "Accept: application/vnd.oci.image.manifest.v1+json"])
        .arg(format!("{url}/v2/{repo}/{path}"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (rest, status) = text.rsplit_once('\n').expect("status line");
    let (headers, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
    let status = status.trim().parse().expect("status");
    (status, headers.to_ascii_lowercase(), body.to_owned())
}

/// skopeo, podman and containerd's `ctr` pull each `(tag, digest)` of `signed` from
/// `host/repo` through `mirror` (skopeo and ctr: that digest), then are refused `refused_tag`:
/// skopeo's and podman's output carry every one of `reasons` (the proxy's DENIED message),
/// ctr's the 403 (it sends HEAD first, so it sees only the status).
pub fn pull_with_every_client(
    mirror: &str,
    image: &str,
    signed: &[(&str, &str)],
    refused_tag: &str,
    reasons: &[&str],
) {
    use super::clients::{Containerd, Podman, skopeo_pull};
    let r = |tag: &str| format!("{image}:{tag}");
    for (tag, digest) in signed {
        let got = skopeo_pull(mirror, &r(tag), None);
        got.assert_ok(&format!("skopeo {tag}"));
        assert_eq!(got.digest.as_deref(), Some(*digest), "skopeo {tag}");
    }
    let got = skopeo_pull(mirror, &r(refused_tag), None);
    let podman = Podman::new();
    for (tag, _) in signed {
        podman
            .pull(mirror, &r(tag), None)
            .assert_ok(&format!("podman {tag}"));
    }
    let podman_got = podman.pull(mirror, &r(refused_tag), None);
    for why in reasons {
        got.assert_refused(&format!("skopeo {refused_tag}"), why);
        podman_got.assert_refused(&format!("podman {refused_tag}"), why);
    }
    let c = Containerd::start();
    for (tag, digest) in signed {
        let got = c.pull(mirror, &r(tag), None);
        got.assert_ok(&format!("ctr {tag}"));
        assert_eq!(got.digest.as_deref(), Some(*digest), "ctr {tag}");
    }
    c.pull(mirror, &r(refused_tag), None)
        .assert_refused(&format!("ctr {refused_tag}"), "403");
}

/// Pushes one small OCI image per tag of `tags` (each with its own content) to `repo`.
pub fn push_tags<const N: usize>(
    reg: &Registry,
    repo: &str,
    note: &str,
    tags: [&str; N],
) -> [super::images::ImageInfo; N] {
    tags.map(|tag| {
        let spec = super::images::ImageSpec::single(&format!("{note} {tag}"));
        super::images::push(reg, repo, tag, &spec, super::images::Format::Oci)
    })
}

/// Portcullis in front of `reg` (enforce) whose one `[trust.<name>]` source (`keys`: the
/// table's lines) is the `any_of` of `reg`'s `team/*` repositories.
pub fn proxy_with_source(reg: &Registry, name: &str, keys: &str) -> super::portcullis::Portcullis {
    use super::portcullis::Portcullis;
    let config = format!(
        "{registry}\n[trust.{name}]\n{keys}\n\n[[policy]]\nrepositories = [\"{host}/team/*\"]\n\
         any_of = [\"{name}\"]\n",
        registry = Portcullis::registry_section(reg, "enforce"),
        host = reg.addr(),
    );
    Portcullis::start_with(&config, Portcullis::opts_for(reg))
}
