//! `portcullis cache verify`: re-hashes every blob and manifest entry under `cache.dir` and
//! removes the ones that do not hash to their name.
//!
//! Entries are served without re-hashing (they were verified before the rename into place,
//! and the directory is 0700), so a file damaged on disk afterwards (a bad sector, an operator's
//! mistake) would be served until evicted; this is the way to find it. A file under `blobs/`
//! that is not named by a digest is removed too: `serve` never reads it.
//!
//! It may run beside a `serve` on the same directory: entries are never rewritten in place,
//! `tmp/` (downloads in progress) is not touched, and a blob removed here is forgotten by
//! the running server's in-memory index on its next lookup (the open fails; it is fetched
//! upstream again). The index has no rows on disk: it is rebuilt from the directory at start.

use std::fs;
use std::io::{self, Read};
use std::path::Path;

use super::layout::{ALGORITHMS, Layout};
use super::manifest_store::ManifestStore;
use crate::blob::Hasher;
use crate::refs::Digest;

/// What `cache verify` found.
#[derive(Debug, Default)]
pub struct Report {
    pub blobs: usize,
    pub blob_bytes: u64,
    pub manifests: usize,
    /// Entries removed, with why (`blobs/sha256/<hex>: does not hash to its name`).
    pub removed: Vec<String>,
}

impl Report {
    /// The summary printed for a person.
    pub fn summary(&self, dir: &Path) -> String {
        let mut s = format!(
            "cache verify {}: {} blob(s) ({:.1} MiB) and {} manifest(s) checked; ",
            dir.display(),
            self.blobs,
            self.blob_bytes as f64 / (1024.0 * 1024.0),
            self.manifests
        );
        if self.removed.is_empty() {
            s.push_str("all good");
        } else {
            s.push_str(&format!("{} bad entry(ies) removed", self.removed.len()));
            for r in &self.removed {
                s.push_str(&format!("\n  removed {r}"));
            }
        }
        s
    }
}

/// Checks every entry under `cache_dir`. `Err`: the directory (or a bad entry) could not be
/// read or removed; what was removed before that stays removed.
pub fn verify(cache_dir: &Path) -> io::Result<Report> {
    // A directory that is not there is an error, not an empty cache: the config is wrong.
    fs::read_dir(cache_dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", cache_dir.display())))?;
    let mut report = Report::default();
    let layout = Layout::new(cache_dir);
    for alg in ALGORITHMS {
        let dir = layout.alg_dir(alg);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
        };
        for e in entries {
            let path = e?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let why = match format!("{}:{name}", alg.name()).parse::<Digest>() {
                Err(_) => Some("not named by a digest"),
                Ok(d) => {
                    report.blobs += 1;
                    check_blob(&path, &d, &mut report.blob_bytes)
                }
            };
            if let Some(why) = why {
                remove(&path)?;
                report
                    .removed
                    .push(format!("blobs/{}/{name}: {why}", alg.name()));
            }
        }
    }
    let manifests = ManifestStore::at(cache_dir);
    for d in manifests.digests() {
        report.manifests += 1;
        if let Some(why) = manifests.verify_entry(&d)? {
            report.removed.push(format!(
                "manifests/{}/{}: {why}",
                d.algorithm().name(),
                d.hex()
            ));
        }
    }
    for r in &report.removed {
        tracing::warn!(entry = %r, "cache verify: bad entry removed");
    }
    Ok(report)
}

/// `None` when the file hashes to `d`; otherwise why not. Its length is added to `bytes`.
fn check_blob(path: &Path, d: &Digest, bytes: &mut u64) -> Option<&'static str> {
    let Ok(mut f) = fs::File::open(path) else {
        return Some("not readable");
    };
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return Some("not a regular file");
    }
    let mut h = Hasher::new(d.algorithm());
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                h.update(&buf[..n]);
                *bytes += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Some("not readable"),
        }
    }
    (h.finish_hex() != d.hex()).then_some("does not hash to its name")
}

fn remove(path: &Path) -> io::Result<()> {
    let r = if path.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    r.map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_removes_what_does_not_hash_to_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        layout.create().unwrap();
        let good = b"good blob".to_vec();
        let dg = Digest::sha256_of(&good);
        fs::write(layout.blob(&dg), &good).unwrap();
        let bad = Digest::sha256_of(b"bad blob");
        fs::write(layout.blob(&bad), b"bad blOb").unwrap();
        fs::write(layout.alg_dir(ALGORITHMS[0]).join("junk"), b"x").unwrap();
        // A download in progress of a running serve: not an entry, left alone.
        let tmp = layout.tmp().join("in-progress");
        fs::write(&tmp, b"half").unwrap();

        let r = verify(dir.path()).unwrap();
        assert_eq!((r.blobs, r.removed.len()), (2, 2), "{r:?}");
        assert!(layout.blob(&dg).exists());
        assert!(!layout.blob(&bad).exists());
        assert!(tmp.exists());
        assert!(r.summary(dir.path()).contains("2 bad entry(ies) removed"));
        let again = verify(dir.path()).unwrap();
        assert_eq!((again.blobs, again.removed.len()), (1, 0));
        assert!(again.summary(dir.path()).ends_with("all good"));
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(verify(&dir.path().join("nope")).is_err());
    }
}
