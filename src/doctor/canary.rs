//! The canary: a tiny image that this Portcullis serves under a reserved repository
//! (`<registry>/portcullis-doctor/canary:<nonce>`) only to a nonce `portcullis doctor` made.
//!
//! Why a nonce and not a fixed tag: a runtime that pulls the canary must have asked THIS proxy
//! for it, right now. A fixed tag could be served from a runtime's own store or pushed to the
//! real registry by anyone; a fresh nonce that only the holder of the key can make cannot.
//!
//! The key is `<cache.dir>/doctor/canary.key`, made by `serve` at start (the service owns its
//! cache directory; a key made by the doctor running as another user could be unreadable to
//! the service). A nonce is `<unix seconds>-<16 hex random>-<32 hex HMAC-SHA256>`, a valid tag,
//! accepted for [`NONCE_TTL`]. The image itself is constant and harmless, so its manifest by
//! digest and its two blobs are served to anyone; only the tag needs the nonce.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use sha2::{Digest as _, Sha256};

/// The reserved repository, the same under every registry.
pub const REPOSITORY: &str = "portcullis-doctor/canary";
/// How long a nonce is accepted (clock skew between the two processes included).
pub const NONCE_TTL: Duration = Duration::from_secs(600);
/// OCI media types of the canary.
pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
const DOMAIN: &[u8] = b"portcullis-doctor-canary\0";

/// Where the key lives under `cache.dir`.
pub fn key_path(cache_dir: &Path) -> PathBuf {
    cache_dir.join("doctor").join("canary.key")
}

/// Makes the key if there is none (serve, at start). Never replaces one: a doctor holding the
/// old key would otherwise fail for no reason. Created under another name and hard-linked into
/// place, so a reader never sees a half-written key and two starters cannot both win.
pub fn ensure_key(cache_dir: &Path) -> std::io::Result<()> {
    let path = key_path(cache_dir);
    if path.exists() {
        return Ok(());
    }
    let dir = cache_dir.join("doctor");
    create_private_dir(&dir)?;
    let mut key = [0u8; 32];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| std::io::Error::other("no system randomness"))?;
    let tmp = tempfile::Builder::new()
        .prefix(".canary.key.")
        .tempfile_in(&dir)?;
    tmp.as_file().write_all(hex::encode(key).as_bytes())?;
    tmp.as_file().sync_all()?;
    match std::fs::hard_link(tmp.path(), &path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Reads the key; an absent or malformed key is an error (nothing is served without one).
pub fn read_key(cache_dir: &Path) -> std::io::Result<hmac::Key> {
    let text = std::fs::read_to_string(key_path(cache_dir))?;
    let raw = hex::decode(text.trim())
        .ok()
        .filter(|k| k.len() == 32)
        .ok_or_else(|| std::io::Error::other("canary.key is not 64 hex digits"))?;
    Ok(hmac::Key::new(hmac::HMAC_SHA256, &raw))
}

fn mac(key: &hmac::Key, body: &str) -> String {
    let mut msg = DOMAIN.to_vec();
    msg.extend_from_slice(body.as_bytes());
    hex::encode(&hmac::sign(key, &msg).as_ref()[..16])
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A fresh nonce (the doctor).
pub fn make_nonce(key: &hmac::Key) -> std::io::Result<String> {
    let mut r = [0u8; 8];
    SystemRandom::new()
        .fill(&mut r)
        .map_err(|_| std::io::Error::other("no system randomness"))?;
    let body = format!("{}-{}", now_secs(), hex::encode(r));
    let m = mac(key, &body);
    Ok(format!("{body}-{m}"))
}

/// Whether `nonce` was made with `key` within [`NONCE_TTL`] (the service).
pub fn nonce_valid(key: &hmac::Key, nonce: &str) -> bool {
    let Some((body, m)) = nonce.rsplit_once('-') else {
        return false;
    };
    let Some(Ok(t)) = body.split_once('-').map(|(t, _)| t.parse::<u64>()) else {
        return false;
    };
    let Ok(given) = hex::decode(m) else {
        return false;
    };
    let mut msg = DOMAIN.to_vec();
    msg.extend_from_slice(body.as_bytes());
    // A truncated tag is checked against the same prefix, compared in constant time
    // (aws-lc's CRYPTO_memcmp) so that a guesser learns nothing from the timing.
    let want = hmac::sign(key, &msg);
    let fresh = now_secs().abs_diff(t) <= NONCE_TTL.as_secs();
    fresh
        && given.len() == 16
        && aws_lc_rs::constant_time::verify_slices_are_equal(&want.as_ref()[..16], &given).is_ok()
}

/// The canary image: manifest, config and one uncompressed layer, all constant.
pub struct Image {
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub config: Vec<u8>,
    pub config_digest: String,
    pub layer: Vec<u8>,
    pub layer_digest: String,
}

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// The architecture in Go's spelling, so that containerd and dockerd take the image as theirs.
fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Builds the canary (cheap: a 2 KiB tar and two small JSON documents).
pub fn image() -> Image {
    let layer = layer_tar();
    let layer_digest = sha256(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": goarch(),
        "os": "linux",
        "config": {"Labels": {"io.portcullis.doctor": "canary"}},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))
    .unwrap_or_default();
    let config_digest = sha256(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": LAYER_TYPE, "digest": layer_digest, "size": layer.len()}],
    }))
    .unwrap_or_default();
    Image {
        manifest_digest: sha256(&manifest),
        manifest,
        config,
        config_digest,
        layer,
        layer_digest,
    }
}

/// One file, fixed metadata: the same bytes on every node and every run.
fn layer_tar() -> Vec<u8> {
    let data = b"This image proves that this node's runtime pulls through Portcullis.\n";
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    let mut b = tar::Builder::new(Vec::new());
    // Writing into a Vec cannot fail; an empty layer would only make the pull fail (closed).
    let _ = b.append_data(&mut h, "portcullis-doctor", &data[..]);
    b.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_round_trip_and_forgery() {
        let dir = tempfile::tempdir().unwrap();
        ensure_key(dir.path()).unwrap();
        let first = std::fs::read(key_path(dir.path())).unwrap();
        ensure_key(dir.path()).unwrap();
        assert_eq!(std::fs::read(key_path(dir.path())).unwrap(), first, "kept");
        let key = read_key(dir.path()).unwrap();
        let n = make_nonce(&key).unwrap();
        assert!(n.parse::<crate::refs::Tag>().is_ok(), "{n} is a tag");
        assert!(nonce_valid(&key, &n));
        let other = hmac::Key::new(hmac::HMAC_SHA256, &[7u8; 32]);
        assert!(!nonce_valid(&other, &n), "another key");
        let (body, _) = n.rsplit_once('-').unwrap();
        assert!(!nonce_valid(&key, &format!("{body}-{}", "0".repeat(32))));
        let old = format!("1-00-{}", mac(&key, "1-00"));
        assert!(!nonce_valid(&key, &old), "expired");
        assert!(!nonce_valid(&key, "latest"));
    }

    #[test]
    fn image_is_consistent() {
        let i = image();
        let m: serde_json::Value = serde_json::from_slice(&i.manifest).unwrap();
        assert_eq!(m["layers"][0]["digest"], i.layer_digest);
        assert_eq!(m["config"]["digest"], i.config_digest);
        assert_eq!(sha256(&i.manifest), i.manifest_digest);
        assert_eq!(i.layer.len() % 512, 0);
        assert_eq!(image().manifest, i.manifest, "deterministic");
    }
}
