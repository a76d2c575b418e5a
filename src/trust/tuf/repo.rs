//! One TUF repository (one metadata URL): the crate's `Updater` over our transport and store,
//! when to refresh, one refresh in flight however many pulls wait, offline use, and the memo
//! that keeps warm lookups off the updater's lock.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use sigstore_tuf::{Error, Repository, Updater, UpdaterConfig};

use super::lookup::{Walk, chain};
use super::store::{DurableStore, Versions, check_against, stored_version};
use super::transport::{StoreFirst, is_unreachable};
use crate::trust::TrustError;
pub use crate::upstream::error_chain as chain_msg;

/// After a failed refresh, how long lookups get the same answer before the next attempt: a
/// broken or unreachable repository is not asked once per pull.
const RETRY: Duration = Duration::from_secs(10);

/// What one lookup verified.
#[derive(Debug, Clone)]
pub struct Found {
    pub name: String,
    pub target: sigstore_tuf::TargetFile,
    /// `targets`, then each delegated role down to the signer.
    pub chain: Vec<String>,
    /// Version and expiry of root, timestamp, snapshot and each role of the chain.
    pub roles: Vec<(String, u64, jiff::Timestamp)>,
    /// Past this the answer must be looked up again (the earliest expiry of `roles`).
    pub valid_until: jiff::Timestamp,
}

#[derive(Debug, Default)]
struct Status {
    last_ok: Option<Instant>,
    last_try: Option<Instant>,
    /// The last refresh failed verification: refused until a refresh succeeds.
    failed: Option<TrustError>,
    /// The repository was unreachable at the last attempt; what is trusted stands in.
    offline: Option<String>,
    /// `versions.json`'s modification time after the last attempt: another process (a
    /// bundle import) changing it is a reason to refresh before the retry delay.
    versions_seen: Option<std::time::SystemTime>,
}

pub struct TufRepo {
    pub url: String,
    dir: PathBuf,
    pub(super) store: Arc<DurableStore>,
    offline: Arc<AtomicBool>,
    pub(super) updater: tokio::sync::Mutex<Updater>,
    pinned_sha: String,
    status: std::sync::Mutex<Status>,
    memo: moka::sync::Cache<String, Arc<Found>>,
    /// Every name a lookup verified (at most 10,000). The crate drops delegated roles at each
    /// refresh and loads them again only for a lookup that needs them, so the roles loaded at
    /// a given moment do not list every trusted tag; these names keep a tag pulled once in
    /// `trusted_targets` (the closure of trusted blobs, the tags list) while it resolves.
    known: std::sync::Mutex<std::collections::BTreeSet<String>>,
    interval: Duration,
    max_roles: u32,
}

fn reset_hint(dir: &Path) -> String {
    format!(
        "if this node's state was damaged, stop Portcullis, remove {} and start it again (it \
         then trusts only the pinned root and what it verifies from there)",
        dir.display()
    )
}

impl TufRepo {
    /// Opens the state under `dir` (made if missing) for the repository behind `inner`.
    pub fn open(
        url: &str,
        inner: Box<dyn Repository>,
        root: &[u8],
        pinned_sha: &str,
        dir: &Path,
        config: UpdaterConfig,
        interval: Duration,
    ) -> Result<TufRepo, TrustError> {
        let state = |why: String| {
            TrustError::State(format!(
                "TUF state for {url} in {}: {why}; {}",
                dir.display(),
                reset_hint(dir)
            ))
        };
        std::fs::create_dir_all(dir).map_err(|e| state(e.to_string()))?;
        let store = Arc::new(DurableStore::new(dir.join("metadata")));
        let offline = Arc::new(AtomicBool::new(false));
        let repo = StoreFirst::new(store.clone(), inner, offline.clone());
        let updater = Updater::new(repo, root)
            .map_err(|e| {
                TrustError::State(format!("pinned TUF root for {url}: {}", chain_msg(&e)))
            })?
            .with_config(config)
            .with_store(store.clone());
        if let Some(f) = store.take_failure() {
            return Err(state(f));
        }
        if let Some(v) = Versions::load(dir).map_err(state)? {
            check_against(&v, &store, pinned_sha, updater.trusted().root().version)
                .map_err(state)?;
        }
        Ok(TufRepo {
            url: url.to_owned(),
            dir: dir.to_owned(),
            store,
            offline,
            updater: tokio::sync::Mutex::new(updater),
            pinned_sha: pinned_sha.to_owned(),
            status: Default::default(),
            memo: moka::sync::Cache::builder().max_capacity(10_000).build(),
            known: Default::default(),
            interval,
            max_roles: config.max_delegations,
        })
    }

