//! TUF sources in a bundle.
//!
//! Export: the exported tags are grouped by TUF repository (registry and metadata URL); each
//! repository's metadata is exported once, verified online, with the roles those tags need.
//! Import: an image's repository is matched to the bundle entry that lists it; the entry is
//! verified once per TUF repository of this node (its own `metadata_url`, `root_file` and
//! stored state), and each image's tag is resolved in it.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::anyhow;
use base64::Engine as _;

use super::{Progress, TufMetadata};
use crate::config::TufConfig;
use crate::refs::{RepoName, Tag};
use crate::trust::TrustedTarget;
use crate::trust::tuf::TufSource;
use crate::trust::tuf::bundle::Verified;

/// One TUF repository's exports: the source's config, and repository -> tags.
type Group = (TufConfig, BTreeMap<RepoName, Vec<Tag>>);

/// The exported tags of each TUF repository.
#[derive(Default)]
pub(super) struct TufExports {
    /// (registry, metadata URL) -> what is exported from it.
    groups: BTreeMap<(String, String), Group>,
}

impl TufExports {
    pub(super) fn add(&mut self, registry: &str, t: &TufConfig, repo: &RepoName, tag: &Tag) {
        let key = (registry.to_owned(), t.metadata_url_for(repo.as_str()));
        let (_, repos) = self
            .groups
            .entry(key)
            .or_insert_with(|| (t.clone(), BTreeMap::new()));
        repos.entry(repo.clone()).or_default().push(tag.clone());
    }

    /// Each repository's metadata, verified online now.
    pub(super) async fn export(
        self,
        cache_dir: &Path,
        progress: &Progress,
    ) -> anyhow::Result<Vec<TufMetadata>> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut out = Vec::new();
        for ((registry, url), (t, repos)) in self.groups {
            let source = TufSource::new(&t, cache_dir)
                .map_err(|e| anyhow!("registry {registry}: tuf trust source: {e}"))?;
            progress.say(format_args!("trust metadata of the TUF repository {url}"));
            let mut files = BTreeMap::new();
            for (repo, tags) in &repos {
                let e = source
                    .export_metadata(repo, tags)
                    .await
                    .map_err(|e| anyhow!("{registry}/{repo}: {e}"))?;
                files.extend(e.files);
            }
            out.push(TufMetadata {
                registry,
                metadata_url: url,
                repositories: repos.keys().map(ToString::to_string).collect(),
                files: files.into_iter().map(|(k, v)| (k, b64.encode(v))).collect(),
            });
        }
        Ok(out)
    }
}

/// The bundle's TUF metadata as this node verifies it, one entry per TUF repository.
pub(crate) struct TufTrust<'a> {
    bundle: &'a [TufMetadata],
    cache_dir: &'a Path,
    verified: BTreeMap<(String, String), (TufSource, Verified)>,
}

impl<'a> TufTrust<'a> {
    pub(super) fn new(bundle: &'a [TufMetadata], cache_dir: &'a Path) -> Self {
        TufTrust {
            bundle,
            cache_dir,
            verified: BTreeMap::new(),
        }
    }

    /// The target `tag` of `registry/repo` resolves to in the bundle's metadata, verified
    /// against this node's TUF source `t`.
    pub(super) async fn resolve(
        &mut self,
        registry: &str,
        t: &TufConfig,
        repo: &RepoName,
        tag: &Tag,
        progress: &Progress,
    ) -> anyhow::Result<TrustedTarget> {
        let url = t.metadata_url_for(repo.as_str());
        let key = (registry.to_owned(), url.clone());
        if !self.verified.contains_key(&key) {
            let entry = self
                .bundle
                .iter()
                .find(|e| {
                    e.registry == registry && e.repositories.iter().any(|r| r == repo.as_str())
                })
                .ok_or_else(|| anyhow!("the bundle has no TUF metadata for {registry}/{repo}"))?;
            let b64 = base64::engine::general_purpose::STANDARD;
            let mut files = BTreeMap::new();
            for (name, data) in &entry.files {
                let raw = b64.decode(data).map_err(|e| {
                    anyhow!("TUF metadata of {registry}/{repo}: {name} is not base64: {e}")
                })?;
                files.insert(name.clone(), raw);
            }
            let source = TufSource::new(t, self.cache_dir)
                .map_err(|e| anyhow!("registry {registry}: tuf trust source: {e}"))?;
            progress.say(format_args!("verifying the TUF metadata for {url}"));
            let v = source.verify_bundle(repo, files).await.map_err(|e| {
                anyhow!(
                    "TUF metadata for {registry}/{repo} ({url} on this node) does not verify: {e}"
                )
            })?;
            if v.first_use {
                tracing::info!(%url, "bundle import: no TUF state for this repository yet; verified from the pinned root_file");
            }
            self.verified.insert(key.clone(), (source, v));
        }
        let (source, v) = &self.verified[&key];
        Ok(v.resolve(source, repo, tag).await?)
    }

    /// After every image resolved: the files no verification needed must agree with what
    /// this node trusts (see [`Verified::check_unread`]).
    pub(super) fn check_unread(&self) -> anyhow::Result<()> {
        for ((registry, url), (_, v)) in &self.verified {
            v.check_unread().map_err(|e| {
                anyhow!("TUF metadata for {registry} ({url} on this node) does not verify: {e}")
            })?;
        }
        Ok(())
    }

    /// How many TUF repositories were verified.
    pub(super) fn len(&self) -> usize {
        self.verified.len()
    }

    /// Stores each repository's verified metadata (see [`Verified::commit`]).
    pub(super) async fn commit(&self) -> anyhow::Result<()> {
        for (_, v) in self.verified.values() {
            v.commit().await?;
        }
        Ok(())
    }
}
