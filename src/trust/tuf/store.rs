//! The TUF metadata store and the versions file.
//!
//! [`DurableStore`] is sigstore-tuf's [`MetadataStore`] made durable: temp file, fsync, rename,
//! directory fsync (the crate's `FileStore` skips the fsyncs, so a power cut could leave a
//! zero-length `timestamp.json`). The crate only logs a failed store write; a store that
//! cannot keep what was verified loses rollback protection across a restart, so the failure
//! is remembered here and fails the refresh ([`DurableStore::take_failure`]).
//!
//! [`Versions`] (`versions.json`) records, after every refresh, the versions of root,
//! timestamp and snapshot and the sha256 of the pinned root. The crate's store refuses a
//! rollback across a restart only while the stored `timestamp.json` is there: a truncated or
//! deleted one silently drops that memory. The versions file is the second memory: stored
//! files below it, or a state that is missing or unparsable once initialised, refuse the
//! source with a message saying how to reset.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sigstore_tuf::{Error, MetadataStore};

/// Verified metadata on disk, written durably.
#[derive(Debug)]
pub struct DurableStore {
    dir: PathBuf,
    layout: Layout,
    failure: Mutex<Option<String>>,
}

/// Which of the names the crate stores a [`DurableStore`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The proxy's: every role under its non-versioned name plus `root_history/N.root.json`
    /// (and `targets/` were targets ever cached). The crate's extra `N.snapshot.json` copies
    /// are not kept: a versioned request is answered from `snapshot.json` when its version
    /// matches (`transport::StoreFirst`), and one copy per snapshot version would grow the
    /// directory forever.
    All,
    /// Only the trusted copy of each role under its non-versioned name (`root.json`,
    /// `timestamp.json`, `<role>.json`), no subdirectory: the layout tuf-conformance reads
    /// (CLIENT-CLI.md). Other names are neither written nor read; rotated roots are not kept
    /// by version, so the next run starts from `root.json`, as python-tuf does.
    TopLevel,
}

/// `N.<role>.json` is versioned; `N.json` is the role named `N`.
fn versioned(name: &str) -> bool {
    name.split_once('.').is_some_and(|(v, rest)| {
        !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) && rest != "json"
    })
}

impl Layout {
    fn keeps(self, name: &str) -> bool {
        match self {
            Layout::All => name.contains('/') || !versioned(name),
            Layout::TopLevel => !name.contains('/') && !versioned(name),
        }
    }
}

impl DurableStore {
    pub fn new(dir: PathBuf) -> Self {
        Self::with_layout(dir, Layout::All)
    }

    pub fn with_layout(dir: PathBuf, layout: Layout) -> Self {
        DurableStore {
            dir,
            layout,
            failure: Mutex::new(None),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The first write failure since the last call, if any.
    pub fn take_failure(&self) -> Option<String> {
        self.failure.lock().map(|mut f| f.take()).unwrap_or(None)
    }

    fn path(&self, name: &str) -> sigstore_tuf::Result<PathBuf> {
        let rel = Path::new(name);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(Error::Malformed(format!("unsafe store name {name:?}")));
        }
        Ok(self.dir.join(rel))
    }
}

/// Writes `bytes` to `path` so that a crash leaves the old file or the new one, complete.
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

impl MetadataStore for DurableStore {
    fn load(&self, name: &str) -> sigstore_tuf::Result<Option<Vec<u8>>> {
        if !self.layout.keeps(name) {
            return Ok(None);
        }
        let path = self.path(name)?;
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
        }
    }

    fn store(&self, name: &str, bytes: &[u8]) -> sigstore_tuf::Result<()> {
        if !self.layout.keeps(name) {
            return Ok(());
        }
        let path = self.path(name)?;
        write_durably(&path, bytes).map_err(|e| {
            let msg = format!("writing {}: {e}", path.display());
            if let Ok(mut f) = self.failure.lock() {
                f.get_or_insert(msg.clone());
            }
            Error::io(msg, e)
        })
    }
}

/// `versions.json`: what this node has verified, so that no restart goes back below it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Versions {
    /// sha256 of the pinned root file these versions were reached from.
    pub pinned_root_sha256: String,
    pub root: u64,
    pub timestamp: u64,
    pub snapshot: u64,
}

pub const VERSIONS_FILE: &str = "versions.json";

impl Versions {
    /// The recorded versions; `Ok(None)` before the first successful refresh. A file that is
    /// there but unreadable is an error: state was initialised and something broke it.
    pub fn load(dir: &Path) -> Result<Option<Versions>, String> {
        let path = dir.join(VERSIONS_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{} is corrupt: {e}", path.display()))
    }

    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        write_durably(&dir.join(VERSIONS_FILE), &bytes)
    }
}

/// The `signed.version` of a stored file, `None` when missing or unparsable.
pub fn stored_version(store: &DurableStore, name: &str) -> Option<u64> {
    #[derive(Deserialize)]
    struct Env {
        signed: Signed,
    }
    #[derive(Deserialize)]
    struct Signed {
        version: u64,
    }
    let bytes = store.load(name).ok()??;
    serde_json::from_slice::<Env>(&bytes)
        .ok()
        .map(|e| e.signed.version)
}

