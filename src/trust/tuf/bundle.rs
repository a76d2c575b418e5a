//! A TUF repository's metadata in and out of an air-gap bundle (`crate::bundle`).
//!
//! Export takes what a forced online refresh just verified and stored: the exact bytes of
//! every root this node holds from the pinned one up (`root_history/N.root.json`), timestamp,
//! snapshot, top-level targets and the delegated roles that sign the exported tags, under
//! their store names. Import verifies those bytes with the same sigstore-tuf `Updater` a
//! refresh uses, from this node's pinned `root_file`, with this node's stored state as the
//! floor (the crate seeds its rollback checks from the store: an older bundle is a rollback),
//! the bundle standing in for the repository (`transport::StoreFirst`, offline). What the
//! verification writes goes to an overlay in memory; the caller commits it to the store and
//! `versions.json` only once the whole bundle verified.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use sigstore_tuf::transport::FetchFuture;
use sigstore_tuf::{Error, MetadataStore, Repository, Updater};

use super::TufSource;
use super::lookup::{chain, target_name};
use super::repo::{chain_msg, found, versions_of};
use super::store::{DurableStore, VERSIONS_FILE, Versions, check_against, stored_version};
use super::transport::{StoreFirst, stored_version as version_of};
use crate::refs::{RepoName, Tag};
use crate::trust::{TrustError, TrustedTarget};

/// One TUF repository's metadata for a bundle.
#[derive(Debug)]
pub struct Exported {
    /// The metadata URL it was verified from.
    pub url: String,
    /// Store name (`root_history/2.root.json`, `timestamp.json`, `releases.json`) -> bytes.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl TufSource {
    /// The metadata that signs `tags` of `repo`, verified online now (a bundle never carries
    /// metadata the repository could not confirm).
    pub async fn export_metadata(
        &self,
        repo: &RepoName,
        tags: &[Tag],
    ) -> Result<Exported, TrustError> {
        self.covered(repo)?;
        let r = self.repo_for(repo)?;
        r.ensure_fresh((self.clock)(), true).await?;
        if let Some(cause) = r.offline() {
            return Err(TrustError::Unavailable(format!(
                "TUF repository {} unreachable ({cause}); a bundle carries only metadata \
                 verified online",
                r.url
            )));
        }
        let mut roles = BTreeSet::new();
        for tag in tags {
            let (_, f) = self.find(repo, tag, false).await?;
            roles.extend(f.chain.iter().filter(|r| *r != "targets").cloned());
        }
        // Under the updater's lock: no refresh rewrites the store while it is read, and the
        // stored copies are checked to be the versions in memory.
        let updater = r.updater.lock().await;
        let t = updater.trusted();
        let mut files = BTreeMap::new();
        for v in 1..=t.root().version {
            let name = format!("root_history/{v}.root.json");
            if let Some(b) = load(&r.store, &name)? {
                files.insert(name, b);
            }
        }
        let mut want: Vec<(String, u64)> = vec![
            (
                "timestamp.json".into(),
                t.timestamp().map_or(0, |x| x.version),
            ),
            (
                "snapshot.json".into(),
                t.snapshot().map_or(0, |x| x.version),
            ),
        ];
        for role in std::iter::once("targets").chain(roles.iter().map(String::as_str)) {
            let v = t.targets_role(role).map_or(0, |x| x.version);
            want.push((format!("{}.json", encode_role(role)), v));
        }
        for (name, version) in want {
            let bytes =
                load(&r.store, &name)?.filter(|_| stored_version(&r.store, &name) == Some(version));
            let bytes = bytes.ok_or_else(|| {
                TrustError::State(format!(
                    "TUF state for {} in {}: stored {name} is not the verified version \
                     {version}; export again",
                    r.url,
                    r.store.dir().display()
                ))
            })?;
            files.insert(name, bytes);
        }
        Ok(Exported {
            url: r.url.clone(),
            files,
        })
    }

