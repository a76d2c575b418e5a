//! Where blobs live on disk, and what is done to the directory at start.
//!
//! ```text
//! <cache.dir>/blobs/            0700
//!              sha256/<hex>     one file per verified blob, named by its digest
//!              sha512/<hex>
//!              tmp/             downloads in progress; emptied at start
//! ```
//!
//! A file under `sha256/` or `sha512/` only ever appears by a rename from `tmp/` after its
//! digest and length were verified (`write`), so the name is a promise about the content.
//! Nothing here decides what to cache; it only knows paths, creates the directories and reads
//! back what a previous run left.

use std::fs::{self, DirBuilder, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::refs::{Algorithm, Digest};

pub(super) const ALGORITHMS: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];

/// The paths of one blob store.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The store under `<cache_dir>/blobs`.
    pub(super) fn new(cache_dir: &Path) -> Layout {
        Layout {
            root: cache_dir.join("blobs"),
        }
    }

    pub(super) fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(super) fn alg_dir(&self, a: Algorithm) -> PathBuf {
        self.root.join(a.name())
    }

    /// The file of a verified blob.
    pub(super) fn blob(&self, d: &Digest) -> PathBuf {
        self.alg_dir(d.algorithm()).join(d.hex())
    }

    /// Creates the directories, mode 0700: blobs are served only after the trust gate, so
    /// other local users must not read (or plant) them.
    pub(super) fn create(&self) -> io::Result<()> {
        let mut b = DirBuilder::new();
        b.recursive(true).mode(0o700);
        for dir in [self.root.clone(), self.tmp()]
            .into_iter()
            .chain(ALGORITHMS.map(|a| self.alg_dir(a)))
        {
            b.create(&dir)?;
            // `mode` applies only to directories created now; tighten older ones too.
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }

    /// Removes what an earlier run left in `tmp/` (downloads cut off by a crash or restart:
    /// never verified, so never to be served). Returns how many were removed.
    pub(super) fn clean_tmp(&self) -> io::Result<usize> {
        let mut n = 0;
        for e in fs::read_dir(self.tmp())? {
            let p = e?.path();
            let r = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            match r {
                Ok(()) => n += 1,
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "blob cache: leftover temp file not removed")
                }
            }
        }
        Ok(n)
    }

    /// Every blob on disk with its length and modification time. Files whose names are not a
    /// digest of their directory's algorithm are ignored (never served).
    pub(super) fn scan(&self) -> Vec<(Digest, u64, SystemTime)> {
        let mut out = Vec::new();
        for a in ALGORITHMS {
            let Ok(dir) = fs::read_dir(self.alg_dir(a)) else {
                continue;
            };
            for e in dir.flatten() {
                let name = e.file_name();
                let Some(d) = name
                    .to_str()
                    .and_then(|n| format!("{}:{n}", a.name()).parse::<Digest>().ok())
                else {
                    tracing::warn!(path = %e.path().display(), "blob cache: ignoring a file that is not named by a digest");
                    continue;
                };
                match e.metadata() {
                    Ok(m) if m.is_file() => {
                        let t = m.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                        out.push((d, m.len(), t));
                    }
                    _ => continue,
                }
            }
        }
        out
    }
}

/// Makes a rename into `dir` durable (POSIX: the new directory entry survives a crash only
/// once the directory itself is synced).
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dirs` (mode 0700, parents too) and empties `tmp`, the writes in progress a crash
/// left behind (never entries: only a verified rename makes one). `what` names the store in
/// the log. For the stores beside the blobs (manifests, signature evidence).
pub fn open_private(dirs: &[PathBuf], tmp: &Path, what: &str) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true).mode(0o700);
    for dir in dirs {
        b.create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    for e in std::fs::read_dir(tmp)? {
        let p = e?.path();
        if let Err(e) = std::fs::remove_file(&p) {
            tracing::warn!(path = %p.display(), error = %e, "{what}: leftover temp file not removed");
        }
    }
    Ok(())
}
