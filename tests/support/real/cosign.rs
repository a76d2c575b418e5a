//! cosign test signatures on a real registry: uploading one byte for byte under its `.sig`
//! tag, and the Portcullis config that trusts the test key.

use std::path::{Path, PathBuf};

use super::images::{self, Format, ImageInfo, ImageSpec};
use super::portcullis::Portcullis;
use super::registry::{Registry, RegistryAuth};
use crate::support::cosign::signer::{CosignTestKey, SignedSig};

/// A fresh registry holding one image signed by a fresh test key (its `.sig` pushed), and
/// that key's public half in a file.
pub struct KeySigned {
    pub reg: Registry,
    pub img: ImageInfo,
    pub sig: SignedSig,
    /// `<registry>/<repo>`, as clients name it.
    pub reference: String,
    pub key: PathBuf,
    _keydir: tempfile::TempDir,
}

impl KeySigned {
    /// `repo:tag` with an image made from `text`.
    pub fn start(repo: &str, tag: &str, text: &str) -> KeySigned {
        let reg = Registry::start(RegistryAuth::None);
        let img = images::push(&reg, repo, tag, &ImageSpec::single(text), Format::Oci);
        let trusted = CosignTestKey::generate();
        let reference = format!("{}/{repo}", reg.addr());
        let sig = trusted.sign_image(&reference, &img.digest);
        push_sig(&reg, repo, &sig);
        let keydir = tempfile::tempdir().unwrap();
        let key = keydir.path().join("ci.pub");
        trusted.write_public_key(&key);
        KeySigned {
            reg,
            img,
            sig,
            reference,
            key,
            _keydir: keydir,
        }
    }
}

/// `[trust.ci-key]`: a `cosign-key` source with the public key at `key`, key-only signatures.
pub fn ci_key_source(key: &Path) -> String {
    format!(
        r#"[trust.ci-key]
type = "cosign-key"
keys = ["{key}"]
transparency_log = "not-required"
"#,
        key = key.display(),
    )
}

/// A Portcullis config for `reg` (enforce) whose `<registry>/team/*` repositories trust
/// `ci-key` only.
pub fn ci_key_config(reg: &Registry, key: &Path) -> String {
    format!(
        r#"{registry}
{source}
[[policy]]
repositories = ["{host}/team/*"]
any_of = ["ci-key"]
"#,
        registry = Portcullis::registry_section(reg, "enforce"),
        source = ci_key_source(key),
        host = reg.addr(),
    )
}

/// Writes `sig` as a one-image OCI layout (tag `sig`) and uploads it to `repo` under its
/// `.sig` tag.
pub fn push_sig(reg: &Registry, repo: &str, sig: &SignedSig) {
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    for (d, bytes) in [
        (&sig.payload_digest, &sig.payload),
        (&sig.config_digest, &sig.config),
        (&sig.manifest_digest, &sig.manifest),
    ] {
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), bytes).unwrap();
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sig.manifest_digest, "size": sig.manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "sig"},
        }],
    });
    std::fs::write(dir.path().join("index.json"), index.to_string()).unwrap();
    std::fs::write(
        dir.path().join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    images::upload_layout(reg, repo, &sig.tag, dir.path(), "sig");
}
