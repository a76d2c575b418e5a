//! Verdicts of the digest-vouching members on one digest: discovery once, then each verifier
//! on the candidates of the kinds it accepts, cached per (registry, repository, digest) for
//! `signatures.recheck_interval`. One discovery and verification is in flight per key however
//! many pulls wait (moka's `get_with` runs one initializer and lets the others wait for it).
//! A failed discovery is shared with the pulls that waited for it, then dropped, so the next
//! pull asks the registry again instead of being refused for the whole interval.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::discover::{self, Limits, Target};
use super::signature::{ArtifactKind, Candidate, DigestVerifier, Subject, Verdict};
use crate::refs::{Digest, RepoName};

/// One member's verdict on a digest.
#[derive(Debug, Clone)]
pub struct SourceVerdict {
    pub name: String,
    pub verdict: Verdict,
    /// Metric label: `signature` (vouched), `none_found`, `refused`, `discovery_failed`,
    /// `trust_material` (the source's own keys or roots could not be brought up to date).
    pub reason: &'static str,
}

impl SourceVerdict {
    pub fn vouched(&self) -> bool {
        matches!(self.verdict, Verdict::Vouched(_))
    }
}

/// Everything decided about one digest.
#[derive(Debug, Clone, Default)]
pub struct Verdicts {
    pub by_source: Vec<SourceVerdict>,
    /// What discovery found where (`check`), or why it failed.
    pub discovery: String,
    pub failed: bool,
    /// The signature manifests the verifiers looked at, each with the blobs it names: they
    /// join the closure of a vouched digest and are served.
    pub artifacts: Vec<Artifact>,
}

/// A signature manifest that was looked at, as the closure and a referrers answer need it.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub digest: Digest,
    /// The blobs it names (config and layers).
    pub blobs: Vec<Digest>,
    /// Its descriptor in a referrers answer; `None` for a manifest without a `subject` (cosign's
    /// legacy `.sig`), which is not a referrer.
    pub descriptor: Option<serde_json::Value>,
}

impl Verdicts {
    pub fn get(&self, name: &str) -> Option<&SourceVerdict> {
        self.by_source.iter().find(|v| v.name == name)
    }
}

/// The key: registry, repository, digest.
pub type Key = (String, RepoName, Digest);

/// Verdicts per key, for `recheck_interval`.
#[derive(Clone)]
pub struct Cache {
    inner: moka::future::Cache<Key, Arc<Verdicts>>,
}

impl Cache {
    pub fn new(recheck: Duration) -> Cache {
        Cache {
            inner: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(recheck)
                .build(),
        }
    }

    /// The cached verdicts for `key`, or `compute`'s (run once for all who wait).
    pub async fn get(&self, key: Key, compute: impl Future<Output = Verdicts>) -> Arc<Verdicts> {
        let v = self
            .inner
            .get_with(key.clone(), async { Arc::new(compute.await) })
            .await;
        if v.failed {
            self.inner.invalidate(&key).await;
        }
        v
    }
}

/// Discovers the signatures of `t.digest` and asks every member. Never fails: a registry
/// that cannot say becomes a "no" from every member, with the cause.
pub async fn run(
    t: &Target<'_>,
    registry: &str,
    members: &[(&str, &Arc<dyn DigestVerifier>)],
    limits: &Limits,
) -> Verdicts {
    let wanted = |k: ArtifactKind| members.iter().any(|(_, v)| v.accepts(k));
    // Boxed: a large future (paged referrers, tag schema, .sig, blobs), kept off the stack.
    let found = Box::pin(discover::discover(t, &wanted, limits)).await;
    let subject = Subject {
        registry,
        repository: t.repo,
        digest: t.digest,
    };
    let mut out = Verdicts::default();
    match found {
        Err(e) => {
            out.failed = true;
            out.discovery = format!("discovery failed: {e}");
            for (name, _) in members {
                out.by_source.push(SourceVerdict {
                    name: (*name).to_owned(),
                    verdict: Verdict::No(format!(
                        "cannot tell: signature discovery failed ({e}); not treated as unsigned \
                         or signed"
                    )),
                    reason: "discovery_failed",
                });
            }
        }
        Ok(d) => {
            out.discovery = d.summary();
            out.artifacts = d.candidates.iter().map(artifact).collect();
            // One clock reading for every member: verdicts on one digest are comparable.
            let now = SystemTime::now();
            for (name, v) in members {
                let mine: Vec<Candidate> = d
                    .candidates
                    .iter()
                    .filter(|c| v.accepts(c.kind))
                    .cloned()
                    .collect();
                let (verdict, reason) = if mine.is_empty() {
                    (
                        Verdict::No(format!("no signature found ({})", d.summary())),
                        "none_found",
                    )
                } else if let Err(why) = v.prepare().await {
                    (Verdict::No(why), "trust_material")
                } else {
                    match v.verify(subject, &mine, now) {
                        Verdict::Vouched(e) => (Verdict::Vouched(e), "signature"),
                        no => (no, "refused"),
                    }
                };
                out.by_source.push(SourceVerdict {
                    name: (*name).to_owned(),
                    verdict,
                    reason,
                });
            }
        }
    }
    for v in &out.by_source {
        let yes = if v.vouched() { "yes" } else { "no" };
        crate::metrics::signature_verdict(&v.name, yes, v.reason);
        tracing::info!(registry, repository = %t.repo, digest = %t.digest, source = %v.name, verdict = yes, reason = v.reason, detail = %describe(&v.verdict), "signature verdict");
    }
    out
}

/// A candidate as closure entries (config included, so a client fetching the whole signature
/// artifact gets it) and, for a referrer, its descriptor as distribution-spec's referrers
/// answer gives it: media type, digest, size, `artifactType` (else the config's media type)
/// and the manifest's annotations.
fn artifact(c: &Candidate) -> Artifact {
    let blobs = crate::closure::children(&c.manifest)
        .map(|ch| ch.all())
        .unwrap_or_else(|_| c.layers.iter().map(|l| l.digest.clone()).collect());
    let descriptor = c.subject.as_ref().and_then(|_| {
        let m: serde_json::Value = serde_json::from_slice(&c.manifest).ok()?;
        let artifact_type = m
            .get("artifactType")
            .or_else(|| m.pointer("/config/mediaType"))
            .cloned();
        let mut d = serde_json::json!({
            "mediaType": m.get("mediaType").cloned().unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".into()),
            "digest": c.manifest_digest.to_string(),
            "size": c.manifest.len(),
        });
        if let Some(a) = artifact_type {
            d["artifactType"] = a;
        }
        if !c.annotations.is_empty() {
            d["annotations"] = serde_json::to_value(&c.annotations).ok()?;
        }
        Some(d)
    });
    Artifact {
        digest: c.manifest_digest.clone(),
        blobs,
        descriptor,
    }
}

/// A verdict in one line: the evidence of a "yes", the reason of a "no".
pub fn describe(v: &Verdict) -> String {
    match v {
        Verdict::No(why) => why.clone(),
        Verdict::Vouched(e) => {
            let mut s = format!("{} (signature {}), {}", e.format, e.candidate, e.signer);
            if let Some(t) = e.signed_at {
                s.push_str(&format!(
                    ", signed {}",
                    humantime::format_rfc3339_seconds(t)
                ));
            }
            for (k, v) in &e.details {
                s.push_str(&format!(", {k} {v}"));
            }
            s
        }
    }
}
