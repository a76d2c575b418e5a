//! `offline_tag_memory`: which digest the registry last named for a tag that only the
//! registry binds, remembered so that a node whose registry is gone can still pull the tag.
//! A named loosening (a `[[policy]]` key, off by default): offline, the tag means what it
//! meant when last seen, for a bounded time; the digest must still be vouched for by
//! signatures (stored evidence, re-verified). Only an answer that vouched is remembered.
//!
//! ```text
//! <cache.dir>/signatures/tags/<sha256 of "registry\nrepository\ntag">.json
//!     {"registry", "repository", "tag", "digest", "seen_at"}   checked on read
//! ```
//! Writes: temp file in `tags/tmp/` (emptied at start), fsync, rename, fsync the directory.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::refs::{Digest, RepoName, Tag};

/// Why a tag was not answered from memory (its `Display` is the line a denial carries).
#[derive(Debug, thiserror::Error)]
pub enum NotRecalled {
    #[error("offline_tag_memory: the tag was never seen vouched here")]
    Never,
    #[error("offline_tag_memory: remembered file ignored ({0})")]
    Ignored(String),
    #[error("{0}")]
    Expired(String),
}

/// A remembered answer is rewritten at most this often while it does not change, so a busy
/// tag costs no disk write per pull (`seen_at` lags by at most this).
const REWRITE_AFTER: Duration = Duration::from_secs(600);
/// Largest file read back (a few hundred bytes when written by us).
const MAX_FILE: u64 = 64 * 1024;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    registry: String,
    repository: String,
    tag: String,
    digest: String,
    /// Seconds since the epoch when the registry named `digest` and it vouched.
    seen_at: u64,
}

/// The remembered tags. One per proxy.
#[derive(Debug)]
pub struct TagMemory {
    dir: PathBuf,
    /// What was last written per file: skip rewriting an unchanged answer.
    written: Mutex<HashMap<PathBuf, (Digest, SystemTime)>>,
}

impl TagMemory {
    /// Opens `<cache_dir>/signatures/tags` (created 0700) and empties its `tmp/`.
    pub fn open(cache_dir: &Path) -> io::Result<TagMemory> {
        let dir = cache_dir.join("signatures").join("tags");
        crate::cache::open_private(
            &[dir.clone(), dir.join("tmp")],
            &dir.join("tmp"),
            "offline tag memory",
        )?;
        Ok(TagMemory {
            dir,
            written: Mutex::new(HashMap::new()),
        })
    }

    /// The directory as it is, for reading only (`portcullis check`: nothing created).
    pub fn read_only(cache_dir: &Path) -> TagMemory {
        TagMemory {
            dir: cache_dir.join("signatures").join("tags"),
            written: Mutex::new(HashMap::new()),
        }
    }

    /// `recall` within `max`: the digest and a line saying where it came from, or why not.
    pub fn recall_within(
        &self,
        registry: &str,
        repo: &RepoName,
        tag: &Tag,
        max: Duration,
    ) -> Result<(Digest, String), NotRecalled> {
        let (digest, seen) = match self.recall(registry, repo, tag) {
            Ok(Some(r)) => r,
            Ok(None) => return Err(NotRecalled::Never),
            Err(why) => return Err(NotRecalled::Ignored(why)),
        };
        let when = humantime::format_rfc3339_seconds(seen);
        match SystemTime::now().duration_since(seen) {
            Ok(age) if age <= max => {}
            Ok(_) => {
                return Err(NotRecalled::Expired(format!(
                    "offline_tag_memory: last seen {when} naming {digest}, longer ago than {}",
                    humantime::format_duration(max)
                )));
            }
            // Ahead of the clock (it was set back since): no age can be told, so not used.
            Err(_) => {
                return Err(NotRecalled::Expired(format!(
                    "offline_tag_memory: last seen {when} naming {digest}, which is ahead of this machine's clock"
                )));
            }
        }
        Ok((
            digest,
            format!(
                "REMEMBERED (offline_tag_memory): the registry named it at {when}, now unreachable; not signed"
            ),
        ))
    }

    fn path(&self, registry: &str, repo: &RepoName, tag: &Tag) -> PathBuf {
        let name = Digest::sha256_of(format!("{registry}\n{repo}\n{tag}").as_bytes());
        self.dir.join(format!("{}.json", name.hex()))
    }

    /// Records that the registry named `digest` for the tag and it vouched, now.
    pub async fn remember(&self, registry: &str, repo: &RepoName, tag: &Tag, digest: &Digest) {
        let path = self.path(registry, repo, tag);
        let now = SystemTime::now();
        if let Ok(w) = self.written.lock()
            && let Some((d, at)) = w.get(&path)
            && d == digest
            && now.duration_since(*at).is_ok_and(|age| age < REWRITE_AFTER)
        {
            return;
        }
        let entry = Entry {
            registry: registry.to_owned(),
            repository: repo.to_string(),
            tag: tag.to_string(),
            digest: digest.to_string(),
            seen_at: now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        };
        let dir = self.dir.clone();
        let target = path.clone();
        let written = tokio::task::spawn_blocking(move || {
            let bytes = serde_json::to_vec(&entry).map_err(io::Error::other)?;
            write_durable(&dir, &target, &bytes)
        })
        .await
        .map_err(io::Error::other)
        .and_then(|r| r);
        match written {
            Ok(()) => {
                if let Ok(mut w) = self.written.lock() {
                    w.insert(path, (digest.clone(), now));
                }
            }
            Err(e) => {
                crate::metrics::cache_write_failure("io");
                tracing::warn!(registry, repository = %repo, %tag, error = %e, "offline_tag_memory: not written");
            }
        }
    }

