//! `portcullis check` for a repository under a `[[policy]]` entry: resolves the tag as the
//! proxy does (a tag-binding member's signed digest, else the registry's tag), asks every
//! member about that digest, and prints one line per member with its verdict and evidence,
//! then the result:
//!
//! ```text
//! registry.example.com/team/app:v2  sha256:3f1c...  (tag bound by: upstream registry, not signed)
//!   notary-prod   no   v2 is not in targets/releases or targets of registry.example.com/team/app
//!   ci-key        yes  cosign legacy (signature sha256:9a0b...), key ci.pub
//!   TRUSTED by any_of: ci-key
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use super::ImageRef;
use crate::config::{Config, PolicyRule, REGISTRY_SOURCE, RegistryConfig, TrustSourceConfig as T};
use crate::refs::{Digest, RepoName};
use crate::trust::discover::{Limits, Target};
use crate::trust::set::{Member, Named, SourceSet};
use crate::trust::verdicts;
use crate::upstream::UpstreamError;

/// One member's line.
struct Line {
    name: String,
    yes: bool,
    text: String,
}

/// Builds the rule's members as `serve` would (tag-binding ones for this registry).
pub(crate) fn members(
    cfg: &Config,
    reg: &RegistryConfig,
    rule: &PolicyRule,
    repo: &str,
) -> anyhow::Result<SourceSet> {
    let own = reg.policy_for(repo).source.map(|(_, s)| s);
    let build = |n: &String| -> anyhow::Result<Option<Member>> {
        let source = match (n.as_str(), cfg.trust.get(n)) {
            (REGISTRY_SOURCE, _) => match own {
                Some(s) => Named::Tags(crate::trust::build(&reg.name, s, &cfg.cache.dir)?),
                None => return Ok(None),
            },
            (_, Some(T::Notary(c))) => Named::Tags(crate::trust::build(
                &reg.name,
                crate::config::SourceConfig::Notary(c),
                &cfg.cache.dir,
            )?),
            (_, Some(T::Tuf(c))) => Named::Tags(crate::trust::build(
                &reg.name,
                crate::config::SourceConfig::Tuf(c),
                &cfg.cache.dir,
            )?),
            (_, Some(other)) => {
                Named::Digests(crate::trust::set::build_verifier(n, other, &cfg.cache.dir)?)
            }
            (_, None) => anyhow::bail!("unknown trust source {n:?}"),
        };
        Ok(Some(Member {
            name: n.clone(),
            source,
        }))
    };
    let list = |names: &[String]| -> anyhow::Result<Vec<Member>> {
        Ok(names
            .iter()
            .map(build)
            .collect::<anyhow::Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect())
    };
    Ok(SourceSet {
        any_of: list(&rule.any_of)?,
        all_of: list(&rule.all_of)?,
        from_policy: true,
        offline_tag_memory: rule.offline_tag_memory(),
    })
}

/// What `check` found, printed as text or JSON.
struct Report {
    shown: String,
    digest: Option<Digest>,
    bound_by: Option<String>,
    lines: Vec<Line>,
    trusted: bool,
    /// `TRUSTED by any_of: ci-key` or `REFUSED: ...`.
    result: String,
}

impl Report {
    fn refused(shown: &str, lines: Vec<Line>, why: String) -> Report {
        Report {
            shown: shown.to_owned(),
            digest: None,
            bound_by: None,
            lines,
            trusted: false,
            result: format!("REFUSED: {why}"),
        }
    }

    fn print(&self, json: bool) {
        if json {
            let sources: Vec<serde_json::Value> = self
                .lines
                .iter()
                .map(|l| serde_json::json!({"source": l.name, "vouched": l.yes, "detail": l.text}))
                .collect();
            let v = serde_json::json!({
                "image": self.shown,
                "digest": self.digest.as_ref().map(|d| d.to_string()),
                "tag_bound_by": self.bound_by,
                "sources": sources,
                "trusted": self.trusted,
                "result": self.result,
            });
            crate::outln!("{v}");
            return;
        }
        match (&self.digest, &self.bound_by) {
            (Some(d), Some(b)) => crate::outln!("{}  {d}  (tag bound by: {b})", self.shown),
            _ => crate::outln!("{}", self.shown),
        }
        print_lines(&self.lines);
        crate::outln!("  {}", self.result);
    }
}

