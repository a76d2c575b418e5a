//! [`NotarySource`]: the Notary v1 [`TrustSource`] with in-memory and on-disk caching.
//!
//! Owns: GUN naming, when to refresh (after `refresh_interval_secs`, or as soon as a cached
//! role expires), one refresh in flight per GUN however many callers wait (moka's
//! `try_get_with`), and Docker's offline behaviour: when the server is unreachable, cached
//! metadata is re-verified at the current time and used until it expires.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::config::NotaryConfig;
use crate::refs::{RepoName, Tag};
use crate::trust::{TrustError, TrustSource, TrustedTarget};

use super::error::Error;
use super::fetch::{Fetch, HttpFetcher, Timing};
use super::metadata::Common;
use super::pinning::anchor_for;
use super::resolve::{DOCKER_ORDER, all_targets, resolve};
use super::state::{StateDir, StoredFetcher};
use super::update::{Limits, Prior, RoleStatus, Trusted, update};
use super::verify::trusted_root;

/// The time source; tests pin it (samples expire).
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// Metadata verified by one refresh.
#[derive(Debug)]
pub struct Fresh {
    pub trusted: Trusted,
    /// `Some(cause)` when the server was unreachable and the cache stood in.
    pub offline: Option<String>,
    /// `offline_grace` when the cache stood in and its timestamp had expired: the timestamp
    /// is then used until its expiry plus this.
    pub grace: Option<Duration>,
}

impl Fresh {
    /// Past this instant the metadata must not be used: the earliest expiry of its roles,
    /// the timestamp's extended by the grace in use.
    pub fn valid_until(&self) -> OffsetDateTime {
        self.trusted
            .roles()
            .iter()
            .map(|r| match self.grace {
                Some(g) if r.role == "timestamp" => r.expires + g,
                _ => r.expires,
            })
            .min()
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// What a check of one tag verified, in Notary's terms.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub gun: String,
    pub server: String,
    pub target: TrustedTarget,
    /// Version and expiry of every verified role.
    pub roles: Vec<RoleStatus>,
    /// `Some(cause)` when the server was unreachable and cached metadata was used.
    pub offline: Option<String>,
    /// Set when that cached timestamp had expired and `offline_grace` let it through.
    pub grace: Option<Duration>,
}

/// Notary v1 trust source for one registry.
pub struct NotarySource {
    pub(super) registry: String,
    pub(super) cfg: NotaryConfig,
    cache_dir: PathBuf,
    pub(super) fetcher: Arc<dyn Fetch>,
    pub(super) limits: Limits,
    pub(super) clock: Clock,
    cache: moka::future::Cache<String, Arc<Fresh>>,
}

impl NotarySource {
    /// The real source: HTTPS to `cfg.server`, state under `cache_dir/notary/`.
    pub fn new(registry_name: &str, cfg: &NotaryConfig, cache_dir: &Path) -> Result<Self, Error> {
        // Building the client reads only local files (the CA bundle): its failure is a config
        // mistake to report as such, not "notary server unreachable".
        let fetcher = HttpFetcher::new(
            &cfg.server,
            cfg.ca_file.as_deref(),
            Timing::from_config(&cfg.fetch),
        )
        .map_err(|cause| Error::Setup(format!("notary server {}: {cause}", cfg.server)))?;
        Ok(Self::with_fetcher(
            registry_name,
            cfg,
            cache_dir,
            Arc::new(fetcher),
            Arc::new(OffsetDateTime::now_utc),
            Limits::default(),
        ))
    }

    /// A source over any fetcher and clock (tests, or a custom transport).
    pub fn with_fetcher(
        registry_name: &str,
        cfg: &NotaryConfig,
        cache_dir: &Path,
        fetcher: Arc<dyn Fetch>,
        clock: Clock,
        limits: Limits,
    ) -> Self {
        let cache = moka::future::Cache::builder()
            .max_capacity(10_000)
            .time_to_live(Duration::from_secs(cfg.refresh_interval_secs.max(1)))
            .build();
        NotarySource {
            registry: registry_name.to_string(),
            cfg: cfg.clone(),
            cache_dir: cache_dir.to_path_buf(),
            fetcher,
            limits,
            clock,
            cache,
        }
    }

