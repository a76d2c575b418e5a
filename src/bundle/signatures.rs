//! cosign and Notation signatures in bundles: for an image under a `[[policy]]` entry with a
//! digest-vouching source, the bundle carries the evidence file the export's own pull stored
//! (`<cache.dir>/signatures/`, see `trust::evidence`): the exact bytes of the signature
//! manifests and blobs that vouched. Import hands them to THIS node's configured verifiers, at
//! its clock, and stores them only when they satisfy the node's own `[[policy]]` for the image;
//! a running node then vouches from them while the registry is unreachable, re-verifying them
//! again on every use.

use anyhow::{Context, anyhow, bail};
use base64::Engine as _;

use super::SignatureEvidence;
use crate::config::{Config, Mode, PolicyRule, TrustSourceConfig};
use crate::refs::{Digest, RepoName};
use crate::trust::evidence::{self, Store};
use crate::trust::signature::{Subject, Verdict};
use crate::trust::verdicts;

/// The `[[policy]]` entry of `registry/repo` when it is enforced and names a cosign or
/// Notation source: its images are bundled with their signature evidence.
pub(super) fn rule<'a>(
    cfg: &'a Config,
    registry: &str,
    repo: &RepoName,
    own_mode: Mode,
) -> Option<&'a PolicyRule> {
    let rule = cfg.rule_for(registry, repo.as_str())?;
    let digest_vouching = rule.any_of.iter().chain(&rule.all_of).any(|n| {
        matches!(
            cfg.trust.get(n),
            Some(
                TrustSourceConfig::CosignKey(_)
                    | TrustSourceConfig::CosignKeyless(_)
                    | TrustSourceConfig::Notation(_)
            )
        )
    });
    let enforced = crate::trust::set::mode_for(Some(rule), own_mode) == Mode::Enforce;
    (digest_vouching && enforced).then_some(rule)
}

/// Export: the evidence the in-process pull just verified online and stored. A file older
/// than `since` (the export's start) is another run's (a signature since deleted upstream
/// would travel in it) and is not used.
pub(super) fn export(
    cache_dir: &std::path::Path,
    registry: &str,
    repo: &RepoName,
    digest: &Digest,
    image: &str,
    since: u64,
) -> anyhow::Result<SignatureEvidence> {
    let raw = Store::read_only(cache_dir)
        .read_raw(registry, repo, digest)
        .filter(|raw| evidence::saved_at(raw).is_some_and(|t| t >= since))
        .ok_or_else(|| {
            anyhow!(
                "{image}: no cosign or Notation signature vouched for {digest} (the policy was \
                 satisfied by a tag-binding source, whose metadata is not bundled under \
                 [[policy]]); only signature-vouched images of this repository can be bundled"
            )
        })?;
    Ok(SignatureEvidence {
        registry: registry.to_owned(),
        repository: repo.to_string(),
        digest: digest.to_string(),
        evidence: base64::engine::general_purpose::STANDARD.encode(raw),
    })
}

