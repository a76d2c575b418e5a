//! The closure of trusted content: everything reachable from a trusted target (an index's
//! manifests, each manifest's config, layers and subject), per repository.
//!
//! Each node remembers which trusted targets (roots) it was reached from. A manifest or blob by
//! digest is served only while one of its roots is still a currently trusted target, so a tag
//! re-signed to other content stops vouching for the old content's blobs. The closure is
//! rebuilt from the trust source on demand (e.g. after a restart) by the handler.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;

use serde::Deserialize;

use crate::refs::{Digest, RepoName};

/// A bound on nodes per repository, so that a huge signed index cannot grow memory without end.
const MAX_NODES_PER_REPO: usize = 200_000;

#[derive(Default)]
struct RepoClosure {
    nodes: HashMap<Digest, HashSet<Digest>>,
    last_rebuild: Option<Instant>,
}

/// Closure sets for every (registry, repository).
#[derive(Default)]
pub struct Closure {
    repos: Mutex<HashMap<(String, RepoName), RepoClosure>>,
}

impl Closure {
    /// Records `root` as a trusted target of the repository.
    pub fn add_root(&self, registry: &str, repo: &RepoName, root: &Digest) {
        self.with(registry, repo, |rc| {
            rc.nodes
                .entry(root.clone())
                .or_default()
                .insert(root.clone());
        });
    }

    /// Records `children` as reachable from whatever `parent` is reachable from.
    pub fn add_children(
        &self,
        registry: &str,
        repo: &RepoName,
        parent: &Digest,
        children: &[Digest],
    ) {
        self.with(registry, repo, |rc| {
            let Some(roots) = rc.nodes.get(parent).cloned() else {
                return;
            };
            for c in children {
                if rc.nodes.len() >= MAX_NODES_PER_REPO && !rc.nodes.contains_key(c) {
                    tracing::warn!(%repo, "closure is full; not recording more children");
                    return;
                }
                rc.nodes
                    .entry(c.clone())
                    .or_default()
                    .extend(roots.iter().cloned());
            }
        });
    }

    /// The roots `digest` was reached from, if any.
    pub fn roots_of(&self, registry: &str, repo: &RepoName, digest: &Digest) -> HashSet<Digest> {
        let repos = self.repos.lock().unwrap_or_else(|p| p.into_inner());
        repos
            .get(&(registry.to_owned(), repo.clone()))
            .and_then(|rc| rc.nodes.get(digest).cloned())
            .unwrap_or_default()
    }

    /// Marks a rebuild now; returns false if one ran less than `min_gap` ago (so that requests
    /// for unknown digests cannot make the proxy walk a repository again and again).
    pub fn begin_rebuild(
        &self,
        registry: &str,
        repo: &RepoName,
        min_gap: std::time::Duration,
    ) -> bool {
        let mut go = false;
        self.with(registry, repo, |rc| {
            if rc.last_rebuild.is_none_or(|t| t.elapsed() >= min_gap) {
                rc.last_rebuild = Some(Instant::now());
                go = true;
            }
        });
        go
    }

    fn with(&self, registry: &str, repo: &RepoName, f: impl FnOnce(&mut RepoClosure)) {
        // A poisoned lock only means another request panicked mid-update of a set of digests;
        // the sets stay consistent enough (they only grow), so keep going.
        let mut repos = self.repos.lock().unwrap_or_else(|p| p.into_inner());
        f(repos
            .entry((registry.to_owned(), repo.clone()))
            .or_default());
    }
}

#[derive(Deserialize)]
struct Desc {
    digest: String,
}

/// The references out of a manifest, as far as we follow them. Both Docker schema2 and OCI
/// shapes (and OCI artifact manifests' `blobs`) use the same field names; unknown fields are
/// ignored so that new media types do not break pulls.
#[derive(Deserialize, Default)]
struct ManifestRefs {
    #[serde(default)]
    manifests: Vec<Desc>,
    #[serde(default)]
    config: Option<Desc>,
    #[serde(default)]
    layers: Vec<Desc>,
    #[serde(default)]
    blobs: Vec<Desc>,
    #[serde(default)]
    subject: Option<Desc>,
}

/// Children of a manifest: (child manifests to walk, blobs).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Children {
    pub manifests: Vec<Digest>,
    pub blobs: Vec<Digest>,
}

impl Children {
    pub fn all(&self) -> Vec<Digest> {
        self.manifests.iter().chain(&self.blobs).cloned().collect()
    }
}

/// Parses a manifest's references. A digest that does not parse is skipped: it could never be
/// requested through the proxy anyway, since requests are validated the same way.
pub fn children(manifest: &[u8]) -> Result<Children, serde_json::Error> {
    let m: ManifestRefs = serde_json::from_slice(manifest)?;
    let parse = |d: &Desc| d.digest.parse::<Digest>().ok();
    let mut out = Children {
        manifests: m.manifests.iter().filter_map(parse).collect(),
        blobs: m
            .config
            .iter()
            .chain(&m.layers)
            .chain(&m.blobs)
            .filter_map(parse)
            .collect(),
    };
    out.manifests.extend(m.subject.as_ref().and_then(parse));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .unwrap()
    }

    #[test]
    fn roots_propagate() {
        let c = Closure::default();
        let repo: RepoName = "demo/app".parse().unwrap();
        c.add_root("r", &repo, &d('a'));
        c.add_children("r", &repo, &d('a'), &[d('b'), d('c')]);
        c.add_children("r", &repo, &d('b'), &[d('e')]);
        // A parent that is not in the closure adds nothing.
        c.add_children("r", &repo, &d('f'), &[d('0')]);
        assert!(c.roots_of("r", &repo, &d('e')).contains(&d('a')));
        assert!(c.roots_of("r", &repo, &d('0')).is_empty());
        assert!(c.roots_of("other", &repo, &d('e')).is_empty());
    }

    #[test]
    fn parses_index_manifest_and_docker_shapes() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let idx = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"digest":"{a}","size":1}},{{"digest":"bogus"}}]}}"#
        );
        assert_eq!(
            children(idx.as_bytes()).unwrap().manifests,
            vec![a.parse().unwrap()]
        );
        let man = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"digest":"{a}"}},"layers":[{{"digest":"{b}"}}],"subject":{{"digest":"{b}"}}}}"#
        );
        let ch = children(man.as_bytes()).unwrap();
        assert_eq!(ch.blobs.len(), 2);
        assert_eq!(ch.manifests.len(), 1);
        assert!(children(b"not json").is_err());
    }
}