    /// The GUN of `repo`: `gun_template` with `{registry}` and `{repository}` filled in.
    pub fn gun(&self, repo: &RepoName) -> String {
        self.cfg
            .gun_template
            .replace("{registry}", &self.registry)
            .replace("{repository}", repo.as_str())
    }

    pub(super) fn wanted(&self) -> Vec<String> {
        if self.cfg.required_signers.is_empty() {
            DOCKER_ORDER.iter().map(|s| s.to_string()).collect()
        } else {
            self.cfg.required_signers.clone()
        }
    }

    /// What is trusted already for `gun`: its state directory, what it holds, and the prior
    /// (root and highest versions) an update is checked against. `keep` persists roots
    /// verified in the middle of a chain walk at once.
    pub(super) fn prior(
        &self,
        gun: &str,
        keep: bool,
    ) -> Result<(StateDir, Option<super::state::Stored>, Prior), Error> {
        let state = StateDir::new(&self.cache_dir, gun);
        let stored = state.load()?;
        let prior = match &stored {
            Some(s) => Prior {
                root: Some(
                    // `StateDir::load` guarantees a root; an empty slice fails to parse.
                    trusted_root(gun, s.files.get("root").map_or(&[][..], Vec::as_slice)).map_err(
                        |e| Error::State {
                            gun: gun.to_string(),
                            dir: state.path().display().to_string(),
                            reason: format!("stored root.json: {e}"),
                        },
                    )?,
                ),
                versions: s.versions.clone(),
                keep: keep.then(|| Arc::new(state.clone()) as Arc<dyn super::chain::KeepRoot>),
            },
            None => Prior::default(),
        };
        Ok((state, stored, prior))
    }

    /// Stores what an update verified, with the highest version of each role ever seen.
    pub(super) fn persist(state: &StateDir, prior: &Prior, trusted: &Trusted) -> Result<(), Error> {
        let mut versions: BTreeMap<String, u64> = prior.versions.clone();
        for r in trusted.roles() {
            let v = versions.entry(r.role).or_insert(0);
            *v = (*v).max(r.version);
        }
        state.save(trusted, &versions)
    }