/// Import: the evidence of one image checked and verified with this node's configured
/// verifiers; its bytes, to be written at commit.
pub(super) async fn verify(
    cfg: &Config,
    ev: &SignatureEvidence,
    shown: &str,
) -> anyhow::Result<Vec<u8>> {
    let reg = cfg
        .registries
        .iter()
        .find(|r| r.name == ev.registry)
        .ok_or_else(|| anyhow!("registry {} is not configured on this node", ev.registry))?;
    let repo: RepoName = ev.repository.parse()?;
    let digest: Digest = ev.digest.parse()?;
    let own_mode = reg.policy_for(repo.as_str()).mode;
    let rule = rule(cfg, &reg.name, &repo, own_mode).ok_or_else(|| {
        anyhow!(
            "{shown}: the bundle carries signature evidence, but on this node no enforced \
             [[policy]] entry with a cosign or Notation source covers it"
        )
    })?;
    let set = crate::check::members(cfg, reg, rule, repo.as_str())?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&ev.evidence)
        .with_context(|| format!("{shown}: signature evidence is not base64"))?;
    let stored = evidence::decode(&raw, &reg.name, &repo, &digest)
        .map_err(|e| anyhow!("{shown}: signature evidence refused: {e}"))?;
    let members = set.digest_sources();
    let subject = Subject {
        registry: &reg.name,
        repository: &repo,
        digest: &digest,
    };
    let v = verdicts::judge(
        subject,
        &members,
        &stored.candidates,
        stored.discovery,
        "signature",
    )
    .await;
    let vouched = |n: &str| v.get(n).is_some_and(|s| s.vouched());
    if !set.satisfied(&vouched) {
        let why: Vec<String> = v
            .by_source
            .iter()
            .map(|s| format!("{}: {}", s.name, verdicts::describe(&s.verdict)))
            .collect();
        bail!(
            "{shown}: its signature evidence does not satisfy {} on this node: {}",
            set.describe(),
            why.join("; ")
        );
    }
    for s in v.by_source.iter().filter(|s| s.vouched()) {
        if let Verdict::Vouched(e) = &s.verdict {
            tracing::info!(image = shown, source = %s.name, signer = %e.signer, "bundle import: signature evidence verified");
        }
    }
    Ok(raw)
}

/// Commit: writes each verified evidence file (temp file, fsync, rename, directory fsync).
pub(super) fn commit(
    cache_dir: &std::path::Path,
    verified: &[(SignatureEvidence, Vec<u8>)],
) -> anyhow::Result<()> {
    if verified.is_empty() {
        return Ok(());
    }
    let store = Store::open(cache_dir)?;
    for (ev, raw) in verified {
        let repo: RepoName = ev.repository.parse()?;
        let digest: Digest = ev.digest.parse()?;
        let path = store.path(&ev.registry, &repo, &digest);
        store.write_blocking(&path, raw).with_context(|| {
            format!(
                "storing signature evidence of {}/{repo}@{digest}",
                ev.registry
            )
        })?;
    }
    Ok(())
}

/// A tag of a signature-vouched image to remember on this node (`offline_tag_memory`).
pub(super) struct Remembered {
    registry: String,
    repo: RepoName,
    tag: crate::refs::Tag,
    digest: Digest,
    seen: std::time::SystemTime,
}

/// Import: the image's tag, when this node's `[[policy]]` entry for it sets
/// `offline_tag_memory`, with the time the exporting node's registry named the digest (the
/// evidence's `saved_at`), so the setting's age limit counts from then. Without the setting
/// nothing is remembered: a bundle's tags are the exporter's registry's word, which only an
/// operator's explicit loosening lets stand in for this node's registry.
pub(super) fn remembered(
    cfg: &Config,
    img: &super::Image,
    raw: &[u8],
) -> anyhow::Result<Option<Remembered>> {
    let repo: RepoName = img.repository.parse()?;
    let on = cfg
        .rule_for(&img.registry, repo.as_str())
        .and_then(PolicyRule::offline_tag_memory)
        .is_some();
    let Some(saved) = evidence::saved_at(raw).filter(|_| on) else {
        return Ok(None);
    };
    Ok(Some(Remembered {
        registry: img.registry.clone(),
        repo,
        tag: img.tag.parse()?,
        digest: img.digest.parse()?,
        seen: std::time::UNIX_EPOCH + std::time::Duration::from_secs(saved),
    }))
}

/// Commit: each remembered tag, unless this node saw it later.
pub(super) fn commit_tags(cache_dir: &std::path::Path, tags: &[Remembered]) -> anyhow::Result<()> {
    if tags.is_empty() {
        return Ok(());
    }
    let memory = crate::trust::tag_memory::TagMemory::open(cache_dir)?;
    for t in tags {
        memory
            .remember_seen_blocking(&t.registry, &t.repo, &t.tag, &t.digest, t.seen)
            .with_context(|| format!("remembering {}/{}:{}", t.registry, t.repo, t.tag))?;
    }
    Ok(())
}
