//! Where TUF metadata bytes come from: sigstore-tuf's [`Repository`] over our own transports.
//!
//! - [`HttpRepo`]: the project's hyper client (`notary::fetch::HttpFetcher`: TLS against the
//!   system roots plus `ca_file`, `max_length` enforced while reading, a deadline per fetch and
//!   a minimum transfer rate). 404 and 403 mean "not there" (`Ok(None)`), which ends the root
//!   walk; S3 and GCS answer 403 for a missing object, as python-tuf allows.
//! - [`DirRepo`]: a `file://` mirror, same limits.
//! - [`StoreFirst`]: in front of either, answers versioned names (`N.targets.json`,
//!   `N.<role>.json`, `N.root.json`) from the local store when the stored copy has version N,
//!   so an unchanged role is not downloaded again after a restart; and, switched offline, it
//!   answers only from the store (a restart with the repository unreachable). Whatever it
//!   returns is verified by the crate exactly as a download would be.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sigstore_tuf::transport::FetchFuture;
use sigstore_tuf::{Error, MetadataStore, Repository};

use crate::trust::notary::fetch::{FetchError, HttpFetcher};

/// A fetch failure that means "the repository is not there" (refused, timeout, 5xx, a stall):
/// cached metadata may stand in while it is valid. Attacks a reachable server mounts (too
/// large, bad bytes) are not unreachable.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(pub String);

/// Whether a crate error came from an unreachable repository (see [`Unreachable`]).
pub fn is_unreachable(e: &Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<Unreachable>() {
            return true;
        }
        source = s.source();
    }
    false
}

fn fetch_error(what: &str, e: FetchError) -> Error {
    if e.is_unreachable() {
        Error::transport_with_source(format!("{what}: unreachable"), Unreachable(e.to_string()))
    } else {
        Error::transport(format!("{what}: {e}"))
    }
}

/// Metadata (and, for the conformance client, targets) over HTTP(S).
pub struct HttpRepo {
    fetcher: HttpFetcher,
    metadata: url::Url,
    targets: Option<url::Url>,
}

impl HttpRepo {
    /// `metadata_url` is the directory holding `root.json` etc. (a trailing `/` is added).
    pub fn new(fetcher: HttpFetcher, metadata_url: &str) -> Result<Self, String> {
        Ok(HttpRepo {
            fetcher,
            metadata: dir_url(metadata_url)?,
            targets: None,
        })
    }

    /// Where target files are (only the conformance client downloads targets).
    pub fn with_targets(mut self, targets_url: &str) -> Result<Self, String> {
        self.targets = Some(dir_url(targets_url)?);
        Ok(self)
    }

    async fn get(
        &self,
        base: &url::Url,
        name: &str,
        max: u64,
    ) -> sigstore_tuf::Result<Option<Vec<u8>>> {
        let url = base
            .join(name)
            .map_err(|e| Error::transport(format!("{name:?} under {base}: {e}")))?;
        let label = metric_label(name);
        match self.fetcher.get(url.clone(), max, label).await {
            Ok(b) => Ok(Some(b.to_vec())),
            Err(FetchError::NotFound) | Err(FetchError::Status(403)) => Ok(None),
            Err(e) => Err(fetch_error(url.as_str(), e)),
        }
    }
}

fn dir_url(u: &str) -> Result<url::Url, String> {
    let with_slash = if u.ends_with('/') {
        u.to_owned()
    } else {
        format!("{u}/")
    };
    url::Url::parse(&with_slash).map_err(|e| format!("{u:?} is not a URL: {e}"))
}

/// One metric label per role: `12.snapshot.json` -> `snapshot`, `3.root.json` -> `root`.
fn metric_label(name: &str) -> &str {
    let name = name.strip_suffix(".json").unwrap_or(name);
    match name.split_once('.') {
        Some((v, rest)) if v.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => name,
    }
}

impl Repository for HttpRepo {
    fn fetch_metadata<'a>(&'a self, name: &'a str, max_length: u64) -> FetchFuture<'a> {
        Box::pin(async move { self.get(&self.metadata, name, max_length).await })
    }

    fn fetch_target<'a>(&'a self, path: &'a str, max_length: u64) -> FetchFuture<'a> {
        Box::pin(async move {
            let base = self
                .targets
                .as_ref()
                .ok_or_else(|| Error::transport("no target base URL configured"))?;
            self.get(base, path, max_length).await
        })
    }
}

/// A `file://` mirror: `<dir>/N.root.json`, `<dir>/timestamp.json`, ...
pub struct DirRepo {
    dir: PathBuf,
}

impl DirRepo {
    pub fn new(dir: PathBuf) -> Self {
        DirRepo { dir }
    }
}

/// Reads `path`, refusing more than `max` bytes without reading them.
pub(crate) fn read_bounded(
    path: &std::path::Path,
    max: u64,
) -> sigstore_tuf::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::transport_with_source(
                format!("reading {}", path.display()),
                Unreachable(e.to_string()),
            ));
        }
    };
    let mut buf = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if buf.len() as u64 > max {
        return Err(Error::transport(format!(
            "{}: more than {max} bytes (the limit for this file)",
            path.display()
        )));
    }
    Ok(Some(buf))
}