    /// Verifies a bundle's `files` for the repository `repo` is looked up in on this node,
    /// against the pinned root and the stored state. Nothing is written.
    pub async fn verify_bundle(
        &self,
        repo: &RepoName,
        files: BTreeMap<String, Vec<u8>>,
    ) -> Result<Verified, TrustError> {
        self.covered(repo)?;
        let url = self.cfg.metadata_url_for(repo.as_str());
        let dir = self.state_dir_for(&url);
        let state = |why: String| {
            TrustError::State(format!(
                "TUF state for {url} in {}: {why}; repair it before importing (stop \
                 Portcullis, remove that directory, start it again)",
                dir.display()
            ))
        };
        let base = Arc::new(DurableStore::new(dir.join("metadata")));
        let prior = Versions::load(&dir).map_err(state)?;
        let overlay = Arc::new(Overlay {
            base: base.clone(),
            writes: Mutex::new(BTreeMap::new()),
        });
        // The bundle is the repository, read the way a restarted node reads its store.
        let from_bundle = StoreFirst::new(
            Arc::new(Files(files.clone())),
            Box::new(NoNetwork),
            Arc::new(AtomicBool::new(true)),
        );
        let mut updater = Updater::new(from_bundle, &self.root)
            .map_err(|e| TrustError::State(format!("pinned TUF root: {}", chain_msg(&e))))?
            .with_config(self.updater_config())
            .with_store(overlay.clone());
        if let Some(v) = &prior {
            check_against(v, &base, &self.root_sha, updater.trusted().root().version)
                .map_err(state)?;
        }
        // TUF 5.3-5.6 as for a refresh; the stored timestamp, snapshot and targets are the
        // floor, so an older bundle fails here as a rollback.
        updater
            .refresh((self.clock)())
            .await
            .map_err(|e| TrustError::Invalid(chain_msg(&e)))?;
        Ok(Verified {
            url,
            dir,
            pinned_sha: self.root_sha.clone(),
            first_use: prior.is_none(),
            updater: tokio::sync::Mutex::new(updater),
            overlay,
            files,
        })
    }
}

/// A bundle's metadata for one TUF repository, verified against this node.
pub struct Verified {
    url: String,
    dir: PathBuf,
    pinned_sha: String,
    updater: tokio::sync::Mutex<Updater>,
    overlay: Arc<Overlay>,
    /// The bundle's files, for [`Verified::check_unread`].
    files: BTreeMap<String, Vec<u8>>,
    /// The node had no state for this repository: the bundle was verified from the pinned
    /// root alone.
    pub first_use: bool,
}

impl Verified {
    /// The target `repo:tag` resolves to in the verified metadata, with the same checks as a
    /// pull (`source`'s target name template, signing chain, `required_roles`).
    pub async fn resolve(
        &self,
        source: &TufSource,
        repo: &RepoName,
        tag: &Tag,
    ) -> Result<TrustedTarget, TrustError> {
        source.covered(repo)?;
        let name = target_name(&source.cfg.target_name, repo.as_str(), tag.as_str());
        let now = (source.clock)();
        let mut u = self.updater.lock().await;
        let info = u
            .get_target_info(&name, now)
            .await
            .map_err(|e| TrustError::Invalid(format!("{name}: {}", chain_msg(&e))))?;
        let walk = chain(
            u.trusted(),
            &name,
            source.updater_config().max_delegations,
            now,
        )
        .map_err(|e| TrustError::Invalid(format!("{name}: {e}")))?;
        let f = found(&self.url, u.trusted(), &name, info, walk)?;
        source.check_required(&f)?;
        source.trusted_target(tag.as_str(), &f)
    }

    /// The bundle's files the verification did not need (the node already trusts that
    /// version: an equal timestamp, an unchanged snapshot or targets) are not imported, but
    /// they are not ignored either: one that claims a version this node verified must be the
    /// bytes this node verified (TUF gives a role's version one content), else the bundle was
    /// altered or mixed. Call after every [`Verified::resolve`].
    pub fn check_unread(&self) -> Result<(), TrustError> {
        let writes = self.overlay.writes();
        for (name, bytes) in &self.files {
            let taken = writes.contains_key(name);
            let ours = match writes.get(name) {
                Some(w) => Some(w.clone()),
                None => load(&self.overlay.base, name)?,
            };
            let Some(ours) = ours else {
                // Nothing to compare with (a root below this node's pinned one): not imported.
                continue;
            };
            let version = version_of(bytes);
            if ours != *bytes && (taken || version == version_of(&ours)) {
                return Err(TrustError::Invalid(format!(
                    "{name} in the bundle (version {}) is not the copy of that version this \
                     node verified: altered or mixed metadata",
                    version.map_or("unreadable".to_owned(), |v| v.to_string())
                )));
            }
        }
        Ok(())
    }

    /// Role versions verified (root, timestamp, snapshot), for the import's report.
    pub async fn versions(&self) -> (u64, u64, u64) {
        versions_of(&*self.updater.lock().await)
    }

