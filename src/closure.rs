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

use oci_spec::image::{ArtifactManifest, Descriptor, ImageIndex, ImageManifest};
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

/// Only the document's own `mediaType`, to choose the type to read it as.
#[derive(Deserialize)]
struct MediaTypeOnly {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
}

/// Parses a manifest's references with oci-spec's types of the OCI image spec, which also read
/// Docker schema 2 (the same fields, other media types). A document that breaks a MUST of the
/// specs (a descriptor without `mediaType`, `size` or a well-formed `digest`, a manifest without
/// `config`) yields an error and so no children: its blobs are refused, never served unverified.
/// tests/manifest_grammar.rs compares this with the hand-written grammar it replaced.
///
/// The type is the one the document's `mediaType` names. OCI requires it to match the
/// descriptor's media type, which is what clients go by (containerd's `ChildrenHandler`,
/// containers/image's `manifest.FromBlob`), so the closure follows what the client will fetch
/// and not every field that happens to be there. Without a `mediaType` (OCI: it SHOULD be
/// there, an index in an OCI layout often omits it) an image manifest is tried, then an index.
///
/// A digest that oci-spec accepts but [`Digest`] does not (an algorithm other than sha256 and
/// sha512) is skipped: it could never be requested through the proxy, since requests are
/// validated the same way.
pub fn children(manifest: &[u8]) -> Result<Children, serde_json::Error> {
    let MediaTypeOnly { media_type } = serde_json::from_slice(manifest)?;
    match media_type.as_deref() {
        Some(
            "application/vnd.oci.image.index.v1+json"
            | "application/vnd.docker.distribution.manifest.list.v2+json",
        ) => index(manifest),
        Some(
            "application/vnd.oci.image.manifest.v1+json"
            | "application/vnd.docker.distribution.manifest.v2+json",
        ) => image(manifest),
        // The OCI 1.1 release candidates' artifact manifest (withdrawn from 1.1, still stored by
        // some registries): `blobs` instead of `config` and `layers`.
        Some("application/vnd.oci.artifact.manifest.v1+json") => artifact(manifest),
        // The image manifest's error is kept: the more common shape, and the likelier mistake.
        _ => image(manifest).or_else(|e| index(manifest).map_err(|_| e)),
    }
}

fn image(bytes: &[u8]) -> Result<Children, serde_json::Error> {
    let m: ImageManifest = serde_json::from_slice(bytes)?;
    Ok(Children {
        manifests: digests(m.subject()),
        blobs: digests(std::iter::once(m.config()).chain(m.layers())),
    })
}

fn index(bytes: &[u8]) -> Result<Children, serde_json::Error> {
    let i: ImageIndex = serde_json::from_slice(bytes)?;
    Ok(Children {
        manifests: digests(i.manifests().iter().chain(i.subject())),
        blobs: Vec::new(),
    })
}

fn artifact(bytes: &[u8]) -> Result<Children, serde_json::Error> {
    let a: ArtifactManifest = serde_json::from_slice(bytes)?;
    Ok(Children {
        manifests: digests(a.subject()),
        blobs: digests(a.blobs()),
    })
}

fn digests<'a>(ds: impl IntoIterator<Item = &'a Descriptor>) -> Vec<Digest> {
    ds.into_iter()
        .filter_map(|d| d.digest().as_ref().parse::<Digest>().ok())
        .collect()
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
        let desc = |mt: &str, d: &str| format!(r#"{{"mediaType":"{mt}","digest":"{d}","size":1}}"#);
        let m = "application/vnd.oci.image.manifest.v1+json";
        let idx = format!(
            r#"{{"schemaVersion":2,"manifests":[{},{}]}}"#,
            desc(m, &a),
            // grammatical, but not an algorithm a request can name: skipped
            desc(m, "md5:d41d8cd98f00b204e9800998ecf8427e")
        );
        assert_eq!(
            children(idx.as_bytes()).unwrap().manifests,
            vec![a.parse().unwrap()]
        );
        let man = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{},"layers":[{}],"subject":{}}}"#,
            desc("application/vnd.docker.container.image.v1+json", &a),
            desc("application/vnd.docker.image.rootfs.diff.tar.gzip", &b),
            desc(m, &b)
        );
        let ch = children(man.as_bytes()).unwrap();
        assert_eq!(ch.blobs, vec![a.parse().unwrap(), b.parse().unwrap()]);
        assert_eq!(ch.manifests, vec![b.parse().unwrap()]);
        assert!(children(b"not json").is_err());
    }

    #[test]
    fn documents_that_break_the_spec_yield_no_children() {
        let a = format!("sha256:{}", "a".repeat(64));
        for bad in [
            // descriptors without mediaType and size
            format!(r#"{{"schemaVersion":2,"config":{{"digest":"{a}"}},"layers":[]}}"#),
            // one malformed digest spoils the document, not just its own entry
            format!(
                r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"x/y","digest":"{a}","size":1}},{{"mediaType":"x/y","digest":"bogus","size":1}}]}}"#
            ),
            // an image manifest without config
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"#.to_string(),
        ] {
            assert!(children(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_media_type_decides_what_is_followed() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let both = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"x/y","digest":"{a}","size":1}}],"config":{{"mediaType":"x/y","digest":"{b}","size":1}},"layers":[]}}"#
        );
        let ch = children(both.as_bytes()).unwrap();
        assert_eq!(
            ch.all(),
            vec![a.parse().unwrap()],
            "an index: config is not followed"
        );
    }
}
