//! `portcullis check IMAGE`: resolve a tag through the trust source as the proxy would,
//! without a registry. Like `docker pull`, it asks the notary server every time (using and
//! updating the same persisted state as `serve`) and falls back to cached metadata only when
//! the server is unreachable, saying so.

mod policy;

pub(crate) use policy::members;

use std::process::ExitCode;

use crate::config::{Config, Mode, TagDrift};
use crate::refs::{RepoName, Tag};

/// An image reference split into the parts `check` needs.
#[derive(Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// `None`: the default registry.
    pub registry: Option<String>,
    pub repo: RepoName,
    pub tag: Tag,
}

/// Parses `[registry/]repository:tag`. The first component is a registry when it is one of
/// the configured registry names (or looks like a host: has a `.` or `:`, or is `localhost`).
pub fn parse_image(image: &str, cfg: &Config) -> anyhow::Result<ImageRef> {
    let (name, tag) = image
        .rsplit_once(':')
        .filter(|(n, t)| !t.contains('/') && !n.is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!("{image:?}: expected [registry/]repository:tag (or repository@digest under a [[policy]] entry)")
        })?;
    let tag: Tag = tag.parse()?;
    let (registry, repo) = parse_name(name, cfg)?;
    Ok(ImageRef {
        registry,
        repo,
        tag,
    })
}

/// `[registry/]repository`: the registry (see [`parse_image`]) and the repository.
fn parse_name(name: &str, cfg: &Config) -> anyhow::Result<(Option<String>, RepoName)> {
    let (registry, repo) = match name.split_once('/') {
        Some((first, rest))
            if cfg.registries.iter().any(|r| r.name == first)
                || first.contains('.')
                || first.contains(':')
                || first == "localhost" =>
        {
            (Some(first.to_owned()), rest)
        }
        _ => (None, name),
    };
    Ok((registry, repo.parse()?))
}

/// The configured registry `name` (`None`: the default), or an error listing them.
fn registry_named<'a>(
    cfg: &'a Config,
    name: Option<&str>,
) -> anyhow::Result<&'a crate::config::RegistryConfig> {
    cfg.registry(name).ok_or_else(|| {
        let names: Vec<&str> = cfg.registries.iter().map(|r| r.name.as_str()).collect();
        anyhow::anyhow!(
            "registry {:?} is not configured; configured: {}",
            name.unwrap_or("(default)"),
            names.join(", ")
        )
    })
}

/// `check [registry/]repository@digest`: only under a `[[policy]]` entry, where content by
/// digest is what cosign and Notation vouch for (and what a node pulls offline).
async fn run_digest(
    cfg: &Config,
    name: &str,
    digest: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let digest: crate::refs::Digest = digest.parse()?;
    let (registry, repo) = parse_name(name, cfg)?;
    let reg = registry_named(cfg, registry.as_deref())?;
    let Some(rule) = cfg.rule_for(&reg.name, repo.as_str()) else {
        anyhow::bail!(
            "{}/{repo}@{digest}: check by digest is for repositories under a [[policy]] entry; \
             name a tag",
            reg.name
        );
    };
    policy::run_digest(cfg, reg, rule, &repo, &digest, json).await
}

/// Prints the trusted digest or the reason for refusal; exit 0 / 1.
pub async fn run(cfg: &Config, image: &str) -> anyhow::Result<ExitCode> {
    run_with(cfg, image, false).await
}

