//! Verified manifests on disk, so that a restarted node serves its signed images with the
//! registry down (the in-memory cache in `api::manifests` is lost on restart).
//!
//! ```text
//! <cache.dir>/manifests/           0700
//!              sha256/<hex>        media type, '\n', then the manifest's exact bytes
//!              sha512/<hex>
//!              tmp/                writes in progress; emptied at start
//! ```
//!
//! One file per manifest, so an entry and its media type appear together by one rename.
//! Entries are written only after the bytes matched the digest they are named by, and are
//! hashed again on every read (a manifest is a few KiB; the check costs microseconds and
//! makes a file changed on disk a miss rather than a served lie). Like blobs, entries are
//! keyed by digest alone and consulted only after the trust gate.
//!
//! Manifests are not evicted: they are small (a thousand images' manifests are a few MiB)
//! and they are what the closure of trusted content is rebuilt from when the registry is
//! down. `portcullis cache verify` and an operator's `rm -r` are the ways to shrink it.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::refs::{Algorithm, Digest};

/// Longest media type line accepted back from disk (registries' media types are < 100 bytes).
const MAX_MEDIA_TYPE: usize = 256;

/// A manifest read back from disk, its bytes checked against its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredManifest {
    pub media_type: Option<String>,
    pub bytes: Bytes,
}

/// The manifest store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ManifestStore {
    root: PathBuf,
}

impl ManifestStore {
    /// Opens (creating, mode 0700) `<cache_dir>/manifests` and empties its `tmp/`.
    pub fn open(cache_dir: &Path) -> io::Result<ManifestStore> {
        let s = ManifestStore {
            root: cache_dir.join("manifests"),
        };
        let dirs = [
            s.root.clone(),
            s.tmp(),
            s.alg_dir(Algorithm::Sha256),
            s.alg_dir(Algorithm::Sha512),
        ];
        super::layout::open_private(&dirs, &s.tmp(), "manifest cache")?;
        Ok(s)
    }

    fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn alg_dir(&self, a: Algorithm) -> PathBuf {
        self.root.join(a.name())
    }

    fn path(&self, d: &Digest) -> PathBuf {
        self.alg_dir(d.algorithm()).join(d.hex())
    }

    /// The manifest stored under `d`, if there is one and it still hashes to `d`. An entry
    /// that does not (changed on disk, or unreadable) is removed and reported as a miss.
    pub async fn get(&self, d: &Digest) -> Option<StoredManifest> {
        let this = self.clone();
        let d = d.clone();
        tokio::task::spawn_blocking(move || this.get_blocking(&d))
            .await
            .ok()
            .flatten()
    }

    fn get_blocking(&self, d: &Digest) -> Option<StoredManifest> {
        let path = self.path(d);
        let raw = match fs::read(&path) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "manifest cache: entry not readable");
                return None;
            }
        };
        match decode(d, raw) {
            Ok(m) => Some(m),
            Err(why) => {
                crate::metrics::cache_write_failure("corrupt_manifest");
                tracing::error!(path = %path.display(), digest = %d, why, "manifest cache: entry does not verify; removed");
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores verified bytes under `d` (temp file, fsync, rename, directory fsync). The caller
    /// has checked that `bytes` hash to `d`; it is checked again here, since a wrong entry
    /// would be served for as long as it lives.
    pub async fn put(&self, d: &Digest, media_type: Option<&str>, bytes: Bytes) -> io::Result<()> {
        let this = self.clone();
        let d = d.clone();
        let media_type = media_type.map(str::to_string);
        tokio::task::spawn_blocking(move || this.put_blocking(&d, media_type.as_deref(), &bytes))
            .await
            .map_err(io::Error::other)?
    }

    fn put_blocking(&self, d: &Digest, media_type: Option<&str>, bytes: &[u8]) -> io::Result<()> {
        if d.of_same_algorithm(bytes) != *d {
            return Err(io::Error::other(format!("bytes do not hash to {d}")));
        }
        let mt = media_type.unwrap_or("");
        if mt.len() > MAX_MEDIA_TYPE || mt.contains('\n') {
            return Err(io::Error::other("media type not storable"));
        }
        let path = self.path(d);
        if path.exists() {
            return Ok(());
        }
        let mut tmp = tempfile::NamedTempFile::new_in(self.tmp())?;
        tmp.write_all(mt.as_bytes())?;
        tmp.write_all(b"\n")?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&path).map_err(|e| e.error)?;
        File::open(self.alg_dir(d.algorithm()))?.sync_all()
    }

    /// Every stored manifest's digest (for `cache verify` and bundle export).
    pub fn digests(&self) -> Vec<Digest> {
        let mut out = Vec::new();
        for a in [Algorithm::Sha256, Algorithm::Sha512] {
            let Ok(dir) = fs::read_dir(self.alg_dir(a)) else {
                continue;
            };
            for e in dir.flatten() {
                if let Some(d) = e
                    .file_name()
                    .to_str()
                    .and_then(|n| format!("{}:{n}", a.name()).parse::<Digest>().ok())
                {
                    out.push(d);
                }
            }
        }
        out
    }

    /// The store under `cache_dir` as it is: nothing created, `tmp/` left alone (a running
    /// `serve` may be writing there). For `portcullis cache verify`.
    pub fn at(cache_dir: &Path) -> ManifestStore {
        ManifestStore {
            root: cache_dir.join("manifests"),
        }
    }

    /// Re-reads `d`: `Ok(None)` when it is good, `Ok(Some(why))` when it was bad (or not
    /// readable) and is removed now; `Err` when it could not be removed.
    pub fn verify_entry(&self, d: &Digest) -> io::Result<Option<&'static str>> {
        let path = self.path(d);
        let why = match fs::read(&path) {
            Ok(raw) => match decode(d, raw) {
                Ok(_) => return Ok(None),
                Err(why) => why,
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(_) => "not readable",
        };
        fs::remove_file(&path)?;
        Ok(Some(why))
    }
}