fn safe_join(dir: &std::path::Path, name: &str) -> sigstore_tuf::Result<PathBuf> {
    let rel = std::path::Path::new(name);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(Error::Malformed(format!("unsafe file name {name:?}")));
    }
    Ok(dir.join(rel))
}

impl Repository for DirRepo {
    fn fetch_metadata<'a>(&'a self, name: &'a str, max_length: u64) -> FetchFuture<'a> {
        Box::pin(async move { read_bounded(&safe_join(&self.dir, name)?, max_length) })
    }

    fn fetch_target<'a>(&'a self, path: &'a str, _max_length: u64) -> FetchFuture<'a> {
        Box::pin(async move {
            Err(Error::transport(format!(
                "{path}: targets are not read from a file:// mirror"
            )))
        })
    }
}

/// Splits `N.<rest>` into (N, rest) when N is all digits.
fn versioned(name: &str) -> Option<(u64, &str)> {
    let (v, rest) = name.split_once('.')?;
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((v.parse().ok()?, rest))
}

/// The `version` of a stored metadata file (unverified: only to pick a candidate).
pub(super) fn stored_version(bytes: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Env {
        signed: Signed,
    }
    #[derive(serde::Deserialize)]
    struct Signed {
        version: u64,
    }
    serde_json::from_slice::<Env>(bytes)
        .ok()
        .map(|e| e.signed.version)
}

/// The store in front of the network (see the module docs).
pub struct StoreFirst {
    store: Arc<dyn MetadataStore>,
    inner: Box<dyn Repository>,
    offline: Arc<AtomicBool>,
}

impl StoreFirst {
    pub fn new(
        store: Arc<dyn MetadataStore>,
        inner: Box<dyn Repository>,
        offline: Arc<AtomicBool>,
    ) -> Self {
        StoreFirst {
            store,
            inner,
            offline,
        }
    }

    /// The stored copy answering `name`, if any.
    fn stored_answer(&self, name: &str) -> sigstore_tuf::Result<Option<Vec<u8>>> {
        match versioned(name) {
            // Roots live under root_history/, by version.
            Some((n, "root.json")) => self.store.load(&format!("root_history/{n}.root.json")),
            // `N.<role>.json`: the crate stores `<role>.json`; usable only when it is version
            // N. (A delegated role literally named like `2.x` without consistent snapshots
            // could be offered role `x`'s file here: the crate's pin and signature checks
            // refuse it, so the worst case is a failed lookup, never a wrong answer.)
            Some((n, rest)) => Ok(self
                .store
                .load(rest)?
                .filter(|b| stored_version(b) == Some(n))),
            // Unversioned names (timestamp.json always; all of them without consistent
            // snapshots) change in place: only an offline refresh reads them from the store.
            None if self.offline.load(Ordering::Relaxed) => self.store.load(name),
            None => Ok(None),
        }
    }
}

impl Repository for StoreFirst {
    fn fetch_metadata<'a>(&'a self, name: &'a str, max_length: u64) -> FetchFuture<'a> {
        Box::pin(async move {
            if let Some(bytes) = self.stored_answer(name)?
                && bytes.len() as u64 <= max_length
            {
                return Ok(Some(bytes));
            }
            if self.offline.load(Ordering::Relaxed) {
                return Ok(None);
            }
            self.inner.fetch_metadata(name, max_length).await
        })
    }

    fn fetch_target<'a>(&'a self, path: &'a str, max_length: u64) -> FetchFuture<'a> {
        self.inner.fetch_target(path, max_length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_names_split_only_on_a_numeric_prefix() {
        assert_eq!(versioned("12.snapshot.json"), Some((12, "snapshot.json")));
        assert_eq!(versioned("3.root.json"), Some((3, "root.json")));
        assert_eq!(versioned("timestamp.json"), None);
        assert_eq!(versioned(".x.json"), None);
        assert_eq!(versioned("1a.x.json"), None);
    }

    #[test]
    fn metric_labels_name_the_role_not_the_version() {
        assert_eq!(metric_label("12.snapshot.json"), "snapshot");
        assert_eq!(metric_label("timestamp.json"), "timestamp");
        assert_eq!(metric_label("4.releases.json"), "releases");
    }

    #[test]
    fn unsafe_names_never_leave_the_mirror_directory() {
        let d = std::path::Path::new("/srv/m");
        assert!(safe_join(d, "../etc/passwd").is_err());
        assert!(safe_join(d, "/etc/passwd").is_err());
        assert!(safe_join(d, "./a").is_err());
        assert!(safe_join(d, "a/../../b").is_err());
        assert_eq!(safe_join(d, "1.root.json").unwrap(), d.join("1.root.json"));
    }

    #[test]
    fn a_bounded_read_refuses_one_byte_too_many() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.json");
        std::fs::write(&p, vec![b'x'; 11]).unwrap();
        assert!(read_bounded(&p, 10).is_err());
        assert_eq!(read_bounded(&p, 11).unwrap().unwrap().len(), 11);
        assert!(
            read_bounded(&dir.path().join("nope"), 10)
                .unwrap()
                .is_none()
        );
    }
}