/// Prints the report (text, or one JSON object); exit 0 when the policy is satisfied, 1
/// otherwise.
pub async fn run(
    cfg: &Config,
    reg: &RegistryConfig,
    rule: &PolicyRule,
    r: &ImageRef,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let rep = evaluate(cfg, reg, rule, r).await?;
    rep.print(json);
    Ok(if rep.trusted {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn evaluate(
    cfg: &Config,
    reg: &RegistryConfig,
    rule: &PolicyRule,
    r: &ImageRef,
) -> anyhow::Result<Report> {
    let shown = format!("{}/{}:{}", reg.name, r.repo, r.tag);
    let set = members(cfg, reg, rule, r.repo.as_str())?;
    if set.is_empty() {
        let why = format!(
            "NOT VERIFIED: the [[policy]] entry names no source (mode = {:?})",
            rule.mode.unwrap_or(reg.mode)
        );
        return Ok(Report::refused(&shown, Vec::new(), why));
    }
    let mut lines: Vec<Line> = Vec::new();
    let mut bound: Vec<(String, Digest)> = Vec::new();
    for (name, s) in set.tag_sources() {
        match s.check(&r.repo, &r.tag).await {
            Ok(rep) => {
                let mut text = format!(
                    "{} signed by {} in {}",
                    rep.target.digest, rep.target.signer, rep.target.source
                );
                if let Some(cause) = &rep.offline {
                    text.push_str(&format!(" (OFFLINE: cached metadata; {cause})"));
                }
                bound.push((name.to_owned(), rep.target.digest.clone()));
                lines.push(Line {
                    name: name.to_owned(),
                    yes: true,
                    text,
                });
            }
            Err(e) => lines.push(Line {
                name: name.to_owned(),
                yes: false,
                text: e.to_string(),
            }),
        }
    }
    if let Some((a, da)) = bound.first()
        && let Some((b, db)) = bound.iter().find(|(_, d)| d != da)
    {
        let why = format!("trust sources disagree: {a} binds it to {da}, {b} to {db}");
        return Ok(Report::refused(&shown, lines, why));
    }
    let limit = Arc::new(tokio::sync::Semaphore::new(4));
    let upstream = crate::upstream::Upstream::new(reg, &cfg.upstream, false, limit)?;
    let (digest, bound_by) = match bound.first() {
        Some((n, d)) => (d.clone(), n.clone()),
        None => match upstream.tag_digest(&r.repo, &r.tag, None).await {
            Ok(Some(d)) => (d, "upstream registry, not signed".to_owned()),
            Ok(None) => {
                let why =
                    "no source binds the tag and the registry does not say which digest it names";
                return Ok(Report::refused(&shown, lines, why.to_owned()));
            }
            // As the proxy does: only when nothing was heard, and only if the entry says so.
            Err(e @ (UpstreamError::Unreachable { .. } | UpstreamError::Timeout { .. }))
                if rule.offline_tag_memory().is_some() =>
            {
                let max = rule.offline_tag_memory().unwrap_or_default();
                crate::trust::tag_memory::TagMemory::read_only(&cfg.cache.dir)
                    .recall_within(&reg.name, &r.repo, &r.tag, max)
                    .map_err(|why| {
                        anyhow::anyhow!("{shown}: the registry cannot be asked: {e}; {why}")
                    })?
            }
            Err(e) => anyhow::bail!("{shown}: the registry cannot be asked: {e}"),
        },
    };
    signature_lines(cfg, reg, &upstream, &r.repo, &digest, &set, &mut lines).await;
    // The tag-binding members vouch only for the digest they bind.
    for l in lines.iter_mut() {
        if let Some((_, d)) = bound.iter().find(|(n, _)| *n == l.name)
            && *d != digest
        {
            l.yes = false;
        }
    }
    Ok(finish(&set, lines, shown, digest, Some(bound_by)))
}

/// The digest-vouching members' lines for `digest` (discovery, or the node's stored evidence
/// re-verified when the registry is unreachable).
async fn signature_lines(
    cfg: &Config,
    reg: &RegistryConfig,
    upstream: &crate::upstream::Upstream,
    repo: &RepoName,
    digest: &Digest,
    set: &SourceSet,
    lines: &mut Vec<Line>,
) {
    let digest_members = set.digest_sources();
    if digest_members.is_empty() {
        return;
    }
    let t = Target {
        upstream,
        repo,
        digest,
        client_auth: None,
    };
    let limits = Limits {
        max_candidates: cfg.signatures.max_candidates,
        max_manifest_bytes: cfg.signatures.max_manifest_bytes,
        max_blob_bytes: cfg.signatures.max_blob_bytes,
        ..Limits::default()
    };
    // The node's stored evidence, read only: shown (re-verified) when the registry is
    // unreachable, never written by `check`.
    let store = crate::trust::evidence::Store::read_only(&cfg.cache.dir);
    // Boxed, as in the proxy: a large future.
    let v = Box::pin(verdicts::run(
        &t,
        &reg.name,
        &digest_members,
        &limits,
        Some(&store),
    ))
    .await;
    for s in v.by_source {
        lines.push(Line {
            name: s.name.clone(),
            yes: s.vouched(),
            text: verdicts::describe(&s.verdict),
        });
    }
}

/// The report: lines in configured order, and whether the set is satisfied.
fn finish(
    set: &SourceSet,
    mut lines: Vec<Line>,
    shown: String,
    digest: Digest,
    bound_by: Option<String>,
) -> Report {
    // Members in configured order.
    let order: Vec<&str> = set.members().iter().map(|m| m.name.as_str()).collect();
    lines.sort_by_key(|l| order.iter().position(|n| *n == l.name));
    let yes = |n: &str| lines.iter().any(|l| l.name == n && l.yes);
    let trusted = set.satisfied(&yes);
    let vouching: Vec<&str> = lines
        .iter()
        .filter(|l| l.yes)
        .map(|l| l.name.as_str())
        .collect();
    let result = if trusted {
        format!("TRUSTED by {}: {}", which(set), vouching.join(", "))
    } else {
        format!("REFUSED: {} not satisfied", set.describe())
    };
    Report {
        shown,
        digest: Some(digest),
        bound_by,
        lines,
        trusted,
        result,
    }
}

/// `check REPOSITORY@DIGEST` under a `[[policy]]` entry: what the proxy decides for content
/// pulled by digest. A tag-binding member vouches when one of its signed tags names the
/// digest; digest-vouching members as for a tag.
pub async fn run_digest(
    cfg: &Config,
    reg: &RegistryConfig,
    rule: &PolicyRule,
    repo: &RepoName,
    digest: &Digest,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let shown = format!("{}/{repo}@{digest}", reg.name);
    let set = members(cfg, reg, rule, repo.as_str())?;
    let rep = if set.is_empty() {
        let why = format!(
            "NOT VERIFIED: the [[policy]] entry names no source (mode = {:?})",
            rule.mode.unwrap_or(reg.mode)
        );
        Report::refused(&shown, Vec::new(), why)
    } else {
        let mut lines = Vec::new();
        for (name, s) in set.tag_sources() {
            let (yes, text) = match s.trusted_targets(repo).await {
                Ok(ts) => {
                    let tags: Vec<&str> = ts
                        .iter()
                        .filter(|t| t.digest == *digest)
                        .map(|t| t.name.as_str())
                        .collect();
                    if tags.is_empty() {
                        (
                            false,
                            "none of its signed tags names this digest".to_owned(),
                        )
                    } else {
                        (true, format!("signed as {}", tags.join(", ")))
                    }
                }
                Err(e) => (false, e.to_string()),
            };
            lines.push(Line {
                name: name.to_owned(),
                yes,
                text,
            });
        }
        let limit = Arc::new(tokio::sync::Semaphore::new(4));
        let upstream = crate::upstream::Upstream::new(reg, &cfg.upstream, false, limit)?;
        signature_lines(cfg, reg, &upstream, repo, digest, &set, &mut lines).await;
        finish(&set, lines, shown, digest.clone(), None)
    };
    rep.print(json);
    Ok(if rep.trusted {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn which(set: &SourceSet) -> &'static str {
    match (set.any_of.is_empty(), set.all_of.is_empty()) {
        (false, true) => "any_of",
        (true, false) => "all_of",
        _ => "any_of + all_of",
    }
}

fn print_lines(lines: &[Line]) {
    let w = lines.iter().map(|l| l.name.len()).max().unwrap_or(0);
    for l in lines {
        let v = if l.yes { "yes" } else { "no " };
        crate::outln!("  {:<w$}  {v}  {}", l.name, l.text);
    }
}