/// Splits an entry into media type and bytes, and checks the bytes against `d`.
fn decode(d: &Digest, mut raw: Vec<u8>) -> Result<StoredManifest, &'static str> {
    let nl = raw
        .iter()
        .take(MAX_MEDIA_TYPE + 1)
        .position(|b| *b == b'\n')
        .ok_or("no media type line")?;
    let bytes = raw.split_off(nl + 1);
    raw.truncate(nl);
    let mt = String::from_utf8(raw).map_err(|_| "media type is not UTF-8")?;
    if d.of_same_algorithm(&bytes) != *d {
        return Err("bytes do not hash to the entry's name");
    }
    Ok(StoredManifest {
        media_type: (!mt.is_empty()).then_some(mt),
        bytes: Bytes::from(bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(b: &[u8]) -> Digest {
        Digest::sha256_of(b)
    }

    #[tokio::test]
    async fn round_trip_and_tamper() {
        let dir = tempfile::tempdir().unwrap();
        let s = ManifestStore::open(dir.path()).unwrap();
        let m = Bytes::from_static(br#"{"schemaVersion":2}"#);
        let d = digest(&m);
        assert_eq!(s.get(&d).await, None);
        s.put(
            &d,
            Some("application/vnd.oci.image.manifest.v1+json"),
            m.clone(),
        )
        .await
        .unwrap();
        let got = s.get(&d).await.unwrap();
        assert_eq!(got.bytes, m);
        assert_eq!(
            got.media_type.as_deref(),
            Some("application/vnd.oci.image.manifest.v1+json")
        );
        assert_eq!(s.digests(), vec![d.clone()]);
        // Survives a reopen (a restart); tmp leftovers are removed.
        fs::write(s.tmp().join("leftover"), b"x").unwrap();
        let s = ManifestStore::open(dir.path()).unwrap();
        assert_eq!(fs::read_dir(s.tmp()).unwrap().count(), 0);
        assert_eq!(s.get(&d).await.unwrap().bytes, m);
        // One byte changed on disk: a miss, and the entry is gone.
        let p = s.path(&d);
        let mut raw = fs::read(&p).unwrap();
        let last = raw.len() - 2;
        raw[last] ^= 1;
        fs::write(&p, raw).unwrap();
        assert_eq!(s.get(&d).await, None);
        assert!(!p.exists());
    }

    #[tokio::test]
    async fn refuses_bytes_that_are_not_the_digest() {
        let dir = tempfile::tempdir().unwrap();
        let s = ManifestStore::open(dir.path()).unwrap();
        let d = digest(b"one");
        assert!(s.put(&d, None, Bytes::from_static(b"two")).await.is_err());
        assert_eq!(s.get(&d).await, None);
        assert!(
            s.put(&d, Some("a\nb"), Bytes::from_static(b"one"))
                .await
                .is_err()
        );
        s.put(&d, None, Bytes::from_static(b"one")).await.unwrap();
        assert_eq!(s.get(&d).await.unwrap().media_type, None);
    }
}