/// Whether the store still holds what `v` says was verified. Any gap is a refusal: the
/// store is the crate's only memory against rollback across a restart.
pub fn check_against(
    v: &Versions,
    store: &DurableStore,
    pinned_sha: &str,
    root_version: u64,
) -> Result<(), String> {
    if v.pinned_root_sha256 != pinned_sha {
        return Err(format!(
            "the pinned root file changed (sha256 {} when this state was made, {pinned_sha} now)",
            v.pinned_root_sha256
        ));
    }
    if root_version < v.root {
        return Err(format!(
            "stored roots reach version {root_version}, but version {} was verified before",
            v.root
        ));
    }
    for (name, want) in [
        ("timestamp.json", v.timestamp),
        ("snapshot.json", v.snapshot),
    ] {
        match stored_version(store, name) {
            Some(have) if have >= want => {}
            Some(have) => {
                return Err(format!(
                    "stored {name} is version {have}, but version {want} was verified before"
                ));
            }
            None => {
                return Err(format!(
                    "stored {name} is missing or unreadable, but version {want} was verified before"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(version: u64) -> Vec<u8> {
        format!(r#"{{"signed":{{"version":{version}}},"signatures":[]}}"#).into_bytes()
    }

    #[test]
    fn a_store_write_failure_is_remembered_once() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the store's directory should be: every write fails.
        let blocked = dir.path().join("blocked");
        std::fs::write(&blocked, b"").unwrap();
        let s = DurableStore::new(blocked);
        assert!(s.store("timestamp.json", b"{}").is_err());
        assert!(s.take_failure().unwrap().contains("timestamp.json"));
        assert!(s.take_failure().is_none());
    }

    #[test]
    fn the_store_refuses_names_that_leave_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let s = DurableStore::new(dir.path().to_owned());
        assert!(s.store("../x.json", b"{}").is_err());
        assert!(s.load("/etc/passwd").is_err());
        s.store("root_history/2.root.json", b"{}").unwrap();
        assert_eq!(s.load("root_history/2.root.json").unwrap().unwrap(), b"{}");
    }

    #[test]
    fn the_proxy_layout_keeps_root_history_but_no_versioned_snapshot_copies() {
        let dir = tempfile::tempdir().unwrap();
        let s = DurableStore::new(dir.path().to_owned());
        s.store("7.snapshot.json", b"{}").unwrap();
        assert!(s.load("7.snapshot.json").unwrap().is_none());
        s.store("root_history/2.root.json", b"{}").unwrap();
        s.store("snapshot.json", b"{}").unwrap();
        assert!(s.load("root_history/2.root.json").unwrap().is_some());
        assert!(s.load("snapshot.json").unwrap().is_some());
    }

    #[test]
    fn the_top_level_layout_keeps_only_non_versioned_names() {
        let dir = tempfile::tempdir().unwrap();
        let s = DurableStore::with_layout(dir.path().to_owned(), Layout::TopLevel);
        for name in [
            "root_history/2.root.json",
            "targets/a/b.txt",
            "7.snapshot.json",
        ] {
            s.store(name, b"{}").unwrap();
            assert!(s.load(name).unwrap().is_none(), "{name}");
        }
        for name in [
            "root.json",
            "snapshot.json",
            "%2Frole.json",
            "2.json",
            "..%2Fx.json",
        ] {
            s.store(name, b"{}").unwrap();
            assert_eq!(s.load(name).unwrap().unwrap(), b"{}", "{name}");
        }
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "%2Frole.json",
                "..%2Fx.json",
                "2.json",
                "root.json",
                "snapshot.json"
            ]
        );
    }

    #[test]
    fn stored_files_below_the_versions_file_refuse_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let s = DurableStore::new(dir.path().to_owned());
        s.store("timestamp.json", &meta(5)).unwrap();
        s.store("snapshot.json", &meta(3)).unwrap();
        let v = Versions {
            pinned_root_sha256: "aa".into(),
            root: 2,
            timestamp: 5,
            snapshot: 3,
        };
        v.save(dir.path()).unwrap();
        assert_eq!(Versions::load(dir.path()).unwrap(), Some(v.clone()));
        check_against(&v, &s, "aa", 2).unwrap();
        assert!(
            check_against(&v, &s, "bb", 2)
                .unwrap_err()
                .contains("pinned root")
        );
        assert!(
            check_against(&v, &s, "aa", 1)
                .unwrap_err()
                .contains("version 2")
        );
        s.store("timestamp.json", &meta(4)).unwrap();
        assert!(
            check_against(&v, &s, "aa", 2)
                .unwrap_err()
                .contains("timestamp.json is version 4")
        );
        std::fs::remove_file(dir.path().join("timestamp.json")).unwrap();
        assert!(
            check_against(&v, &s, "aa", 2)
                .unwrap_err()
                .contains("missing")
        );
    }

    #[test]
    fn a_corrupt_versions_file_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Versions::load(dir.path()).unwrap(), None);
        std::fs::write(dir.path().join(VERSIONS_FILE), b"{\"root\":").unwrap();
        assert!(Versions::load(dir.path()).unwrap_err().contains("corrupt"));
    }
}
