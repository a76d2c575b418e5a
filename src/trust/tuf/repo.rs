//! One TUF repository (one metadata URL): the crate's `Updater` over our transport and store,
//! when to refresh, one refresh in flight however many pulls wait, offline use, and the memo
//! that keeps warm lookups off the updater's lock.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use sigstore_tuf::{Error, Repository, Updater, UpdaterConfig};

use super::lookup::{Walk, chain};
use super::store::{DurableStore, Versions, check_against};
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
}

pub struct TufRepo {
    pub url: String,
    dir: PathBuf,
    store: Arc<DurableStore>,
    offline: Arc<AtomicBool>,
    updater: tokio::sync::Mutex<Updater>,
    pinned_sha: String,
    status: std::sync::Mutex<Status>,
    memo: moka::sync::Cache<String, Arc<Found>>,
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

    fn recent_answer(&self) -> Option<Result<(), TrustError>> {
        let s = self.status.lock().ok()?;
        let since_try = s.last_try.map(|t| t.elapsed());
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
                if updater.trusted().timestamp().is_none() {
                    // Nothing verified yet in this process: re-verify what the store holds,
                    // from the pinned root, as a refresh would.
                    self.offline
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    let r = updater.refresh(now).await;
                    self.offline
                        .store(false, std::sync::atomic::Ordering::Relaxed);
                    r.map_err(|e2| {
                        TrustError::Unavailable(format!(
                            "TUF repository {} unreachable ({cause}) and no usable metadata \
                             stored on this node: {}",
                            self.url,
                            chain_msg(&e2)
                        ))
                    })?;
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
        let found = self.found(&updater, name, info, walk)?;
        crate::metrics::tuf_lookup(&self.url, "walked");
        let found = Arc::new(found);
        self.memo.insert(name.to_owned(), found.clone());
        Ok(found)
    }

    /// Names of the targets in every role verified so far (at most 10,000).
    pub async fn loaded_target_names(&self) -> Vec<String> {
        let updater = self.updater.lock().await;
        let t = updater.trusted();
        let mut names = std::collections::BTreeSet::new();
        let mut seen = std::collections::BTreeSet::new();
        let mut stack = vec!["targets".to_owned()];
        while let Some(role) = stack.pop() {
            if names.len() >= 10_000 || !seen.insert(role.clone()) {
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

    fn found(
        &self,
        updater: &Updater,
        name: &str,
        info: Option<sigstore_tuf::TargetFile>,
        walk: Walk,
    ) -> Result<Found, TrustError> {
        let Some(info) = info else {
            if let Some(role) = walk.succinct {
                return Err(TrustError::Invalid(format!(
                    "TUF repository {}: role `{role}` delegates with succinct_roles (TAP 15 hash \
                     bins), which Portcullis does not support; {name} cannot be looked up there",
                    self.url
                )));
            }
            return Err(TrustError::NotSigned(format!(
                "{name} is not a target of the TUF repository at {}",
                self.url
            )));
        };
        if walk.target.as_ref() != Some(&info) {
            return Err(TrustError::Invalid(format!(
                "TUF repository {}: the delegation walk for {name} found no signing role for the \
                 target the client found; refusing",
                self.url
            )));
        }
        let t = updater.trusted();
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

    fn lookup_error(&self, name: &str, e: &Error) -> TrustError {
        let url = &self.url;
        match e {
            Error::Expired { role, expires } => TrustError::Invalid(format!(
                "TUF repository {url}: role `{role}` expired at {expires}{}",
                self.offline()
                    .map(|c| format!(" (repository unreachable: {c})"))
                    .unwrap_or_default()
            )),
            e if is_unreachable(e) => TrustError::Unavailable(format!(
                "TUF repository {url} unreachable while looking up {name}: {}",
                chain_msg(e)
            )),
            e => TrustError::Invalid(format!(
                "TUF repository {url}: {name}: {} (a refresh is retried within {}s)",
                chain_msg(e),
                RETRY.as_secs()
            )),
        }
    }
}

fn versions_of(u: &Updater) -> (u64, u64, u64) {
    let t = u.trusted();
    (
        t.root().version,
        t.timestamp().map_or(0, |x| x.version),
        t.snapshot().map_or(0, |x| x.version),
    )
}
