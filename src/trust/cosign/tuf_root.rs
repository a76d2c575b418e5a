//! A keyless source's `trusted_root.json` as the TUF target of that name (`sigstore_tuf`):
//! Sigstore's own way of distributing it. The TUF side is the `tuf` trust source's (same
//! sigstore-tuf client, transport limits, durable store and offline rules, state under
//! `cache.dir/tuf/`); here: which root the verifier uses.
//!
//! Fail closed: the root in use is the one the TUF metadata trusts *now*. When the metadata
//! cannot be refreshed (unreachable) the stored, verified copy serves until the metadata
//! expires; once it expired, or the repository answered with something that does not verify,
//! no root is in use and the source vouches for nothing, saying why.

use std::path::Path;
use std::sync::{Arc, RwLock};

use sha2::Digest as _;

use super::config::{PUBLIC_GOOD_ROOT, PUBLIC_GOOD_ROOT_FILE, SigstoreTuf, TRUSTED_ROOT_TARGET};
use super::sigstore::Root;
use crate::trust::tuf::TufSource;
use crate::trust::tuf::repo::TufRepo;

/// Largest `trusted_root.json` accepted (public-good's is about 10 KB).
const MAX_TRUSTED_ROOT_BYTES: u64 = 1024 * 1024;

/// The trusted root fetched through TUF, and the one in use.
pub struct TufRoot {
    repo: Arc<TufRepo>,
    url: String,
    /// sha256 of the target's bytes, and the root prepared from them.
    current: RwLock<Option<(String, Arc<Root>)>>,
}

impl TufRoot {
    /// Reads and checks the pinned root (nothing is fetched until the first verification).
    pub fn new(cfg: &SigstoreTuf, cache_dir: &Path) -> anyhow::Result<TufRoot> {
        let mut tuf = cfg.tuf_config();
        if cfg.root_file.as_os_str() == PUBLIC_GOOD_ROOT_FILE {
            tuf.root_file = write_public_good_root(cache_dir)?;
        }
        let source =
            TufSource::new(&tuf, cache_dir).map_err(|e| anyhow::anyhow!("sigstore_tuf: {e}"))?;
        let repo = source
            .target_repo(&cfg.targets_url(), MAX_TRUSTED_ROOT_BYTES)
            .map_err(|e| anyhow::anyhow!("sigstore_tuf: {e}"))?;
        Ok(TufRoot {
            repo,
            url: cfg.metadata_url.clone(),
            current: RwLock::new(None),
        })
    }

    /// Refreshes the TUF metadata when its interval has passed and makes the trusted root it
    /// names now the one in use (prepared again only when its bytes changed).
    pub async fn refresh(&self) -> Result<(), String> {
        let result = self.fetch().await;
        if let Err(e) = &result {
            // Nothing the metadata does not trust now stays in use.
            if let Ok(mut c) = self.current.write() {
                *c = None;
            }
            tracing::warn!(url = %self.url, error = %e, "Sigstore trusted root from TUF unusable: cosign-keyless vouches for nothing");
        }
        result
    }

    async fn fetch(&self) -> Result<(), String> {
        let now = jiff::Timestamp::now();
        let what = |e: crate::trust::TrustError| {
            format!(
                "Sigstore trusted root ({TRUSTED_ROOT_TARGET} from TUF repository {}): {e}",
                self.url
            )
        };
        self.repo.ensure_fresh(now, false).await.map_err(what)?;
        let found = self
            .repo
            .lookup(TRUSTED_ROOT_TARGET, now)
            .await
            .map_err(what)?;
        let want = found.target.hashes.get("sha256").cloned();
        if let (Ok(c), Some(want)) = (self.current.read(), &want)
            && c.as_ref().is_some_and(|(sha, _)| sha == want)
        {
            return Ok(());
        }
        let (_, bytes) = self
            .repo
            .target_bytes(TRUSTED_ROOT_TARGET, now)
            .await
            .map_err(what)?;
        let sha = hex::encode(sha2::Sha256::digest(&bytes));
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| format!("{TRUSTED_ROOT_TARGET} from {} is not UTF-8", self.url))?;
        let root = Root::from_json(text).map_err(|e| {
            format!(
                "{TRUSTED_ROOT_TARGET} from {} (signed in TUF) is not usable: {e:#}",
                self.url
            )
        })?;
        let root = Root {
            describe: format!(
                "{TRUSTED_ROOT_TARGET} from TUF {} (sha256:{sha}, signed by {})",
                self.url,
                found.chain.join(" -> ")
            ),
            ..root
        };
        tracing::info!(url = %self.url, sha256 = %sha, "Sigstore trusted root from TUF in use");
        if let Ok(mut c) = self.current.write() {
            *c = Some((sha, Arc::new(root)));
        }
        Ok(())
    }

    /// The root in use, if any.
    pub fn current(&self) -> Result<Arc<Root>, String> {
        self.current
            .read()
            .ok()
            .and_then(|c| c.as_ref().map(|(_, r)| r.clone()))
            .ok_or_else(|| {
                format!(
                    "no Sigstore trusted root in use: {TRUSTED_ROOT_TARGET} from TUF repository \
                     {} could not be verified (see the log)",
                    self.url
                )
            })
    }
}

/// The embedded public-good root as a file under the state directory (the TUF source reads
/// its pinned root from a file, and `root_sha256` pins these bytes); rewritten at each start
/// so a changed file on disk is never what is trusted.
fn write_public_good_root(cache_dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    use anyhow::Context as _;
    let dir = cache_dir.join("tuf");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("sigstore-public-good-root.json");
    let tmp = dir.join(".sigstore-public-good-root.json.tmp");
    std::fs::write(&tmp, PUBLIC_GOOD_ROOT)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Where a cosign source's trusted root comes from: a file, read once at start, or TUF.
pub enum RootSource {
    File(Arc<Root>),
    Tuf(TufRoot),
}

impl RootSource {
    /// From `trusted_root` / `sigstore_tuf` (validation allows at most one); `None` if neither.
    pub fn from_config(
        file: Option<&Path>,
        tuf: Option<&SigstoreTuf>,
        cache_dir: &Path,
    ) -> anyhow::Result<Option<RootSource>> {
        Ok(match (file, tuf) {
            (Some(path), _) => Some(RootSource::File(Arc::new(Root::load(path)?))),
            (None, Some(t)) => Some(RootSource::Tuf(TufRoot::new(t, cache_dir)?)),
            (None, None) => None,
        })
    }

    /// The root in use: the file's, or the one TUF trusts now (none after a failed refresh:
    /// then nothing vouches).
    pub fn current(&self) -> Result<Arc<Root>, String> {
        match self {
            RootSource::File(r) => Ok(r.clone()),
            RootSource::Tuf(t) => t.current(),
        }
    }

    /// Brings a TUF root up to date (a file has nothing to do).
    pub async fn refresh(&self) -> Result<(), String> {
        match self {
            RootSource::File(_) => Ok(()),
            RootSource::Tuf(t) => t.refresh().await,
        }
    }

    /// For log lines.
    pub fn describe(&self) -> String {
        match self {
            RootSource::File(r) => r.describe.clone(),
            RootSource::Tuf(t) => format!("{TRUSTED_ROOT_TARGET} from TUF {}", t.url),
        }
    }
}