    /// Records a tag binding seen at `seen` elsewhere (a bundle's export), unless what is
    /// remembered here was seen later: an older bundle never sets a tag back.
    pub fn remember_seen_blocking(
        &self,
        registry: &str,
        repo: &RepoName,
        tag: &Tag,
        digest: &Digest,
        seen: SystemTime,
    ) -> io::Result<bool> {
        if let Ok(Some((_, known))) = self.recall(registry, repo, tag)
            && known >= seen
        {
            return Ok(false);
        }
        let entry = Entry {
            registry: registry.to_owned(),
            repository: repo.to_string(),
            tag: tag.to_string(),
            digest: digest.to_string(),
            seen_at: seen.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        };
        let bytes = serde_json::to_vec(&entry).map_err(io::Error::other)?;
        write_durable(&self.dir, &self.path(registry, repo, tag), &bytes)?;
        Ok(true)
    }

    /// The digest remembered for the tag and when it was seen; `Err` says why a file that is
    /// there cannot be used (it is then ignored).
    pub fn recall(
        &self,
        registry: &str,
        repo: &RepoName,
        tag: &Tag,
    ) -> Result<Option<(Digest, SystemTime)>, String> {
        let path = self.path(registry, repo, tag);
        let bytes = match File::open(&path) {
            Ok(f) => {
                let mut buf = Vec::new();
                io::Read::read_to_end(&mut io::Read::take(f, MAX_FILE + 1), &mut buf)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                buf
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let e: Entry = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{}: not a tag memory file: {e}", path.display()))?;
        // The file must be this key's (a renamed or copied file names another tag).
        if e.registry != registry || e.repository != repo.as_str() || e.tag != tag.as_str() {
            return Err(format!(
                "{}: names {}/{}:{}, not this tag",
                path.display(),
                e.registry,
                e.repository,
                e.tag
            ));
        }
        let digest: Digest = e
            .digest
            .parse()
            .map_err(|_| format!("{}: bad digest {:?}", path.display(), e.digest))?;
        Ok(Some((digest, UNIX_EPOCH + Duration::from_secs(e.seen_at))))
    }
}

fn write_durable(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = tempfile::NamedTempFile::new_in(dir.join("tmp"))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn remembers_and_refuses_files_that_are_not_the_key_s() {
        let dir = tempfile::tempdir().unwrap();
        let m = TagMemory::open(dir.path()).unwrap();
        let repo: RepoName = "team/app".parse().unwrap();
        let (v1, v2): (Tag, Tag) = ("v1".parse().unwrap(), "v2".parse().unwrap());
        let d = Digest::sha256_of(b"manifest");
        assert_eq!(m.recall("r.example", &repo, &v1), Ok(None));
        m.remember("r.example", &repo, &v1, &d).await;
        let (got, seen) = m.recall("r.example", &repo, &v1).unwrap().unwrap();
        assert_eq!(got, d);
        assert!(SystemTime::now().duration_since(seen).unwrap() < Duration::from_secs(5));
        // Another registry, repository or tag has its own file.
        assert_eq!(m.recall("other.example", &repo, &v1), Ok(None));
        // v1's file copied over v2's: names another tag, refused.
        std::fs::copy(
            m.path("r.example", &repo, &v1),
            m.path("r.example", &repo, &v2),
        )
        .unwrap();
        let e = m.recall("r.example", &repo, &v2).unwrap_err();
        assert!(e.contains("not this tag"), "{e}");
        // Truncated: refused, not read as something else.
        let p = m.path("r.example", &repo, &v1);
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        let e = m.recall("r.example", &repo, &v1).unwrap_err();
        assert!(e.contains("not a tag memory file"), "{e}");
    }

    #[test]
    fn recalls_only_within_the_bound_and_never_a_time_ahead_of_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        let m = TagMemory::open(dir.path()).unwrap();
        let repo: RepoName = "team/app".parse().unwrap();
        let d = Digest::sha256_of(b"manifest");
        let hour = Duration::from_secs(3600);
        let at = |tag: &str, seen: SystemTime| {
            let t: Tag = tag.parse().unwrap();
            assert!(
                m.remember_seen_blocking("r.example", &repo, &t, &d, seen)
                    .unwrap()
            );
            m.recall_within("r.example", &repo, &t, hour)
        };
        let now = SystemTime::now();
        assert_eq!(at("recent", now - Duration::from_secs(60)).unwrap().0, d);
        let old = at("old", now - 2 * hour).unwrap_err();
        assert!(old.to_string().contains("longer ago than 1h"), "{old}");
        let ahead = at("ahead", now + hour).unwrap_err();
        assert!(matches!(ahead, NotRecalled::Expired(_)));
        assert!(
            ahead.to_string().contains("ahead of this machine's clock"),
            "{ahead}"
        );
        let never: Tag = "never".parse().unwrap();
        assert!(matches!(
            m.recall_within("r.example", &repo, &never, hour),
            Err(NotRecalled::Never)
        ));
    }
}
