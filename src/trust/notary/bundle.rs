//! A GUN's metadata in and out of an air-gap bundle (`crate::bundle`).
//!
//! Export takes the metadata a refresh just verified online (exact served bytes of every role)
//! and every earlier root version, so a node whose trusted root is older can walk the chain.
//! Import verifies the bundle's files exactly as a refresh verifies a server's answers: against
//! the node's own anchors (`trust_pinning`) and its stored state (the trusted root, the highest
//! version seen of each role: an older bundle is a rollback and is refused), at the node's
//! clock. Nothing is stored until the caller commits, after everything else in the bundle
//! verified too.

use std::collections::BTreeMap;

use super::error::Error;
use super::metadata::Common;
use super::pinning::anchor_for;
use super::resolve::resolve;
use super::source::NotarySource;
use super::state::{StateDir, StoredFetcher};
use super::update::{Prior, Trusted, update};
use crate::refs::{RepoName, Tag};
use crate::trust::TrustedTarget;

/// One GUN's bundle files verified against this node, ready to be stored.
#[derive(Debug)]
pub struct Verified {
    state: StateDir,
    prior: Prior,
    trusted: Trusted,
    required: Vec<String>,
    /// The node trusted nothing for this GUN before and took the bundle's root on first use.
    pub first_use: bool,
}

impl Verified {
    /// The digest `repo:tag` is signed for in the verified metadata.
    pub fn resolve(&self, repo: &RepoName, tag: &Tag) -> Result<TrustedTarget, Error> {
        resolve(
            &self.trusted,
            &format!("{repo}:{tag}"),
            tag.as_str(),
            &self.required,
        )
    }

    /// Version of each verified role, for the import's report.
    pub fn versions(&self) -> Vec<(String, u64)> {
        self.trusted
            .roles()
            .into_iter()
            .map(|r| (r.role, r.version))
            .collect()
    }

    /// Stores it as the node's trust state for the GUN (atomic per GUN).
    pub fn commit(&self) -> Result<(), Error> {
        NotarySource::persist(&self.state, &self.prior, &self.trusted)
    }
}

impl NotarySource {
    /// The exact bytes of `repo`'s metadata, verified online now (a bundle never carries
    /// metadata the server could not confirm), plus `<v>.root` for every earlier root version.
    /// Keys are role paths as the fetcher asks for them (`root`, `targets/releases`, `2.root`).
    pub async fn export_metadata(
        &self,
        repo: &RepoName,
    ) -> Result<(String, BTreeMap<String, Vec<u8>>), Error> {
        let gun = self.gun(repo);
        let fresh = self.refresh(&gun).await?;
        if let Some(cause) = fresh.offline {
            return Err(Error::Unavailable {
                gun,
                server: self.fetcher.describe(),
                cause: format!("{cause}; a bundle carries only metadata verified online"),
            });
        }
        let mut files: BTreeMap<String, Vec<u8>> = fresh
            .trusted
            .files()
            .into_iter()
            .map(|(role, raw)| (role, raw.to_vec()))
            .collect();
        let current = fresh.trusted.root.env.signed.version();
        for v in 1..current {
            let path = format!("{v}.root");
            match self.fetcher.fetch(&gun, &path, self.limits.root).await {
                Ok(raw) => {
                    files.insert(path, raw.to_vec());
                }
                // A server that no longer has an old root: nodes that trusted it must walk the
                // chain online; the bundle still serves nodes at or past the versions it has.
                Err(e) => {
                    tracing::warn!(gun, version = v, error = %e, "bundle: earlier root version not available")
                }
            }
        }
        Ok((gun, files))
    }

    /// Verifies a bundle's files for `gun` against this node's anchors and stored state.
    pub async fn verify_bundle(
        &self,
        gun: &str,
        files: BTreeMap<String, Vec<u8>>,
    ) -> Result<Verified, Error> {
        let now = (self.clock)();
        // Nothing is persisted during verification: a chain walk's roots are kept only if the
        // whole bundle is imported.
        let (state, stored, prior) = self.prior(gun, false)?;
        let anchor = anchor_for(gun, &self.cfg.trust_pinning)?;
        let trusted = update(
            &StoredFetcher(files),
            gun,
            &anchor,
            &prior,
            &self.limits,
            &self.wanted(),
            now,
        )
        .await?;
        Ok(Verified {
            state,
            prior,
            trusted,
            required: self.cfg.required_signers.clone(),
            first_use: stored.is_none(),
        })
    }
}