    /// `Some(cause)` while the repository is unreachable and trusted metadata stands in.
    pub fn offline(&self) -> Option<String> {
        self.status.lock().ok().and_then(|s| s.offline.clone())
    }

    /// Refreshes when the interval has passed (or `force`), one refresh at a time.
    pub async fn ensure_fresh(&self, now: jiff::Timestamp, force: bool) -> Result<(), TrustError> {
        let asked = Instant::now();
        if !force && let Some(answer) = self.recent_answer() {
            return answer;
        }
        let mut updater = self.updater.lock().await;
        // Someone refreshed while this task waited for the lock: theirs is the answer.
        if let Ok(s) = self.status.lock()
            && s.last_try.is_some_and(|t| t >= asked)
        {
            return s.failed.clone().map_or(Ok(()), Err);
        }
        let before = versions_of(&updater);
        let result = self.refresh_locked(&mut updater, now).await;
        let mut s = self
            .status
            .lock()
            .map_err(|_| TrustError::State("status lock poisoned".into()))?;
        s.last_try = Some(Instant::now());
        s.versions_seen = self.versions_mtime();
        match result {
            Ok(offline) => {
                if offline.is_none() {
                    s.last_ok = s.last_try;
                }
                s.offline = offline;
                s.failed = None;
                if versions_of(&updater) != before {
                    self.memo.invalidate_all();
                }
                Ok(())
            }
            Err(e) => {
                // The crate may hold half a refresh (a new timestamp whose snapshot failed):
                // it refuses lookups until a refresh completes; so do the memoised answers.
                self.memo.invalidate_all();
                s.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    fn versions_mtime(&self) -> Option<std::time::SystemTime> {
        std::fs::metadata(self.dir.join(super::store::VERSIONS_FILE))
            .and_then(|m| m.modified())
            .ok()
    }

    fn recent_answer(&self) -> Option<Result<(), TrustError>> {
        let s = self.status.lock().ok()?;
        let since_try = s.last_try.map(|t| t.elapsed());
        if (s.failed.is_some() || s.offline.is_some()) && self.versions_mtime() != s.versions_seen {
            // Offline or refused, and the state on disk changed (an air-gap bundle was
            // imported): look again now rather than after the retry delay.
            return None;
        }
        if let Some(f) = &s.failed {
            return since_try.filter(|d| *d < RETRY).map(|_| Err(f.clone()));
        }
        if s.offline.is_some() {
            return since_try.filter(|d| *d < RETRY).map(|_| Ok(()));
        }
        s.last_ok
            .filter(|t| t.elapsed() < self.interval)
            .map(|_| Ok(()))
    }

    /// `Ok(None)`: refreshed from the repository; `Ok(Some(cause))`: unreachable, and what is
    /// trusted (in memory, or re-verified from the store after a restart) stands in.
    async fn refresh_locked(
        &self,
        updater: &mut Updater,
        now: jiff::Timestamp,
    ) -> Result<Option<String>, TrustError> {
        let result = updater.refresh(now).await;
        let write_failure = self.store.take_failure();
        match result {
            Ok(()) => {}
            Err(e) if is_unreachable(&e) => {
                let cause = chain_msg(&e);
                let in_memory = updater.trusted().timestamp().map(|t| t.version);
                let stored = stored_version(&self.store, "timestamp.json");
                if in_memory.is_none() || stored > in_memory {
                    // Nothing verified yet in this process (a restart), or the store holds a
                    // newer timestamp than memory (a bundle was imported meanwhile): re-verify
                    // what the store holds, from the trusted root, as a refresh would.
                    self.refresh_from_store(updater, now, &cause, in_memory.is_none())
                        .await?;
                }
                tracing::warn!(url = %self.url, cause = %cause, "TUF repository unreachable: using verified metadata until it expires");
                crate::metrics::tuf_refresh(&self.url, "unreachable");
                return Ok(Some(cause));
            }
            Err(e) => {
                crate::metrics::tuf_refresh(&self.url, "invalid");
                let msg = format!("TUF repository {}: {}", self.url, chain_msg(&e));
                tracing::warn!(url = %self.url, error = %msg, "TUF refresh refused");
                return Err(TrustError::Invalid(msg));
            }
        }
        if let Some(f) = write_failure {
            crate::metrics::tuf_refresh(&self.url, "store_failed");
            return Err(TrustError::State(format!(
                "TUF metadata for {} verified but not stored ({f}): without it a restart could \
                 accept older metadata",
                self.url
            )));
        }
        let (root, timestamp, snapshot) = versions_of(updater);
        let v = Versions {
            pinned_root_sha256: self.pinned_sha.clone(),
            root,
            timestamp,
            snapshot,
        };
        v.save(&self.dir).map_err(|e| {
            TrustError::State(format!(
                "writing {}: {e}",
                self.dir.join(super::store::VERSIONS_FILE).display()
            ))
        })?;
        crate::metrics::tuf_refresh(&self.url, "ok");
        Ok(None)
    }

    /// An offline refresh: the store stands in for the repository (see [`StoreFirst`]).
    async fn refresh_from_store(
        &self,
        updater: &mut Updater,
        now: jiff::Timestamp,
        cause: &str,
        first: bool,
    ) -> Result<(), TrustError> {
        self.offline
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let r = updater.refresh(now).await;
        self.offline
            .store(false, std::sync::atomic::Ordering::Relaxed);
        r.map_err(|e2| {
            let url = &self.url;
            let e2 = chain_msg(&e2);
            if first {
                TrustError::Unavailable(format!(
                    "TUF repository {url} unreachable ({cause}) and no usable metadata stored \
                     on this node: {e2}"
                ))
            } else {
                TrustError::Invalid(format!(
                    "TUF repository {url} unreachable ({cause}); the newer metadata stored on \
                     this node (an imported bundle?) does not verify: {e2}"
                ))
            }
        })?;
        tracing::info!(url = %self.url, "TUF metadata re-verified from this node's store");
        Ok(())
    }

    /// The target `name`, verified: from the memo while valid, else walked under the lock.
    pub async fn lookup(&self, name: &str, now: jiff::Timestamp) -> Result<Arc<Found>, TrustError> {
        if let Some(f) = self.memo.get(name)
            && f.valid_until > now
        {
            crate::metrics::tuf_lookup(&self.url, "memo");
            return Ok(f);
        }
        let mut updater = self.updater.lock().await;
        let info = updater.get_target_info(name, now).await.map_err(|e| {
            crate::metrics::tuf_lookup(&self.url, "error");
            self.lookup_error(name, &e)
        })?;
        let walk = chain(updater.trusted(), name, self.max_roles, now)
            .map_err(|e| TrustError::Invalid(format!("TUF repository {}: {e}", self.url)))?;
        let found = found(&self.url, updater.trusted(), name, info, walk)?;
        crate::metrics::tuf_lookup(&self.url, "walked");
        let found = Arc::new(found);
        self.memo.insert(name.to_owned(), found.clone());
        if let Ok(mut k) = self.known.lock()
            && k.len() < 10_000
        {
            k.insert(name.to_owned());
        }
        Ok(found)
    }

    /// Target `name` with its bytes, checked against the trusted metadata (length and hashes):
    /// the store's copy when it still matches, else downloaded and stored. Used for Sigstore's
    /// `trusted_root.json`; image tags only need the target's entry, never its bytes.
    pub async fn target_bytes(
        &self,
        name: &str,
        now: jiff::Timestamp,
    ) -> Result<(Arc<Found>, Vec<u8>), TrustError> {
        let found = self.lookup(name, now).await?;
        let updater = self.updater.lock().await;
        if let Some(bytes) = updater.find_cached_target(&found.target, name) {
            return Ok((found, bytes));
        }
        let bytes = updater
            .download_target(&found.target, name)
            .await
            .map_err(|e| self.download_error(name, &e))?;
        Ok((found, bytes))
    }

    /// Names of the targets in every role loaded now, and every name a lookup verified
    /// before (at most 10,000 of each): candidates, each resolved again by the caller.
    pub async fn loaded_target_names(&self) -> Vec<String> {
        let mut names = self.known.lock().map(|k| k.clone()).unwrap_or_default();
        let cap = names.len() + 10_000;
        let updater = self.updater.lock().await;
        let t = updater.trusted();
        let mut seen = std::collections::BTreeSet::new();
        let mut stack = vec!["targets".to_owned()];
        while let Some(role) = stack.pop() {
            if names.len() >= cap || !seen.insert(role.clone()) {
                continue;
            }
            let Some(tr) = t.targets_role(&role) else {
                continue;
            };
            names.extend(tr.targets.keys().cloned());
            if let Some(d) = &tr.delegations {
                stack.extend(d.roles.iter().map(|c| c.name.clone()));
            }
        }
        names.into_iter().collect()
    }

    /// A target's bytes that could not be had: unreachable, or not the bytes the metadata
    /// names (`sha256 mismatch`). No refresh is involved, so none is promised.
    fn download_error(&self, name: &str, e: &Error) -> TrustError {
        let url = &self.url;
        if is_unreachable(e) {
            TrustError::Unavailable(format!(
                "TUF repository {url} unreachable while downloading target {name}: {}",
                chain_msg(e)
            ))
        } else {
            TrustError::Invalid(format!(
                "TUF repository {url}: target {name}: {}",
                chain_msg(e)
            ))
        }
    }

    fn lookup_error(&self, name: &str, e: &Error) -> TrustError {
        let url = &self.url;
        // Why the last refresh did not complete, when the repository was unreachable: an
        // expired role, or a new timestamp whose snapshot never came, is explained by it.
        let unreachable = self
            .offline()
            .map(|c| format!(" (repository unreachable: {c})"))
            .unwrap_or_default();
        match e {
            Error::Expired { role, expires } => TrustError::Invalid(format!(
                "TUF repository {url}: role `{role}` expired at {expires}{unreachable}"
            )),
            e if is_unreachable(e) => TrustError::Unavailable(format!(
                "TUF repository {url} unreachable while looking up {name}: {}",
                chain_msg(e)
            )),
            e => TrustError::Invalid(format!(
                "TUF repository {url}: {name}: {}{unreachable} (a refresh is retried within {}s)",
                chain_msg(e),
                RETRY.as_secs()
            )),
        }
    }
}

/// What a lookup verified, from the crate's answer (`info`) and our walk of the same roles.
pub(super) fn found(
    url: &str,
    t: &sigstore_tuf::TrustedMetadataSet,
    name: &str,
    info: Option<sigstore_tuf::TargetFile>,
    walk: Walk,
) -> Result<Found, TrustError> {
    let Some(info) = info else {
        if let Some(role) = walk.succinct {
            return Err(TrustError::Invalid(format!(
                "TUF repository {url}: role `{role}` delegates with succinct_roles (TAP 15 hash \
                 bins), which Portcullis does not support; {name} cannot be looked up there"
            )));
        }
        return Err(TrustError::NotSigned(format!(
            "{name} is not a target of the TUF repository at {url}"
        )));
    };
    if walk.target.as_ref() != Some(&info) {
        return Err(TrustError::Invalid(format!(
            "TUF repository {url}: the delegation walk for {name} found no signing role for the \
             target the client found; refusing"
        )));
    }
    let mut roles = vec![("root".to_owned(), t.root().version, t.root().expires)];
    if let Some(ts) = t.timestamp() {
        roles.push(("timestamp".into(), ts.version, ts.expires));
    }
    if let Some(sn) = t.snapshot() {
        roles.push(("snapshot".into(), sn.version, sn.expires));
    }
    for r in &walk.chain {
        if let Some(tr) = t.targets_role(r) {
            roles.push((r.clone(), tr.version, tr.expires));
        }
    }
    let valid_until = roles
        .iter()
        .map(|r| r.2)
        .min()
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    Ok(Found {
        name: name.to_owned(),
        target: info,
        chain: walk.chain,
        roles,
        valid_until,
    })
}

pub(super) fn versions_of(u: &Updater) -> (u64, u64, u64) {
    let t = u.trusted();
    (
        t.root().version,
        t.timestamp().map_or(0, |x| x.version),
        t.snapshot().map_or(0, |x| x.version),
    )
}
