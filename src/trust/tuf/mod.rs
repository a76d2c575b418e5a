//! Plain TUF 1.0 trust source (`[registries.tuf]`): a tag is trusted when the TUF repository
//! (python-tuf, tuf-on-ci, RSTUF, tuftool, go-tuf) signs the target `<repository>:<tag>`
//! whose `hashes.sha256` and `length` are those of the manifest as served (the Notary rule).
//!
//! The TUF workflow (root walk, timestamp, snapshot, targets, delegation search, rollback,
//! freeze, thresholds) is sigstore-tuf's. Ours: the transport (`transport`: hyper with size,
//! deadline and rate limits; `file://` mirrors; the store in front), the durable store and the
//! versions file (`store`), the signing chain and the checks on a target (`lookup`), and
//! when to refresh, offline use and memoised lookups (`repo`), and the metadata carried by
//! air-gap bundles (`bundle`).
//!
//! State: `cache.dir/tuf/<sha256 of the metadata URL>/` (`metadata/` and `versions.json`).

pub mod bundle;
pub mod lookup;
pub mod repo;
pub mod store;
pub mod transport;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use sha2::Digest as _;
use sigstore_tuf::{Repository, UpdaterConfig};

use crate::config::TufConfig;
use crate::refs::{RepoName, Tag};
use crate::trust::notary::fetch::{HttpFetcher, Timing};
use crate::trust::{CheckReport, SourceKind, TrustError, TrustSource, TrustedTarget};

use repo::{Found, TufRepo};

/// The time source; tests pin it (fixtures expire).
pub type Clock = Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>;

/// A TUF trust source for one registry (or one repository override).
pub struct TufSource {
    cfg: TufConfig,
    root: Vec<u8>,
    root_sha: String,
    state_dir: PathBuf,
    clock: Clock,
    repos: Mutex<HashMap<String, Arc<TufRepo>>>,
}

impl TufSource {
    /// Reads and checks the pinned root; state under `cache_dir/tuf/`.
    pub fn new(cfg: &TufConfig, cache_dir: &Path) -> Result<TufSource, String> {
        let root = std::fs::read(&cfg.root_file)
            .map_err(|e| format!("root_file {}: {e}", cfg.root_file.display()))?;
        let root_sha = hex::encode(sha2::Sha256::digest(&root));
        if let Some(want) = &cfg.root_sha256
            && !want.eq_ignore_ascii_case(&root_sha)
        {
            return Err(format!(
                "root_file {} has sha256 {root_sha}, but root_sha256 pins {want}",
                cfg.root_file.display()
            ));
        }
        sigstore_tuf::TrustedMetadataSet::from_root(&root).map_err(|e| {
            format!(
                "root_file {} is not a valid, self-signed TUF root: {}",
                cfg.root_file.display(),
                repo::chain_msg(&e)
            )
        })?;
        Ok(TufSource {
            cfg: cfg.clone(),
            root,
            root_sha,
            state_dir: cache_dir.join("tuf"),
            clock: Arc::new(jiff::Timestamp::now),
            repos: Mutex::new(HashMap::new()),
        })
    }

    /// The same source with another clock (tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The crate's limits from `max_bytes`.
    fn updater_config(&self) -> UpdaterConfig {
        let mut c = UpdaterConfig::default();
        c.root_max_length = self.cfg.max_bytes.root;
        c.timestamp_max_length = self.cfg.max_bytes.timestamp;
        c.snapshot_max_length = self.cfg.max_bytes.snapshot;
        c.targets_max_length = self.cfg.max_bytes.targets;
        c
    }

