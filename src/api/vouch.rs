//! The trust gate for a repository under a `[[policy]]` entry: a set of named sources, each
//! tag-binding (Notary, TUF) or digest-vouching (cosign, Notation), composed by `any_of` /
//! `all_of`. Every member is asked the same question ("do you vouch for digest D?"); none is
//! a special case. A repository without a `[[policy]]` entry goes through `gate` as before.
//!
//! By tag: a tag-binding member that resolves the tag gives the digest (two that disagree:
//! refused, naming both); otherwise the registry's tag is resolved and served if the set is
//! satisfied by signatures on that digest ("tag bound by: upstream registry, not signed":
//! logged and counted, since a signature on a digest says nothing about which tag names it).
//! By digest: the digest (or a trusted root it is reachable from) must satisfy the set.

use std::collections::HashMap;
use std::sync::Arc;

use http::header;
use tracing::{Instrument, info, info_span};

use super::ctx::Ctx;
use crate::policy::{Decision, Reason};
use crate::refs::{Digest, Tag};
use crate::trust::discover::Target;
use crate::trust::tag_memory::NotRecalled;
use crate::trust::verdicts::{self, Verdicts};
use crate::trust::{SourceKind, TrustedTarget};
use crate::upstream::UpstreamError;

/// Roots of a digest looked at before refusing (a blob reached from many signed images needs
/// only one).
const MAX_ROOTS_ASKED: usize = 16;

/// Roots whose signature verdicts a refusal by digest quotes.
const SAID_SHOWN: usize = 3;

fn deny(reason: Reason, message: String) -> Decision {
    Decision::Deny { reason, message }
}

