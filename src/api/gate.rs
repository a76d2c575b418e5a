//! The trust gate: every handler asks here before it serves anything.
//!
//! `authorize_tag` and `authorize_digest` ask the repository's trust source, turn the answer
//! into a `policy::Decision`, apply the repository's mode (enforce / audit / skip) and either
//! return or refuse with `DENIED`. Content by digest is allowed when it is reachable from a
//! currently trusted target; the closure of trusted content is rebuilt from the trust source
//! (walking the trusted manifests) when a digest is unknown, e.g. after a restart.

use std::collections::HashSet;
use std::time::Duration;

use tracing::{Instrument, info_span, warn};

use super::ctx::Ctx;
use crate::closure;
use crate::config::Mode;
use crate::error::ApiError;
use crate::policy::{self, Action, Decision};
use crate::refs::{Digest, Tag};
use crate::trust::TrustedTarget;

/// Most manifests fetched to rebuild one repository's closure.
const MAX_REBUILD_MANIFESTS: usize = 2_000;
/// Least time between two closure rebuilds of one repository (a flood of unknown digests must
/// not turn into a flood of upstream fetches).
pub(super) const REBUILD_EVERY: Duration = Duration::from_secs(30);

impl Ctx<'_> {
    /// A manifest by tag. `Some(target)`: serve exactly the signed digest. `None`: no trusted
    /// digest and the mode lets the tag through (skip, or audit after logging).
    pub async fn authorize_tag(&self, tag: &Tag) -> Result<Option<TrustedTarget>, ApiError> {
        let (reg, repo) = (&self.reg.name, &self.repo);
        if self.set.from_policy && self.mode != Mode::Skip {
            return match self.resolve_by_set(tag).await {
                Ok(t) => Ok(Some(t)),
                Err(d) => self.carry_out(d).map(|_| None),
            };
        }
        match (self.mode, self.trust) {
            (Mode::Skip, _) => Ok(None),
            (_, None) => {
                self.carry_out(policy::no_trust_source(reg, repo))?;
                Ok(None)
            }
            (_, Some(t)) => {
                let r = t.resolve(repo, tag).instrument(info_span!("trust")).await;
                self.carry_out(policy::for_tag(reg, repo, tag, &r))?;
                let target = r.ok();
                if let Some(t) = &target {
                    self.proxy.closure.add_root(reg, repo, &t.digest);
                }
                Ok(target)
            }
        }
    }

    /// A blob by digest: allowed when reachable from trusted content.
    pub async fn authorize_digest(&self, digest: &Digest) -> Result<(), ApiError> {
        let d = self.digest_decision(digest, false).await;
        self.carry_out(d)
    }

    /// A manifest by digest, or a referrers subject: under a `[[policy]]` it may also be
    /// vouched for by its own signatures.
    pub async fn authorize_manifest(&self, digest: &Digest) -> Result<(), ApiError> {
        let d = self.digest_decision(digest, true).await;
        self.carry_out(d)
    }

    /// Every target the repository's source trusts now; a refusal under the mode when it cannot
    /// say. `None` in skip mode, or in audit mode when there is nothing to go by.
    pub async fn trusted_targets(&self) -> Result<Option<Vec<TrustedTarget>>, ApiError> {
        let (reg, repo) = (&self.reg.name, &self.repo);
        if self.set.from_policy && self.mode != Mode::Skip {
            return Ok(Some(self.set_targets().await));
        }
        match (self.mode, self.trust) {
            (Mode::Skip, _) => Ok(None),
            (_, None) => self
                .carry_out(policy::no_trust_source(reg, repo))
                .map(|_| None),
            (_, Some(t)) => match t
                .trusted_targets(repo)
                .instrument(info_span!("trust"))
                .await
            {
                Ok(t) => Ok(Some(t)),
                Err(e) => self
                    .carry_out(Decision::Deny {
                        reason: e.reason(),
                        message: format!("tags of {reg}/{repo} refused: {e}"),
                    })
                    .map(|_| None),
            },
        }
    }

    /// Carries out a decision under the repository's mode: refuse, or serve (logging audit
    /// findings).
    pub fn carry_out(&self, d: Decision) -> Result<(), ApiError> {
        let reg = &self.reg.name;
        match policy::apply(self.mode, d) {
            Action::Serve => Ok(()),
            Action::ServeAudited { reason, message } => {
                crate::metrics::audit_would_deny(reg, reason.as_str());
                warn!(registry = %reg, %reason, %message, "audit mode: serving content that enforce mode would refuse");
                Ok(())
            }
            Action::Refuse { reason, message } => {
                warn!(registry = %reg, %reason, %message, "denied");
                Err(ApiError::denied(reason, message))
            }
        }
    }

    /// Allow/deny for content by digest, rebuilding the closure from the trust source when the
    /// digest is unknown (e.g. after a restart) before refusing.
    async fn digest_decision(&self, digest: &Digest, manifest: bool) -> Decision {
        let (reg, repo) = (&self.reg.name, &self.repo);
        if self.mode == Mode::Skip {
            return Decision::Allow;
        }
        if self.set.from_policy {
            return self.digest_decision_by_set(digest, manifest).await;
        }
        let Some(trust) = self.trust else {
            return policy::no_trust_source(reg, repo);
        };
        let targets = match trust
            .trusted_targets(repo)
            .instrument(info_span!("trust"))
            .await
        {
            Ok(t) => t,
            Err(e) => {
                return Decision::Deny {
                    reason: e.reason(),
                    message: format!("{digest} in {reg}/{repo} refused: {e}"),
                };
            }
        };
        let closure = &self.proxy.closure;
        let trusted: HashSet<Digest> = targets.iter().map(|t| t.digest.clone()).collect();
        let roots = closure.roots_of(reg, repo, digest);
        let decision = policy::for_digest(reg, repo, digest, &roots, &trusted);
        if decision == Decision::Allow || !closure.begin_rebuild(reg, repo, REBUILD_EVERY) {
            return decision;
        }
        self.rebuild_closure(&targets).await;
        let roots = closure.roots_of(reg, repo, digest);
        policy::for_digest(reg, repo, digest, &roots, &trusted)
    }

    /// Walks every trusted target's manifests (index -> manifests) to recompute the closure.
    /// Only bytes that match the digest they were fetched by are followed.
    pub(super) async fn rebuild_closure(&self, targets: &[TrustedTarget]) {
        let (reg, repo) = (&self.reg.name, &self.repo);
        let closure = &self.proxy.closure;
        let mut queue: Vec<Digest> = Vec::new();
        for t in targets {
            closure.add_root(reg, repo, &t.digest);
            queue.push(t.digest.clone());
        }
        let mut seen = HashSet::new();
        while let Some(d) = queue.pop() {
            if !seen.insert(d.clone()) || seen.len() > MAX_REBUILD_MANIFESTS {
                continue;
            }
            // Memory, disk, then the registry: a restarted node with the registry down
            // rebuilds from the manifests it cached.
            match super::manifests::load(self, &d).await {
                Ok(m) => {
                    let ch = closure::children(&m.bytes).map(|c| c.manifests);
                    queue.extend(ch.unwrap_or_default());
                }
                Err(e) => {
                    warn!(%repo, digest = %d, error = %e, "closure rebuild: manifest not available");
                }
            }
        }
        tracing::info!(%repo, targets = targets.len(), manifests = seen.len(), "rebuilt closure of trusted content");
    }
}
