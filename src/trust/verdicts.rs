//! Verdicts of the digest-vouching members on one digest: discovery once, then each verifier
//! on the candidates of the kinds it accepts, cached per (registry, repository, digest) for
//! `signatures.recheck_interval`. One discovery and verification is in flight per key however
//! many pulls wait (moka's `get_with` runs one initializer and lets the others wait for it).
//! A failed discovery is shared with the pulls that waited for it, then dropped, so the next
//! pull asks the registry again instead of being refused for the whole interval.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::discover::{self, Limits, Target};
use super::evidence;
use super::signature::{ArtifactKind, Candidate, DigestVerifier, Subject, Verdict};
use crate::refs::{Digest, RepoName};

/// One member's verdict on a digest.
#[derive(Debug, Clone)]
pub struct SourceVerdict {
    pub name: String,
    pub verdict: Verdict,
    /// Metric label: `signature` (vouched), `offline_evidence` (vouched from stored evidence,
    /// re-verified, while the registry is unreachable), `none_found`, `refused`,
    /// `discovery_failed`, `trust_material` (the source's own keys or roots could not be
    /// brought up to date).
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
///
/// With an evidence `store`: online, the candidates that vouched are stored (and the stored
/// evidence removed when nothing vouches any more: a deleted signature); when the registry is
/// unreachable (connection failed or no answer in time; not a 5xx, which fails closed), the
/// stored evidence is handed to the members as if discovery had just fetched it, so it is
/// re-verified with the keys, roots and policy configured now (see `evidence`).
pub async fn run(
    t: &Target<'_>,
    registry: &str,
    members: &[(&str, &Arc<dyn DigestVerifier>)],
    limits: &Limits,
    store: Option<&evidence::Store>,
) -> Verdicts {
    let wanted = |k: ArtifactKind| members.iter().any(|(_, v)| v.accepts(k));
    // Boxed: a large future (paged referrers, tag schema, .sig, blobs), kept off the stack.
    let found = Box::pin(discover::discover_or_offline(t, &wanted, limits)).await;
    let subject = Subject {
        registry,
        repository: t.repo,
        digest: t.digest,
    };
    let out = match found {
        Err(e) => match store {
            Some(s) if e.offline => offline(s, subject, members, &e).await,
            _ => failed(members, &e.message, String::new()),
        },
        Ok(d) => {
            let summary = d.summary();
            let out = judge(subject, members, &d.candidates, summary, "signature").await;
            if let Some(s) = store {
                persist(s, subject, &out, &d.candidates).await;
            }
            out
        }
    };
    for v in &out.by_source {
        let yes = if v.vouched() { "yes" } else { "no" };
        crate::metrics::signature_verdict(&v.name, yes, v.reason);
        tracing::info!(registry, repository = %t.repo, digest = %t.digest, source = %v.name, verdict = yes, reason = v.reason, detail = %describe(&v.verdict), "signature verdict");
    }
    out
}

/// Every member's verdict on `candidates`; a "yes" is counted under `yes_reason`. No log, no
/// metric (bundle import uses it as is); a member first brings its own trust material up to
/// date (`DigestVerifier::prepare`: a keyless source's trusted root from TUF).
pub async fn judge(
    subject: Subject<'_>,
    members: &[(&str, &Arc<dyn DigestVerifier>)],
    candidates: &[Candidate],
    summary: String,
    yes_reason: &'static str,
) -> Verdicts {
    let mut out = Verdicts {
        artifacts: candidates.iter().map(artifact).collect(),
        ..Verdicts::default()
    };
    // One clock reading for every member: verdicts on one digest are comparable.
    let now = SystemTime::now();
    for (name, v) in members {
        let mine: Vec<Candidate> = candidates
            .iter()
            .filter(|c| v.accepts(c.kind))
            .cloned()
            .collect();
        let (verdict, reason) = if mine.is_empty() {
            (
                Verdict::No(format!("no signature found ({summary})")),
                "none_found",
            )
        } else if let Err(why) = v.prepare().await {
            (Verdict::No(why), "trust_material")
        } else {
            match v.verify(subject, &mine, now) {
                Verdict::Vouched(e) => (Verdict::Vouched(e), yes_reason),
                no => (no, "refused"),
            }
        };
        out.by_source.push(SourceVerdict {
            name: (*name).to_owned(),
            verdict,
            reason,
        });
    }
    out.discovery = summary;
    out
}

/// Every member: "cannot tell", with the discovery failure and (`more`) what the stored
/// evidence said.
fn failed(members: &[(&str, &Arc<dyn DigestVerifier>)], e: &str, more: String) -> Verdicts {
    let mut out = Verdicts {
        failed: true,
        discovery: format!("discovery failed: {e}"),
        ..Verdicts::default()
    };
    for (name, _) in members {
        out.by_source.push(SourceVerdict {
            name: (*name).to_owned(),
            verdict: Verdict::No(format!(
                "cannot tell: signature discovery failed ({e}); not treated as unsigned \
                 or signed{more}"
            )),
            reason: "discovery_failed",
        });
    }
    out
}

/// Online: keeps the candidates that vouched, or removes the evidence when none did. A disk
/// that fails is logged; the verdict stands (only an offline restart will miss it).
async fn persist(s: &evidence::Store, subject: Subject<'_>, out: &Verdicts, found: &[Candidate]) {
    let vouching: Vec<&Digest> = out
        .by_source
        .iter()
        .filter_map(|v| match &v.verdict {
            Verdict::Vouched(e) => Some(&e.candidate),
            Verdict::No(_) => None,
        })
        .collect();
    let keep: Vec<Candidate> = found
        .iter()
        .filter(|c| vouching.contains(&&c.manifest_digest))
        .cloned()
        .collect();
    let (reg, repo, d) = (subject.registry, subject.repository, subject.digest);
    let r = if keep.is_empty() {
        s.remove(reg, repo, d).await
    } else {
        s.save(reg, repo, d, &out.discovery, &keep).await
    };
    if let Err(e) = r {
        crate::metrics::cache_write_failure("io");
        tracing::warn!(registry = reg, repository = %repo, digest = %d, error = %e, "signature evidence: not written");
    }
}

/// The registry is unreachable: the stored evidence, re-verified now, or "cannot tell".
async fn offline(
    s: &evidence::Store,
    subject: Subject<'_>,
    members: &[(&str, &Arc<dyn DigestVerifier>)],
    e: &discover::Failure,
) -> Verdicts {
    let (reg, repo, d) = (subject.registry, subject.repository, subject.digest);
    let stored = match s.load(reg, repo, d).await {
        Ok(Some(stored)) => stored,
        Ok(None) => {
            return failed(members, &e.message, "; no stored evidence".to_owned());
        }
        Err(why) => {
            tracing::error!(registry = reg, repository = %repo, digest = %d, path = %s.path(reg, repo, d).display(), why, "signature evidence: stored file is corrupt or not this digest's; ignored");
            return failed(
                members,
                &e.message,
                format!("; stored evidence ignored: corrupt ({why})"),
            );
        }
    };
    let saved = humantime::format_rfc3339_seconds(stored.saved_at);
    let summary = format!(
        "OFFLINE ({}); stored evidence of {saved} (discovery then: {})",
        e.message, stored.discovery
    );
    let mut out = judge(
        subject,
        members,
        &stored.candidates,
        summary,
        "offline_evidence",
    )
    .await;
    let mut any = false;
    for v in &mut out.by_source {
        match &mut v.verdict {
            Verdict::Vouched(ev) => {
                any = true;
                ev.details.push((
                    "OFFLINE".to_owned(),
                    format!(
                        "registry unreachable; evidence stored {saved}, re-verified now with the current configuration"
                    ),
                ));
                tracing::warn!(registry = reg, repository = %repo, digest = %d, source = %v.name, cause = %e.message, stored = %saved, "registry unreachable: signature vouched OFFLINE from stored evidence, re-verified with the current configuration");
            }
            Verdict::No(why) => {
                // The evidence no longer verifies (a key, root or policy changed): fail
                // closed, saying both halves.
                *why = format!(
                    "cannot tell: signature discovery failed ({}); the stored evidence of {saved} does not vouch now: {why}",
                    e.message
                );
                v.reason = "discovery_failed";
            }
        }
    }
    // Nothing vouched: not kept for `recheck_interval`, so the next pull asks again.
    out.failed = !any;
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