    /// The transport for `url`: HTTP(S), or a directory for `file://`.
    pub fn transport(cfg: &TufConfig, url: &str) -> Result<Box<dyn Repository>, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("{url:?}: {e}"))?;
        if parsed.scheme() == "file" {
            let dir = parsed
                .to_file_path()
                .map_err(|_| format!("{url:?} is not a local path"))?;
            return Ok(Box::new(transport::DirRepo::new(dir)));
        }
        let fetcher =
            HttpFetcher::new(url, cfg.ca_file.as_deref(), Timing::from_config(&cfg.fetch))?;
        Ok(Box::new(transport::HttpRepo::new(fetcher, url)?))
    }

    /// The repository `repo` is looked up in (one per metadata URL), opened on first use.
    fn repo_for(&self, repo: &RepoName) -> Result<Arc<TufRepo>, TrustError> {
        self.open_at(self.cfg.metadata_url_for(repo.as_str()), None)
    }

    /// The repository at `metadata_url` whose target files are read from `targets_url`
    /// (targets of at most `max_target_bytes`): Sigstore's, for its `trusted_root.json`. Same
    /// pinned root, transport limits, store and state directory as an image source.
    pub fn target_repo(
        &self,
        targets_url: &str,
        max_target_bytes: u64,
    ) -> Result<Arc<TufRepo>, TrustError> {
        self.open_at(
            self.cfg.metadata_url.clone(),
            Some((targets_url, max_target_bytes)),
        )
    }

    /// The repository at `url` (opened once), with target files from `targets` if given.
    fn open_at(
        &self,
        url: String,
        targets: Option<(&str, u64)>,
    ) -> Result<Arc<TufRepo>, TrustError> {
        let mut repos = self
            .repos
            .lock()
            .map_err(|_| TrustError::State("TUF source lock poisoned".into()))?;
        if let Some(r) = repos.get(&url) {
            return Ok(r.clone());
        }
        let bad = |e: String| TrustError::State(format!("TUF repository {url}: {e}"));
        let mut config = self.updater_config();
        let inner: Box<dyn Repository> = match targets {
            None => Self::transport(&self.cfg, &url).map_err(bad)?,
            Some((targets_url, max)) => {
                config.target_max_length = max;
                let timing = Timing::from_config(&self.cfg.fetch);
                let fetcher =
                    HttpFetcher::new(&url, self.cfg.ca_file.as_deref(), timing).map_err(bad)?;
                Box::new(
                    transport::HttpRepo::new(fetcher, &url)
                        .and_then(|r| r.with_targets(targets_url))
                        .map_err(bad)?,
                )
            }
        };
        let r = Arc::new(TufRepo::open(
            &url,
            inner,
            &self.root,
            &self.root_sha,
            &self.state_dir_for(&url),
            config,
            self.cfg.refresh_interval(),
        )?);
        repos.insert(url, r.clone());
        Ok(r)
    }

    /// `cache.dir/tuf/<sha256 of the metadata URL>/`.
    fn state_dir_for(&self, url: &str) -> PathBuf {
        self.state_dir
            .join(hex::encode(sha2::Sha256::digest(url.as_bytes())))
    }

    fn covered(&self, repo: &RepoName) -> Result<(), TrustError> {
        if repo.as_str().starts_with(&self.cfg.prefix) {
            return Ok(());
        }
        Err(TrustError::NotSigned(format!(
            "repository {repo} is outside the TUF source's prefix {:?}",
            self.cfg.prefix
        )))
    }

    async fn find(
        &self,
        repo: &RepoName,
        tag: &Tag,
        force: bool,
    ) -> Result<(Arc<TufRepo>, Arc<Found>), TrustError> {
        self.covered(repo)?;
        let r = self.repo_for(repo)?;
        let now = (self.clock)();
        r.ensure_fresh(now, force).await?;
        let name = lookup::target_name(&self.cfg.target_name, repo.as_str(), tag.as_str());
        let found = r.lookup(&name, now).await?;
        self.check_required(&found)?;
        Ok((r, found))
    }

    fn check_required(&self, f: &Found) -> Result<(), TrustError> {
        let req = &self.cfg.required_roles;
        if req.is_empty() || f.chain.iter().any(|r| req.contains(r)) {
            return Ok(());
        }
        Err(TrustError::NotSigned(format!(
            "{} is signed by {}, but required_roles asks for one of {}",
            f.name,
            f.chain.join(" -> "),
            req.join(", ")
        )))
    }

    fn trusted_target(&self, tag: &str, f: &Found) -> Result<TrustedTarget, TrustError> {
        let bad = |why: String| TrustError::Invalid(format!("TUF target {}: {why}", f.name));
        Ok(TrustedTarget {
            name: tag.to_owned(),
            digest: lookup::digest_of(&f.target).map_err(bad)?,
            length: Some(f.target.length),
            media_type: lookup::media_type_of(&f.target).map_err(bad)?,
            source: SourceKind::Tuf,
            signer: f.chain.join(" -> "),
        })
    }
}

#[async_trait]
impl TrustSource for TufSource {
    async fn resolve(&self, repo: &RepoName, tag: &Tag) -> Result<TrustedTarget, TrustError> {
        let (_, found) = self.find(repo, tag, false).await?;
        self.trusted_target(tag.as_str(), &found)
    }

    async fn trusted_targets(&self, repo: &RepoName) -> Result<Vec<TrustedTarget>, TrustError> {
        self.covered(repo)?;
        let r = self.repo_for(repo)?;
        r.ensure_fresh((self.clock)(), false).await?;
        // Targets of the roles verified so far (delegated roles load on first lookup), each
        // resolved through the same walk a pull takes.
        let mut out = Vec::new();
        for name in r.loaded_target_names().await {
            let Some(tag) = lookup::tag_of(&self.cfg.target_name, repo.as_str(), &name) else {
                continue;
            };
            let Ok(tag) = tag.parse::<Tag>() else {
                continue;
            };
            if let Ok((_, f)) = self.find(repo, &tag, false).await {
                out.push(self.trusted_target(tag.as_str(), &f)?);
            }
        }
        Ok(out)
    }

    async fn check(&self, repo: &RepoName, tag: &Tag) -> Result<CheckReport, TrustError> {
        let (r, f) = self.find(repo, tag, true).await?;
        let target = self.trusted_target(tag.as_str(), &f)?;
        let mut facts = vec![
            ("target".to_owned(), f.name.clone()),
            ("chain".to_owned(), f.chain.join(" -> ")),
        ];
        for (role, version, expires) in &f.roles {
            facts.push((
                role.clone(),
                format!("version {version}, expires {expires}"),
            ));
        }
        let offline = r.offline();
        let origin = match &offline {
            None => r.url.clone(),
            Some(_) => format!("this node's store (verified earlier from {})", r.url),
        };
        facts.push(("metadata from".to_owned(), origin));
        Ok(CheckReport {
            target,
            facts,
            offline,
        })
    }
}