    /// Stores what was verified as this node's state for the repository: every file the
    /// verification wrote, timestamp last, then `versions.json`. Each file is replaced
    /// atomically; a crash part-way leaves files at or above `versions.json`, which a
    /// restart re-verifies as usual.
    pub async fn commit(&self) -> Result<(), TrustError> {
        let (root, timestamp, snapshot) = self.versions().await;
        let writes = self.overlay.writes();
        let rank = |name: &str| match name {
            n if n.starts_with("root_history/") || n == "root.json" => 0,
            "snapshot.json" => 2,
            "timestamp.json" => 3,
            _ => 1,
        };
        let mut names: Vec<&String> = writes.keys().collect();
        names.sort_by_key(|n| rank(n));
        let fail = |what: String| {
            TrustError::State(format!(
                "TUF state for {} in {}: {what}",
                self.url,
                self.dir.display()
            ))
        };
        for name in names {
            self.overlay
                .base
                .store(name, &writes[name])
                .map_err(|e| fail(chain_msg(&e)))?;
        }
        Versions {
            pinned_root_sha256: self.pinned_sha.clone(),
            root,
            timestamp,
            snapshot,
        }
        .save(&self.dir)
        .map_err(|e| fail(format!("writing {VERSIONS_FILE}: {e}")))
    }
}

fn load(store: &DurableStore, name: &str) -> Result<Option<Vec<u8>>, TrustError> {
    store
        .load(name)
        .map_err(|e| TrustError::State(chain_msg(&e)))
}

/// The crate's file name for a delegated role (python-tuf's `quote(role, safe="")`): every
/// byte outside `A-Z a-z 0-9 - _ . ~` percent-escaped.
fn encode_role(role: &str) -> String {
    let mut out = String::with_capacity(role.len());
    for &b in role.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The bundle's files as a read-only store.
struct Files(BTreeMap<String, Vec<u8>>);

impl MetadataStore for Files {
    fn load(&self, name: &str) -> sigstore_tuf::Result<Option<Vec<u8>>> {
        Ok(self.0.get(name).cloned())
    }

    fn store(&self, _: &str, _: &[u8]) -> sigstore_tuf::Result<()> {
        Ok(())
    }
}

/// Behind the bundle: an import never goes to the network.
struct NoNetwork;

impl Repository for NoNetwork {
    fn fetch_metadata<'a>(&'a self, name: &'a str, _: u64) -> FetchFuture<'a> {
        Box::pin(async move { Err(Error::transport(format!("{name}: not in the bundle"))) })
    }

    fn fetch_target<'a>(&'a self, path: &'a str, _: u64) -> FetchFuture<'a> {
        Box::pin(async move { Err(Error::transport(format!("{path}: not in the bundle"))) })
    }
}

/// The node's store, read as it is, with writes kept in memory until the commit.
struct Overlay {
    base: Arc<DurableStore>,
    writes: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl Overlay {
    /// What the verification wrote so far.
    fn writes(&self) -> BTreeMap<String, Vec<u8>> {
        self.writes.lock().map(|w| w.clone()).unwrap_or_default()
    }
}

impl MetadataStore for Overlay {
    fn load(&self, name: &str) -> sigstore_tuf::Result<Option<Vec<u8>>> {
        if let Some(b) = self.writes.lock().ok().and_then(|w| w.get(name).cloned()) {
            return Ok(Some(b));
        }
        self.base.load(name)
    }

    fn store(&self, name: &str, bytes: &[u8]) -> sigstore_tuf::Result<()> {
        self.writes
            .lock()
            .map_err(|_| Error::Malformed("overlay lock poisoned".into()))?
            .insert(name.to_owned(), bytes.to_vec());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_encoded_as_the_crate_fetches_them() {
        assert_eq!(encode_role("releases"), "releases");
        assert_eq!(encode_role("bin-0-3"), "bin-0-3");
        assert_eq!(encode_role("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn the_overlay_reads_through_and_keeps_writes_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let base = Arc::new(DurableStore::new(dir.path().to_owned()));
        base.store("timestamp.json", b"old").unwrap();
        let o = Overlay {
            base: base.clone(),
            writes: Mutex::new(BTreeMap::new()),
        };
        assert_eq!(o.load("timestamp.json").unwrap().unwrap(), b"old");
        o.store("timestamp.json", b"new").unwrap();
        assert_eq!(o.load("timestamp.json").unwrap().unwrap(), b"new");
        assert_eq!(base.load("timestamp.json").unwrap().unwrap(), b"old");
    }
}
