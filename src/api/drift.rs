//! Tag drift: the registry maps a signed tag to content other than the signed digest.
//!
//! Docker Content Trust resolves a tag in Notary and pulls the signed digest; what the
//! registry's tag points to does not matter. Portcullis does the same by default
//! (`on_tag_drift = "serve-signed"`) and keeps the drift visible: off the request path, at most
//! once per tag per refresh interval, it asks the registry what the tag points to, and logs
//! and counts (`portcullis_tag_drift_total`) each (tag, digest) pair once. With
//! `on_tag_drift = "refuse"` the check is made on the request path instead (`manifests.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::header;

use super::ctx::Ctx;
use crate::refs::{Digest, RepoName, Tag};
use crate::trust::TrustedTarget;

/// Bound on remembered tags and pairs: a flood of tag names must not grow memory without end.
const MAX_ENTRIES: usize = 100_000;

type TagKey = (String, RepoName, Tag);

/// When each tag was last compared, and which drifts were already reported.
#[derive(Default)]
pub(super) struct Drift {
    checked: Mutex<HashMap<TagKey, Instant>>,
    reported: Mutex<HashSet<(TagKey, Digest)>>,
}

impl Drift {
    /// Claims the check of one tag: true when it was not checked within `every`.
    fn claim(&self, key: &TagKey, every: Duration) -> bool {
        let Ok(mut checked) = self.checked.lock() else {
            return false;
        };
        if checked.get(key).is_some_and(|t| t.elapsed() < every) {
            return false;
        }
        if checked.len() >= MAX_ENTRIES {
            checked.retain(|_, t| t.elapsed() < every);
        }
        if checked.len() < MAX_ENTRIES {
            checked.insert(key.clone(), Instant::now());
        }
        true
    }

    /// Reports a drift once per (tag, digest) pair; true when this call reported it.
    fn report(&self, key: &TagKey, current: &Digest, target: &TrustedTarget) -> bool {
        let Ok(mut reported) = self.reported.lock() else {
            return false;
        };
        let pair = (key.clone(), current.clone());
        if reported.contains(&pair) {
            return false;
        }
        if reported.len() >= MAX_ENTRIES {
            reported.clear();
        }
        reported.insert(pair);
        let (registry, repo, tag) = key;
        crate::metrics::tag_drift(registry);
        tracing::warn!(
            registry = %registry,
            repository = %repo,
            tag = %tag,
            signed = %target.digest,
            signer = %target.signer,
            source = %target.source,
            registry_digest = %current,
            "tag drift: the registry maps a signed tag to other content; serving the signed \
             digest (on_tag_drift = \"serve-signed\"). Sign the new content, or push the signed \
             content back"
        );
        true
    }
}

/// Starts a background comparison of `tag` with its signed target, unless one ran within the
/// refresh interval. Never delays or fails the pull.
pub(super) fn check_later(cx: &Ctx<'_>, tag: &Tag, target: &TrustedTarget) {
    let key: TagKey = (cx.reg.name.clone(), cx.repo.clone(), tag.clone());
    let drift = cx.proxy.drift.clone();
    if !drift.claim(&key, cx.refresh) {
        return;
    }
    let upstream = Arc::clone(&cx.reg.upstream);
    // In passthrough mode the registry authorises the client's own credentials; the check
    // is made once, right away, with the request's.
    let auth = cx.headers.get(header::AUTHORIZATION).cloned();
    let target = target.clone();
    tokio::spawn(async move {
        let (_, repo, tag) = &key;
        match upstream.tag_digest(repo, tag, auth.as_ref()).await {
            Ok(Some(current)) if current != target.digest => {
                drift.report(&key, &current, &target);
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "tag drift check: registry unreachable"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(d: &Digest) -> TrustedTarget {
        TrustedTarget {
            name: "v1".into(),
            digest: d.clone(),
            length: Some(1),
            media_type: None,
            source: crate::trust::SourceKind::Notary,
            signer: "targets".into(),
        }
    }

    #[test]
    fn once_per_interval_and_once_per_pair() {
        let d = Drift::default();
        let key: TagKey = (
            "r".into(),
            "demo/app".parse().unwrap(),
            "v1".parse().unwrap(),
        );
        assert!(d.claim(&key, Duration::from_secs(60)));
        assert!(
            !d.claim(&key, Duration::from_secs(60)),
            "within the interval"
        );
        assert!(d.claim(&key, Duration::ZERO), "interval over");
        let (a, b) = (Digest::sha256_of(b"a"), Digest::sha256_of(b"b"));
        assert!(d.report(&key, &b, &target(&a)));
        assert!(!d.report(&key, &b, &target(&a)), "same pair reported once");
        let c = Digest::sha256_of(b"c");
        assert!(
            d.report(&key, &c, &target(&a)),
            "a new digest is a new drift"
        );
    }
}
