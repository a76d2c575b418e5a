//! `portcullis check IMAGE`: resolve a tag through the trust source as the proxy would,
//! without a registry. Like `docker pull`, it asks the notary server every time (using and
//! updating the same persisted state as `serve`) and falls back to cached metadata only when
//! the server is unreachable, saying so.

use std::process::ExitCode;

use crate::config::{Config, Mode, NotaryConfig, RegistryConfig};
use crate::policy::glob_match;
use crate::refs::{RepoName, Tag};
use crate::trust::notary::NotarySource;

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
            anyhow::anyhow!("{image:?}: expected [registry/]repository:tag (check verifies tags)")
        })?;
    let tag: Tag = tag.parse()?;
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
    Ok(ImageRef {
        registry,
        repo: repo.parse()?,
        tag,
    })
}

/// The notary config and mode that apply to `repo` of `reg` (first matching override wins).
fn trust_config<'a>(reg: &'a RegistryConfig, repo: &RepoName) -> (Mode, Option<&'a NotaryConfig>) {
    for o in &reg.repositories {
        if glob_match(&o.pattern, repo.as_str()) {
            return (
                o.mode.unwrap_or(reg.mode),
                o.notary.as_ref().or(reg.notary.as_ref()),
            );
        }
    }
    (reg.mode, reg.notary.as_ref())
}

/// Prints the trusted digest or the reason for refusal; exit 0 / 1.
pub async fn run(cfg: &Config, image: &str) -> anyhow::Result<ExitCode> {
    let r = parse_image(image, cfg)?;
    let reg = cfg.registry(r.registry.as_deref()).ok_or_else(|| {
        let names: Vec<&str> = cfg.registries.iter().map(|r| r.name.as_str()).collect();
        anyhow::anyhow!(
            "registry {:?} is not configured; configured: {}",
            r.registry.as_deref().unwrap_or("(default)"),
            names.join(", ")
        )
    })?;
    let shown = format!("{}/{}:{}", reg.name, r.repo, r.tag);
    let (mode, notary) = trust_config(reg, &r.repo);
    let Some(notary) = notary else {
        println!(
            "REFUSED {shown}: no trust source is configured for {} (mode = {mode:?})",
            reg.name
        );
        return Ok(ExitCode::FAILURE);
    };
    let source = NotarySource::new(&reg.name, notary, &cfg.cache.dir)
        .map_err(|e| anyhow::anyhow!("notary trust source for {}: {e}", reg.name))?;
    match source.check(&r.repo, &r.tag).await {
        Ok(rep) => {
            println!("TRUSTED {shown}");
            println!("  digest     {}", rep.target.digest);
            println!("  length     {}", rep.target.length);
            println!("  signed in  {}", rep.target.role);
            println!("  gun        {} (notary {})", rep.gun, rep.server);
            for role in &rep.roles {
                println!(
                    "  {:<20} version {:<6} expires {}",
                    role.role,
                    role.version,
                    role.expires
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_else(|_| role.expires.to_string())
                );
            }
            if let Some(cause) = &rep.offline {
                println!(
                    "  OFFLINE: the notary server could not be reached ({cause}); used cached metadata"
                );
            }
            if mode != Mode::Enforce {
                println!(
                    "  note: mode = {mode:?} for this repository; the proxy does not enforce this result"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("REFUSED {shown}: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            repositories: vec![],
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