    /// Fetches and verifies `gun` now, persisting on success; falls back to the cache only
    /// when the server is unreachable.
    pub(super) async fn refresh(&self, gun: &str) -> Result<Fresh, Error> {
        let now = (self.clock)();
        let (state, stored, prior) = self.prior(gun, true)?;
        let anchor = anchor_for(gun, &self.cfg.trust_pinning)?;
        let wanted = self.wanted();
        let result = update(
            &*self.fetcher,
            gun,
            &anchor,
            &prior,
            &self.limits,
            &wanted,
            now,
        )
        .await;
        match result {
            Ok(trusted) => {
                Self::persist(&state, &prior, &trusted)?;
                Ok(Fresh {
                    trusted,
                    offline: None,
                    grace: None,
                })
            }
            Err(Error::Fetch { source, role, .. }) if source.is_unreachable() => {
                let cause = format!("{role}: {source}");
                let server = self.fetcher.describe();
                let Some(stored) = stored else {
                    return Err(Error::Unavailable {
                        gun: gun.to_string(),
                        server,
                        cause,
                    });
                };
                tracing::warn!(gun, %cause, "notary server unreachable; using cached metadata");
                let replay = StoredFetcher(stored.files);
                let grace = self.cfg.offline_grace();
                let limits = Limits {
                    timestamp_grace: grace.unwrap_or_default(),
                    ..self.limits.clone()
                };
                match update(&replay, gun, &anchor, &prior, &limits, &wanted, now).await {
                    Ok(trusted) => {
                        let expired = trusted.timestamp.signed.expires() <= now;
                        if expired {
                            tracing::warn!(
                                gun,
                                timestamp_expired = %trusted.timestamp.signed.expires(),
                                offline_grace = ?self.cfg.offline_grace,
                                "notary server unreachable and the cached timestamp has EXPIRED; trusting it anyway under offline_grace (verification loosened by configuration)"
                            );
                        }
                        Ok(Fresh {
                            trusted,
                            offline: Some(cause),
                            grace: grace.filter(|_| expired),
                        })
                    }
                    Err(e) => Err(Error::CacheExpired {
                        gun: gun.to_string(),
                        server,
                        cause,
                        cached: e.to_string(),
                    }),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Verified metadata for `gun`: cached while fresh and unexpired, else one refresh shared
    /// by all concurrent callers.
    pub async fn current(&self, gun: &str) -> Result<Arc<Fresh>, Error> {
        for _ in 0..2 {
            let fresh = self
                .cache
                .try_get_with(gun.to_string(), async {
                    self.refresh(gun).await.map(Arc::new)
                })
                .await
                .map_err(|e| (*e).clone())?;
            // A role may expire before the refresh interval is up: never serve past expires.
            if fresh.valid_until() > (self.clock)() {
                return Ok(fresh);
            }
            self.cache.invalidate(gun).await;
        }
        let fresh = self.refresh(gun).await?;
        Ok(Arc::new(fresh))
    }

    /// A decision made on an expired timestamp under `offline_grace` is counted, every one
    /// (the warning is logged once per refresh, in `refresh`).
    fn count_grace(&self, fresh: &Fresh, gun: &str) {
        if fresh.grace.is_some() {
            crate::metrics::offline_grace_used(&self.registry);
            tracing::debug!(gun, "trust decision under offline_grace");
        }
    }

    /// Always asks the server (cache only if it is unreachable), then resolves `tag`.
    pub async fn check_report(
        &self,
        repo: &RepoName,
        tag: &Tag,
    ) -> Result<CheckReport, TrustError> {
        let gun = self.gun(repo);
        let fresh = Arc::new(self.refresh(&gun).await?);
        if fresh.offline.is_none() {
            self.cache.insert(gun.clone(), fresh.clone()).await;
        }
        let target = resolve(
            &fresh.trusted,
            &format!("{repo}:{tag}"),
            tag.as_str(),
            &self.cfg.required_signers,
        )?;
        Ok(CheckReport {
            gun,
            server: self.fetcher.describe(),
            target,
            roles: fresh.trusted.roles(),
            offline: fresh.offline.clone(),
            grace: fresh.grace,
        })
    }
}

#[async_trait]
impl TrustSource for NotarySource {
    async fn resolve(&self, repo: &RepoName, tag: &Tag) -> Result<TrustedTarget, TrustError> {
        let gun = self.gun(repo);
        let fresh = self.current(&gun).await?;
        self.count_grace(&fresh, &gun);
        Ok(resolve(
            &fresh.trusted,
            &format!("{repo}:{tag}"),
            tag.as_str(),
            &self.cfg.required_signers,
        )?)
    }

    async fn trusted_targets(&self, repo: &RepoName) -> Result<Vec<TrustedTarget>, TrustError> {
        let gun = self.gun(repo);
        let fresh = self.current(&gun).await?;
        self.count_grace(&fresh, &gun);
        Ok(all_targets(&fresh.trusted, &self.cfg.required_signers))
    }

    async fn check(
        &self,
        repo: &RepoName,
        tag: &Tag,
    ) -> Result<crate::trust::CheckReport, TrustError> {
        let rep = self.check_report(repo, tag).await?;
        let rfc3339 = &time::format_description::well_known::Rfc3339;
        let mut facts = vec![(
            "gun".to_string(),
            format!("{} (notary {})", rep.gun, rep.server),
        )];
        for role in &rep.roles {
            let expires = role
                .expires
                .format(rfc3339)
                .unwrap_or_else(|_| role.expires.to_string());
            facts.push((
                role.role.clone(),
                format!("version {:<6} expires {expires}", role.version),
            ));
        }
        if let Some(g) = rep.grace {
            facts.push((
                "offline_grace".to_string(),
                format!(
                    "the cached timestamp has EXPIRED; trusted for up to {} past its expiry because offline_grace is set",
                    humantime::format_duration(g)
                ),
            ));
        }
        Ok(crate::trust::CheckReport {
            target: rep.target,
            facts,
            offline: rep.offline,
        })
    }
}