impl Ctx<'_> {
    /// A tag under the repository's policy set: the trusted target, or why not.
    pub(super) async fn resolve_by_set(&self, tag: &Tag) -> Result<TrustedTarget, Decision> {
        let (reg, repo) = (&self.reg.name, &self.repo);
        let shown = format!("{reg}/{repo}:{tag}");
        if let Some(subject) = cosign_sig_subject(tag) {
            return self.resolve_signature_tag(&subject, tag, &shown).await;
        }
        let mut bound: Vec<(&str, TrustedTarget)> = Vec::new();
        let mut why: HashMap<&str, String> = HashMap::new();
        for (name, s) in self.set.tag_sources() {
            match s
                .resolve(repo, tag)
                .instrument(info_span!("trust", source = name))
                .await
            {
                Ok(t) => bound.push((name, t)),
                Err(e) => {
                    why.insert(name, e.to_string());
                }
            }
        }
        if let Some((a, ta)) = bound.first()
            && let Some((b, tb)) = bound.iter().find(|(_, t)| t.digest != ta.digest)
        {
            return Err(deny(
                Reason::SourcesDisagree,
                format!(
                    "{shown} refused: trust sources disagree: {a} binds it to {}, {b} to {}; \
                     re-sign the tag in one of them so both name the same content",
                    ta.digest, tb.digest
                ),
            ));
        }
        let (digest, bound_target, bound_by) = match bound.first() {
            Some((n, t)) => (
                t.digest.clone(),
                Some(t.clone()),
                format!("{n} ({})", t.source),
            ),
            None if !self.set.digest_sources().is_empty() => {
                let (d, by) = self.upstream_tag(tag, &shown).await?;
                (d, None, by)
            }
            None => {
                return Err(deny(
                    Reason::NotSigned,
                    format!(
                        "{shown} refused: no source binds the tag: {}",
                        reasons(&why)
                    ),
                ));
            }
        };
        let by_tag = |name: &str| bound.iter().any(|(n, t)| *n == name && t.digest == digest);
        // Signed tag bindings that already satisfy the policy need no registry requests.
        let verdicts = if self.set.satisfied(&by_tag) {
            None
        } else {
            self.verdicts(&digest).await
        };
        let vouched = |name: &str| {
            bound.iter().any(|(n, t)| *n == name && t.digest == digest)
                || verdicts
                    .as_ref()
                    .and_then(|v| v.get(name))
                    .is_some_and(|v| v.vouched())
        };
        if !self.set.satisfied(&vouched) {
            for (n, v) in verdicts
                .iter()
                .flat_map(|v| &v.by_source)
                .map(|v| (v.name.as_str(), &v.verdict))
            {
                why.insert(n, verdicts::describe(v));
            }
            for (n, t) in &bound {
                why.entry(n)
                    .or_insert_with(|| format!("binds the tag to {}", t.digest));
            }
            return Err(deny(
                Reason::NotSigned,
                format!(
                    "{shown} ({digest}, tag bound by: {bound_by}) refused: {} not satisfied: {}",
                    self.set.describe(),
                    reasons(&why)
                ),
            ));
        }
        self.join_closure(&digest, verdicts.as_deref());
        if let Some(t) = bound_target {
            return Ok(t);
        }
        crate::metrics::tag_bound_by_upstream(reg);
        if self.set.offline_tag_memory.is_some()
            && let Some(m) = &self.proxy.tag_memory
            && bound_by == UPSTREAM_BOUND
        {
            m.remember(reg, repo, tag, &digest).await;
        }
        let signers = signers(verdicts.as_deref());
        info!(registry = %reg, repository = %repo, %tag, %digest, %signers, "tag bound by upstream, not signed: serving the digest a signature vouches for");
        Ok(TrustedTarget {
            name: tag.to_string(),
            digest,
            length: None,
            media_type: None,
            source: SourceKind::Signature,
            signer: signers,
        })
    }

    /// Content by digest under the policy set: allowed when the digest itself (`manifest`:
    /// it is a manifest, so it may be signed) or a root it was reached from satisfies the set.
    pub(super) async fn digest_decision_by_set(&self, digest: &Digest, manifest: bool) -> Decision {
        let (reg, repo) = (&self.reg.name, &self.repo);
        let closure = &self.proxy.closure;
        let mut roots: Vec<Digest> = closure.roots_of(reg, repo, digest).into_iter().collect();
        roots.sort();
        roots.truncate(MAX_ROOTS_ASKED);
        if manifest && !roots.contains(digest) {
            roots.push(digest.clone());
        }
        let mut trusted = self.tag_trusted().await;
        // What the signature members said about each root asked, for the refusal.
        let mut said = Vec::new();
        if let Some(d) = self.first_satisfied(&roots, &trusted, &mut said).await {
            return d;
        }
        // Unknown content after a restart: walk the tag-binding members' targets once.
        if !trusted.is_empty() && closure.begin_rebuild(reg, repo, super::gate::REBUILD_EVERY) {
            let targets: Vec<TrustedTarget> = std::mem::take(&mut trusted)
                .into_values()
                .flatten()
                .collect();
            self.rebuild_closure(&targets).await;
            trusted = self.tag_trusted().await;
            let roots: Vec<Digest> = closure
                .roots_of(reg, repo, digest)
                .into_iter()
                .take(MAX_ROOTS_ASKED)
                .collect();
            if let Some(d) = self.first_satisfied(&roots, &trusted, &mut said).await {
                return d;
            }
        }
        // The first few roots' reasons: enough to act on, a bounded message.
        let said = match said.len() {
            0 => String::new(),
            n if n <= SAID_SHOWN => format!(" ({})", said.join("; ")),
            n => format!(
                " ({}; and {} more)",
                said[..SAID_SHOWN].join("; "),
                n - SAID_SHOWN
            ),
        };
        deny(
            Reason::NotInTrustedClosure,
            format!(
                "{digest} in {reg}/{repo} is not vouched for under {} and is not reachable from \
                 content that is; pull a trusted tag, or sign this content{said}",
                self.set.describe()
            ),
        )
    }

    /// `Allow` for the first root that satisfies the set (joining its signatures to the
    /// closure), `None` if none does; each refusing root's member reasons go to `said`.
    async fn first_satisfied(
        &self,
        roots: &[Digest],
        trusted: &HashMap<String, Vec<TrustedTarget>>,
        said: &mut Vec<String>,
    ) -> Option<Decision> {
        for r in roots {
            let by_tag = |name: &str| {
                trusted
                    .get(name)
                    .is_some_and(|ts| ts.iter().any(|t| &t.digest == r))
            };
            // Tag-binding members first: no registry requests when they already satisfy.
            if self.set.satisfied(&by_tag) {
                self.proxy.closure.add_root(&self.reg.name, &self.repo, r);
                return Some(Decision::Allow);
            }
            let Some(v) = self.verdicts(r).await else {
                continue;
            };
            let vouched = |name: &str| by_tag(name) || v.get(name).is_some_and(|v| v.vouched());
            if self.set.satisfied(&vouched) {
                self.join_closure(r, Some(&v));
                return Some(Decision::Allow);
            }
            let why: Vec<String> = v
                .by_source
                .iter()
                .map(|s| format!("{}: {}", s.name, verdicts::describe(&s.verdict)))
                .collect();
            said.push(format!("{r}: {}", why.join("; ")));
        }
        None
    }

    /// Every tag-binding member's trusted targets (a member that cannot say trusts nothing:
    /// any means any).
    async fn tag_trusted(&self) -> HashMap<String, Vec<TrustedTarget>> {
        let mut out = HashMap::new();
        for (name, s) in self.set.tag_sources() {
            match s
                .trusted_targets(&self.repo)
                .instrument(info_span!("trust", source = name))
                .await
            {
                Ok(t) => {
                    out.insert(name.to_owned(), t);
                }
                Err(e) => {
                    tracing::info!(repository = %self.repo, source = name, error = %e, "trust source does not vouch (cannot list its targets)");
                }
            }
        }
        out
    }

    /// The union of the tag-binding members' targets (the tags list under a policy).
    pub(super) async fn set_targets(&self) -> Vec<TrustedTarget> {
        self.tag_trusted().await.into_values().flatten().collect()
    }

    /// The digest-vouching members' verdicts on `d` (`None` when the set has none): cached,
    /// one discovery in flight per digest.
    async fn verdicts(&self, d: &Digest) -> Option<Arc<Verdicts>> {
        let members = self.set.digest_sources();
        if members.is_empty() {
            return None;
        }
        let key = (self.reg.name.clone(), self.repo.clone(), d.clone());
        let compute = async {
            let t = Target {
                upstream: &self.reg.upstream,
                repo: &self.repo,
                digest: d,
                client_auth: self.headers.get(header::AUTHORIZATION),
            };
            let store = self.proxy.evidence.as_ref();
            // Boxed: discovery, every verifier's future and the evidence store are large, and
            // a debug build's worker stack (2 MiB) overflowed with them inline.
            Box::pin(verdicts::run(
                &t,
                &self.reg.name,
                &members,
                &self.proxy.discovery,
                store,
            ))
            .instrument(info_span!("signatures", %d))
            .await
        };
        Some(self.proxy.verdicts.get(key, compute).await)
    }

    /// A vouched digest becomes a closure root; the signature manifests and blobs that were
    /// looked at join its closure, so clients behind the proxy can verify them too.
    fn join_closure(&self, d: &Digest, v: Option<&Verdicts>) {
        let (reg, repo, closure) = (&self.reg.name, &self.repo, &self.proxy.closure);
        closure.add_root(reg, repo, d);
        for a in v.map(|v| v.artifacts.as_slice()).unwrap_or_default() {
            closure.add_children(reg, repo, d, std::slice::from_ref(&a.digest));
            closure.add_children(reg, repo, &a.digest, &a.blobs);
        }
    }

    /// cosign's `sha256-<hex>.sig` tag, which `cosign verify` behind the mirror fetches by
    /// tag: served only when the subject is trusted and the tag names a signature manifest
    /// that was verified for it (it joined the subject's closure).
    async fn resolve_signature_tag(
        &self,
        subject: &Digest,
        tag: &Tag,
        shown: &str,
    ) -> Result<TrustedTarget, Decision> {
        if let Decision::Deny { reason, message } = self.digest_decision_by_set(subject, true).await
        {
            return Err(deny(
                reason,
                format!(
                    "{shown} refused: it holds signatures of {subject}, which is not trusted: {message}"
                ),
            ));
        }
        let (d, _) = self.upstream_tag(tag, shown).await?;
        let roots = self.proxy.closure.roots_of(&self.reg.name, &self.repo, &d);
        if !roots.contains(subject) {
            return Err(deny(
                Reason::NotInTrustedClosure,
                format!(
                    "{shown} refused: the registry maps it to {d}, which is not a signature manifest verified for {subject}"
                ),
            ));
        }
        Ok(TrustedTarget {
            name: tag.to_string(),
            digest: d,
            length: None,
            media_type: None,
            source: SourceKind::Signature,
            signer: format!("signatures of {subject}"),
        })
    }

    /// A referrers answer for trusted `d` built from the signatures discovery verified, for a
    /// registry without the referrers API (distribution-spec 1.1 "Listing Referrers": an image
    /// index of descriptors, filtered by `artifactType` when asked, saying so in
    /// `OCI-Filters-Applied`). `None` when the set has no digest-vouching member.
    pub(super) async fn referrers_from_signatures(
        &self,
        d: &Digest,
        artifact_type: Option<&str>,
    ) -> Option<(bytes::Bytes, bool)> {
        let v = self.verdicts(d).await?;
        let manifests: Vec<&serde_json::Value> = v
            .artifacts
            .iter()
            .filter_map(|a| a.descriptor.as_ref())
            .filter(|desc| artifact_type.is_none_or(|t| desc["artifactType"] == t))
            .collect();
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": crate::trust::discover::parse::OCI_INDEX,
            "manifests": manifests,
        });
        Some((
            bytes::Bytes::from(index.to_string()),
            artifact_type.is_some(),
        ))
    }

    /// What the registry's tag points to now, for a set without a tag binding, and how it
    /// was bound: by the registry, or (registry unreachable, `offline_tag_memory` set) by
    /// what the registry last said.
    async fn upstream_tag(&self, tag: &Tag, shown: &str) -> Result<(Digest, String), Decision> {
        match self
            .reg
            .upstream
            .tag_digest(&self.repo, tag, self.headers.get(header::AUTHORIZATION))
            .await
        {
            Ok(Some(d)) => Ok((d, UPSTREAM_BOUND.to_owned())),
            Ok(None) => Err(deny(
                Reason::NotSigned,
                format!(
                    "{shown} refused: no source binds the tag, and the registry does not say which digest it names"
                ),
            )),
            Err(e) => {
                // Only when nothing was heard from the registry (as for stored evidence): an
                // answer, even an error, is the registry's word and is not overridden.
                let unreachable = matches!(
                    e,
                    UpstreamError::Unreachable { .. } | UpstreamError::Timeout { .. }
                );
                let remembered = match self.set.offline_tag_memory {
                    Some(max) if unreachable => self.recall_tag(tag, shown, max, &e),
                    _ => Err(String::new()),
                };
                remembered.map_err(|more| {
                    deny(
                        Reason::TrustUnavailable,
                        format!(
                            "{shown} refused: no source binds the tag, and the registry cannot be asked: {e}{more}"
                        ),
                    )
                })
            }
        }
    }

    /// `offline_tag_memory`: the digest remembered for the tag if seen at most `max` ago;
    /// `Err` is the addition to the refusal.
    fn recall_tag(
        &self,
        tag: &Tag,
        shown: &str,
        max: std::time::Duration,
        cause: &UpstreamError,
    ) -> Result<(Digest, String), String> {
        let reg = &self.reg.name;
        let Some(m) = &self.proxy.tag_memory else {
            return Err("; offline_tag_memory: no usable directory (see the start-up log)".into());
        };
        match m.recall_within(reg, &self.repo, tag, max) {
            Ok((digest, by)) => {
                crate::metrics::offline_tag_memory(reg, "used");
                tracing::warn!(registry = %reg, repository = %self.repo, %tag, %digest, how = %by, cause = %cause, "registry unreachable: tag resolved by offline_tag_memory to the digest the registry named when last seen (not signed; signatures must still vouch)");
                Ok((digest, format!("{by} ({shown})")))
            }
            Err(why) => {
                let outcome = match &why {
                    NotRecalled::Expired(_) => "expired",
                    NotRecalled::Never => "none",
                    NotRecalled::Ignored(_) => {
                        tracing::error!(registry = %reg, repository = %self.repo, %tag, %why, "offline tag memory: file ignored");
                        "none"
                    }
                };
                crate::metrics::offline_tag_memory(reg, outcome);
                Err(format!("; {why}"))
            }
        }
    }
}

/// How a tag bound by the registry's answer now is described.
const UPSTREAM_BOUND: &str = "upstream registry, not signed";

/// The digest whose signatures cosign's legacy tag `sha256-<hex>.sig` holds.
fn cosign_sig_subject(tag: &Tag) -> Option<Digest> {
    let hex = tag.as_str().strip_prefix("sha256-")?.strip_suffix(".sig")?;
    format!("sha256:{hex}").parse().ok()
}

/// `a: why; b: why` in the set's order (sorted by name for a stable message).
fn reasons(why: &HashMap<&str, String>) -> String {
    let mut v: Vec<_> = why.iter().collect();
    v.sort();
    v.iter()
        .map(|(n, w)| format!("{n}: {w}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The vouching members and their signers, for the target's `signer`.
fn signers(v: Option<&Verdicts>) -> String {
    let names: Vec<String> = v
        .map(|v| {
            v.by_source
                .iter()
                .filter(|s| s.vouched())
                .map(|s| format!("{}: {}", s.name, verdicts::describe(&s.verdict)))
                .collect()
        })
        .unwrap_or_default();
    names.join("; ")
}
