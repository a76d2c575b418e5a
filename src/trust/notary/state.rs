//! Persisted per-GUN trust state under `<cache.dir>/notary/<escaped GUN>/`.
//!
//! Owns: the last verified bytes of each role (the root among them is what vouches for the next
//! root: TOFU and rotation depend on it) and the highest version seen of each role (rollback
//! protection across restarts). Writes are atomic (temp file, fsync, rename, fsync dir); a
//! GUN's first state is built in a temp directory and renamed into place whole. A root
//! verified in the middle of a chain walk (`chain`) replaces the stored root on its own, at
//! once, so the walk never has to be redone.
//!
//! A corrupt state, or one without its root, is never a reason to trust on first use again:
//! the GUN is refused with a message saying how to reset it deliberately.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};

use super::chain::KeepRoot;
use super::error::Error;
use super::fetch::{Fetch, FetchError};
use super::update::Trusted;
use super::verify::VerifiedRoot;

/// Everything but `A-Z a-z 0-9 - _ .` is escaped, so a GUN (`host:port/a/b`) is one safe
/// path component; a leading `.` is escaped too (no `.`/`..` names).
const ESCAPE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');
const STATE_FILE: &str = "state.json";

fn escape(name: &str) -> String {
    let e = utf8_percent_encode(name, ESCAPE).to_string();
    match e.strip_prefix('.') {
        Some(rest) => format!("%2E{rest}"),
        None => e,
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    gun: String,
    /// Highest version ever verified, per role.
    versions: BTreeMap<String, u64>,
    /// Roles whose last verified bytes are stored next to this file.
    files: Vec<String>,
}

/// What a state directory holds.
#[derive(Debug, Clone)]
pub struct Stored {
    pub versions: BTreeMap<String, u64>,
    /// Role -> last verified served bytes. Always has `root`.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// The state directory of one GUN.
#[derive(Debug, Clone)]
pub struct StateDir {
    gun: String,
    dir: PathBuf,
}

impl StateDir {
    pub fn new(cache_dir: &Path, gun: &str) -> StateDir {
        StateDir {
            gun: gun.to_string(),
            dir: cache_dir.join("notary").join(escape(gun)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn broken(&self, reason: impl Into<String>) -> Error {
        Error::State {
            gun: self.gun.clone(),
            dir: self.dir.display().to_string(),
            reason: reason.into(),
        }
    }

    /// `None` when this GUN was never trusted here; an error when the state is unusable.
    pub fn load(&self) -> Result<Option<Stored>, Error> {
        if !self.dir.exists() {
            return Ok(None);
        }
        let state = self.read_state()?;
        let mut files = BTreeMap::new();
        for role in &state.files {
            match std::fs::read(self.dir.join(format!("{}.json", escape(role)))) {
                Ok(bytes) => {
                    files.insert(role.clone(), bytes);
                }
                Err(e) if role == "root" => {
                    return Err(self.broken(format!("the trusted root.json is unreadable: {e}")));
                }
                Err(_) => {}
            }
        }
        if !files.contains_key("root") {
            return Err(self.broken("the trusted root.json is missing"));
        }
        Ok(Some(Stored {
            versions: state.versions,
            files,
        }))
    }

    fn read_state(&self) -> Result<StateFile, Error> {
        let text = std::fs::read(self.dir.join(STATE_FILE))
            .map_err(|e| self.broken(format!("cannot read {STATE_FILE}: {e}")))?;
        let state: StateFile = serde_json::from_slice(&text)
            .map_err(|e| self.broken(format!("{STATE_FILE} is corrupt: {e}")))?;
        if state.gun != self.gun {
            return Err(self.broken(format!("{STATE_FILE} belongs to GUN {:?}", state.gun)));
        }
        Ok(state)
    }

    /// Stores `trusted` as the last known good metadata, with `versions` (already the
    /// highest seen per role).
    pub fn save(&self, trusted: &Trusted, versions: &BTreeMap<String, u64>) -> Result<(), Error> {
        let files = trusted.files();
        let state = StateFile {
            gun: self.gun.clone(),
            versions: versions.clone(),
            files: files.iter().map(|(r, _)| r.clone()).collect(),
        };
        let state_bytes = serde_json::to_vec_pretty(&state)
            .map_err(|e| self.broken(format!("serialising state: {e}")))?;
        let io = |e: std::io::Error| self.broken(format!("writing state: {e}"));
        if self.dir.exists() {
            for (role, bytes) in &files {
                write_atomic(&self.dir, &format!("{}.json", escape(role)), bytes).map_err(io)?;
            }
            // state.json last: it is the commit point naming the files above.
            write_atomic(&self.dir, STATE_FILE, &state_bytes).map_err(io)?;
            return Ok(());
        }
        let parent = self
            .dir
            .parent()
            .ok_or_else(|| self.broken("no parent directory"))?;
        std::fs::create_dir_all(parent).map_err(io)?;
        let tmp = tempfile::Builder::new()
            .prefix(".new-")
            .tempdir_in(parent)
            .map_err(io)?;
        for (role, bytes) in &files {
            write_atomic(tmp.path(), &format!("{}.json", escape(role)), bytes).map_err(io)?;
        }
        write_atomic(tmp.path(), STATE_FILE, &state_bytes).map_err(io)?;
        let built = tmp.keep();
        std::fs::rename(&built, &self.dir).map_err(io)?;
        sync_dir(parent).map_err(io)
    }
}

/// A root verified in the middle of a chain walk replaces the trusted root at once (TUF 1.0
/// §5.3.8), leaving the other stored roles as they are. root.json is written first and
/// state.json, the commit point, last: a crash in between leaves the new (verified) root with
/// the older version record, which the next refresh simply walks on from.
impl KeepRoot for StateDir {
    fn keep_root(&self, root: &VerifiedRoot) -> Result<(), Error> {
        let mut state = self.read_state()?;
        let version = state.versions.entry("root".to_string()).or_insert(0);
        if *version >= root.env.signed.version {
            // Another refresh (`serve` and `portcullis check` share this directory) already
            // stored this root or a later one: never put an older root back.
            return Ok(());
        }
        *version = root.env.signed.version;
        if !state.files.iter().any(|f| f == "root") {
            state.files.push("root".to_string());
        }
        let state_bytes = serde_json::to_vec_pretty(&state)
            .map_err(|e| self.broken(format!("serialising state: {e}")))?;
        let io = |e: std::io::Error| self.broken(format!("writing state: {e}"));
        write_atomic(
            &self.dir,
            &format!("{}.json", escape("root")),
            &root.env.raw,
        )
        .map_err(io)?;
        write_atomic(&self.dir, STATE_FILE, &state_bytes).map_err(io)
    }
}

fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(dir.join(name)).map_err(|e| e.error)?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Replays stored bytes as if served, so cached metadata goes through the same checks (at the
/// current time) when the server is unreachable.
pub struct StoredFetcher(pub BTreeMap<String, Vec<u8>>);

#[async_trait]
impl Fetch for StoredFetcher {
    async fn fetch(&self, _gun: &str, role_path: &str, max_len: u64) -> Result<Bytes, FetchError> {
        let role = match role_path.rsplit_once('.') {
            Some((r, hex)) if hex.len() == 64 => r,
            _ => role_path,
        };
        let bytes = self.0.get(role).ok_or(FetchError::NotFound)?;
        if bytes.len() as u64 > max_len {
            return Err(FetchError::TooLarge { limit: max_len });
        }
        Ok(Bytes::from(bytes.clone()))
    }

    fn describe(&self) -> String {
        "the local cache".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gun_escapes_to_one_safe_component() {
        assert_eq!(
            escape("127.0.0.1:5000/demo/app"),
            "127.0.0.1%3A5000%2Fdemo%2Fapp"
        );
        assert_eq!(escape(".."), "%2E.");
        assert_eq!(escape("targets/releases"), "targets%2Freleases");
    }

    #[test]
    fn a_kept_root_becomes_the_stored_root_and_its_version_is_recorded() {
        let tmp = tempfile::tempdir().unwrap();
        let sd = StateDir::new(tmp.path(), "r/x");
        std::fs::create_dir_all(sd.path()).unwrap();
        std::fs::write(
            sd.path().join(STATE_FILE),
            br#"{"gun":"r/x","versions":{"root":1,"targets":7},"files":["root","targets"]}"#,
        )
        .unwrap();
        std::fs::write(sd.path().join("root.json"), b"old").unwrap();
        std::fs::write(sd.path().join("targets.json"), b"t").unwrap();
        let raw = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/notary/signer-ecdsa/root.json"
        ))
        .unwrap();
        let root = super::super::verify::trusted_root("r/x", &raw).unwrap();
        sd.keep_root(&root).unwrap();
        let stored = sd.load().unwrap().unwrap();
        assert_eq!(stored.files["root"], raw);
        assert_eq!(stored.files["targets"], b"t", "other roles are left alone");
        assert_eq!(stored.versions["root"], root.env.signed.version);
        assert_eq!(stored.versions["targets"], 7);

        // A root older than the one recorded is not put back.
        std::fs::write(
            sd.path().join(STATE_FILE),
            br#"{"gun":"r/x","versions":{"root":9},"files":["root"]}"#,
        )
        .unwrap();
        std::fs::write(sd.path().join("root.json"), b"newer").unwrap();
        sd.keep_root(&root).unwrap();
        let stored = sd.load().unwrap().unwrap();
        assert_eq!(stored.files["root"], b"newer");
        assert_eq!(stored.versions["root"], 9);
    }

    #[test]
    fn absent_is_none_corrupt_or_rootless_is_refused_with_reset_advice() {
        let tmp = tempfile::tempdir().unwrap();
        let sd = StateDir::new(tmp.path(), "r/x");
        assert!(sd.load().unwrap().is_none());
        std::fs::create_dir_all(sd.path()).unwrap();
        // A directory without state.json (e.g. hand-made) is not "absent".
        let e = sd.load().unwrap_err();
        assert!(matches!(e, Error::State { .. }), "{e}");
        std::fs::write(sd.path().join(STATE_FILE), b"{not json").unwrap();
        let e = sd.load().unwrap_err().to_string();
        assert!(e.contains("corrupt") && e.contains("delete"), "{e}");
        std::fs::write(
            sd.path().join(STATE_FILE),
            br#"{"gun":"r/x","versions":{},"files":["root"]}"#,
        )
        .unwrap();
        let e = sd.load().unwrap_err().to_string();
        assert!(e.contains("root.json"), "{e}");
    }
}