/// [`run`]; `json`: one JSON object instead of text, for a repository under `[[policy]]`.
pub async fn run_with(cfg: &Config, image: &str, json: bool) -> anyhow::Result<ExitCode> {
    if let Some((name, digest)) = image.rsplit_once('@') {
        return run_digest(cfg, name, digest, json).await;
    }
    let r = parse_image(image, cfg)?;
    let reg = registry_named(cfg, r.registry.as_deref())?;
    let shown = format!("{}/{}:{}", reg.name, r.repo, r.tag);
    // A `[[policy]]` entry decides first, as in the proxy.
    if let Some(rule) = cfg.rule_for(&reg.name, r.repo.as_str()) {
        return policy::run(cfg, reg, rule, &r, json).await;
    }
    if json {
        anyhow::bail!(
            "--json is printed for repositories under a [[policy]] entry; {}/{} has none",
            reg.name,
            r.repo
        );
    }
    // The same resolution the proxy uses: first matching override, else the registry.
    let policy = reg.policy_for(r.repo.as_str());
    let mode = policy.mode;
    let Some((_, source)) = policy.source else {
        crate::outln!(
            "REFUSED {shown}: no trust source is configured for {} (mode = {mode:?})",
            reg.name
        );
        return Ok(ExitCode::FAILURE);
    };
    let source = crate::trust::build(&reg.name, source, &cfg.cache.dir)?;
    match source.check(&r.repo, &r.tag).await {
        Ok(rep) => {
            crate::outln!("TRUSTED {shown}");
            crate::outln!("  digest     {}", rep.target.digest);
            if let Some(len) = rep.target.length {
                crate::outln!("  length     {len}");
            }
            crate::outln!("  signed in  {}", rep.target.signer);
            crate::outln!("  source     {}", rep.target.source);
            for (label, value) in &rep.facts {
                crate::outln!("  {label:<20} {value}");
            }
            registry_line(cfg, reg, &r, &rep.target.digest, policy.on_tag_drift).await;
            if let Some(cause) = &rep.offline {
                crate::outln!(
                    "  OFFLINE: the trust server could not be reached ({cause}); used cached metadata"
                );
            }
            if mode != Mode::Enforce {
                crate::outln!(
                    "  note: mode = {mode:?} for this repository; the proxy does not enforce this result"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            crate::outln!("REFUSED {shown}: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// What the registry's tag points to now, compared with the signed digest (tag drift).
/// Informational: the trust decision above does not depend on it.
async fn registry_line(
    cfg: &Config,
    reg: &crate::config::RegistryConfig,
    r: &ImageRef,
    signed: &crate::refs::Digest,
    on_drift: TagDrift,
) {
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(1));
    let upstream = match crate::upstream::Upstream::new(reg, &cfg.upstream, false, limit) {
        Ok(u) => u,
        Err(e) => {
            crate::outln!("  registry   not asked: {e:#}");
            return;
        }
    };
    match upstream.tag_digest(&r.repo, &r.tag, None).await {
        Ok(Some(d)) if d == *signed => {
            crate::outln!("  registry   the tag points to the signed digest")
        }
        Ok(Some(d)) => {
            let what = match on_drift {
                TagDrift::ServeSigned => {
                    "the signed digest is served (on_tag_drift = \"serve-signed\")"
                }
                TagDrift::Refuse => "pulls of the tag are refused (on_tag_drift = \"refuse\")",
            };
            crate::outln!("  DRIFT: the registry maps the tag to {d}; {what}");
        }
        Ok(None) => crate::outln!("  registry   has no such tag (or does not say its digest)"),
        Err(e) => crate::outln!("  registry   unreachable: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RegistryConfig;

    fn cfg() -> Config {
        let mut c = Config::default();
        c.registries.push(RegistryConfig {
            name: "127.0.0.1:5000".into(),
            upstream: "http://127.0.0.1:5000".into(),
            default: true,
            mode: Mode::Enforce,
            ca_file: None,
            auth: None,
            notary: None,
            tuf: None,
            repositories: vec![],
            tags_list: Default::default(),
            on_tag_drift: Default::default(),
        });
        c
    }

    #[test]
    fn image_refs() {
        let c = cfg();
        let r = parse_image("127.0.0.1:5000/demo/app:v1", &c).unwrap();
        assert_eq!(r.registry.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(r.repo.as_str(), "demo/app");
        assert_eq!(r.tag.as_str(), "v1");
        let r = parse_image("demo/app:v1", &c).unwrap();
        assert_eq!(r.registry, None);
        assert!(parse_image("demo/app", &c).is_err());
        assert!(parse_image("127.0.0.1:5000/demo/app", &c).is_err());
        assert!(parse_image("Demo/app:v1", &c).is_err());
    }
}
