//! What a TUF target means for a pull: target names, the signing chain, and the checks the
//! crate leaves to us.
//!
//! sigstore-tuf's `get_target_info` finds a target (pre-order DFS over the delegations,
//! `terminating`, path patterns and hash prefixes) but does not say which role signed it.
//! [`chain`] walks the verified metadata again the same way, with the crate's own pieces
//! (`targets_role`, `verify_delegated_targets`, `DelegatedRole::matches_path`), and the caller
//! refuses when the two walks disagree. Along the way it notices TAP 15 `succinct_roles`
//! (RSTUF's hash bins), which the crate does not support and would silently find nothing in.

use sigstore_tuf::{TargetFile, TrustedMetadataSet};

use crate::refs::{Algorithm, Digest};

/// `target_name = "{repository}:{tag}"` or `"{tag}"`. `:` never occurs in a repository name
/// and `/` never in a tag, so segment-wise globs delegate naturally: `demo/*`,
/// `demo/app:*`, `demo/app:v1.*`.
pub fn target_name(template: &str, repo: &str, tag: &str) -> String {
    template.replace("{repository}", repo).replace("{tag}", tag)
}

/// The tag a target name stands for in `repo`, if it names one there.
pub fn tag_of<'a>(template: &str, repo: &str, name: &'a str) -> Option<&'a str> {
    let tag = if template == "{tag}" {
        name
    } else {
        let (r, tag) = name.rsplit_once(':')?;
        if r != repo {
            return None;
        }
        tag
    };
    tag.parse::<crate::refs::Tag>().ok().map(|_| tag)
}

/// The role chain that signs `name`: `["targets"]`, `["targets", "releases"]`, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walk {
    pub chain: Vec<String>,
    pub target: Option<TargetFile>,
    /// A visited role delegates with `succinct_roles`, which is not supported.
    pub succinct: Option<String>,
}

/// Walks the loaded roles as the crate does (at most `max_roles` roles), re-verifying each
/// delegated role against the delegator it is reached through.
pub fn chain(
    trusted: &TrustedMetadataSet,
    name: &str,
    max_roles: u32,
    now: jiff::Timestamp,
) -> Result<Walk, String> {
    let mut to_visit: Vec<(String, String, Vec<String>)> =
        vec![("targets".into(), "root".into(), vec![])];
    let mut visited = std::collections::BTreeSet::new();
    let mut succinct = None;
    let mut steps = 0;
    while !to_visit.is_empty() {
        let (role, delegator, mut path) = to_visit.remove(0);
        if !visited.insert(role.clone()) {
            continue;
        }
        if steps >= max_roles {
            break;
        }
        steps += 1;
        let targets = if role == "targets" {
            trusted.targets_role("targets")
        } else {
            match trusted.targets_role(&role) {
                // Not loaded: the crate skipped it (not in the snapshot) or never got here.
                None => continue,
                Some(_) => Some(
                    trusted
                        .verify_delegated_targets(&role, &delegator, now)
                        .map_err(|e| format!("role `{role}`: {e}"))?,
                ),
            }
        };
        let Some(targets) = targets else {
            return Err("no trusted top-level targets".into());
        };
        path.push(role.clone());
        if let Some(found) = targets.target(name) {
            return Ok(Walk {
                chain: path,
                target: Some(found.clone()),
                succinct,
            });
        }
        let Some(delegations) = &targets.delegations else {
            continue;
        };
        if delegations.extra.contains_key("succinct_roles") {
            succinct.get_or_insert(role.clone());
        }
        let mut children = Vec::new();
        for child in &delegations.roles {
            if matches!(
                child.name.as_str(),
                "root" | "timestamp" | "snapshot" | "targets"
            ) {
                continue;
            }
            if child
                .matches_path(name)
                .map_err(|e| format!("role `{}`: {e}", child.name))?
            {
                children.push((child.name.clone(), role.clone(), path.clone()));
                if child.terminating {
                    to_visit.clear();
                    break;
                }
            }
        }
        children.append(&mut to_visit);
        to_visit = children;
    }
    Ok(Walk {
        chain: vec![],
        target: None,
        succinct,
    })
}

/// The manifest digest a target vouches for: `hashes.sha256`, else `hashes.sha512` (the
/// Notary rule: the hash of the manifest bytes as served).
pub fn digest_of(t: &TargetFile) -> Result<Digest, String> {
    for (alg, algorithm) in [("sha256", Algorithm::Sha256), ("sha512", Algorithm::Sha512)] {
        if let Some(h) = t.hashes.get(alg) {
            let raw = hex::decode(h).map_err(|_| format!("hashes.{alg} is not hex"))?;
            return Digest::from_raw(algorithm, &raw).map_err(|e| format!("hashes.{alg}: {e}"));
        }
    }
    Err("the target has no sha256 or sha512 hash".into())
}

/// `custom.mediaType`, when the signer recorded one.
pub fn media_type_of(t: &TargetFile) -> Result<Option<String>, String> {
    match t.custom.as_ref().and_then(|c| c.get("mediaType")) {
        None => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err("custom.mediaType is not a string".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names_round_trip_per_template() {
        let t = "{repository}:{tag}";
        assert_eq!(target_name(t, "demo/app", "v1"), "demo/app:v1");
        assert_eq!(tag_of(t, "demo/app", "demo/app:v1"), Some("v1"));
        assert_eq!(tag_of(t, "demo/app", "demo/other:v1"), None);
        assert_eq!(tag_of(t, "demo/app", "demo/app/sub:v1"), None);
        assert_eq!(tag_of(t, "demo/app", "demo/app"), None);
        assert_eq!(tag_of(t, "demo/app", "demo/app:bad tag"), None);
        assert_eq!(target_name("{tag}", "demo/app", "v1"), "v1");
        assert_eq!(tag_of("{tag}", "demo/app", "v1"), Some("v1"));
    }

    fn target(hashes: &[(&str, &str)], custom: Option<serde_json::Value>) -> TargetFile {
        let mut v = serde_json::json!({
            "length": 3,
            "hashes": hashes.iter().map(|(a, h)| (a.to_string(), serde_json::Value::from(*h))).collect::<serde_json::Map<_, _>>(),
        });
        if let Some(c) = custom {
            v["custom"] = c;
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_digest_is_sha256_else_sha512_and_must_be_well_formed() {
        let h256 = "a".repeat(64);
        let d = digest_of(&target(&[("sha256", &h256)], None)).unwrap();
        assert_eq!(d.to_string(), format!("sha256:{h256}"));
        let h512 = "b".repeat(128);
        let d = digest_of(&target(&[("sha512", &h512)], None)).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha512);
        assert!(digest_of(&target(&[("sha256", "zz")], None)).is_err());
        assert!(digest_of(&target(&[("sha256", "abcd")], None)).is_err());
        assert!(digest_of(&target(&[("md5", "abcd")], None)).is_err());
    }

    #[test]
    fn media_type_is_read_from_custom_when_present() {
        let h = "a".repeat(64);
        let mt = "application/vnd.oci.image.manifest.v1+json";
        let t = target(
            &[("sha256", &h)],
            Some(serde_json::json!({"mediaType": mt})),
        );
        assert_eq!(media_type_of(&t).unwrap().as_deref(), Some(mt));
        assert_eq!(
            media_type_of(&target(&[("sha256", &h)], None)).unwrap(),
            None
        );
        let bad = target(&[("sha256", &h)], Some(serde_json::json!({"mediaType": 1})));
        assert!(media_type_of(&bad).is_err());
    }
}
