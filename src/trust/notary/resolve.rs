//! Which digest a tag names, given verified metadata.
//!
//! Owns: Docker's rule (`targets/releases`, then `targets`; every other delegation ignored, as
//! `GetTargetByName(tag, "targets/releases", "targets")` in the Docker CLI) and the stricter
//! `required_signers` rule (every named role must sign the tag, with one digest). A delegation
//! only counts for names under its `paths`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::refs::{Algorithm, Digest};
use crate::trust::{SourceKind, TrustedTarget};

use super::error::{Error, invalid};
use super::metadata::TargetFile;
use super::update::Trusted;

/// Docker's resolution order.
pub const DOCKER_ORDER: [&str; 2] = ["targets/releases", "targets"];

/// The target `name` as `role` signs it, if that role is trusted and may sign the name.
fn lookup<'a>(trusted: &'a Trusted, role: &str, name: &str) -> Option<&'a TargetFile> {
    let (targets, delegation) = trusted.role(role)?;
    if delegation.is_some_and(|d| !d.allows(name)) {
        return None;
    }
    targets.targets.get(name)
}

fn to_trusted(gun: &str, role: &str, name: &str, t: &TargetFile) -> Result<TrustedTarget, Error> {
    let b64 = t
        .hashes
        .get("sha256")
        .ok_or_else(|| invalid(gun, role, format!("target {name:?} has no sha256 hash")))?;
    let raw = B64
        .decode(b64)
        .map_err(|_| invalid(gun, role, format!("target {name:?}: sha256 is not base64")))?;
    let digest = Digest::from_raw(Algorithm::Sha256, &raw)
        .map_err(|e| invalid(gun, role, format!("target {name:?}: {e}")))?;
    Ok(TrustedTarget {
        name: name.to_string(),
        digest,
        length: Some(t.length),
        media_type: None,
        source: SourceKind::Notary,
        signer: role.to_string(),
    })
}

fn skipped_note(trusted: &Trusted, roles: &[&str]) -> String {
    let notes: Vec<String> = trusted
        .skipped
        .iter()
        .filter(|(r, _, _)| roles.contains(&r.as_str()))
        .map(|(r, why, _)| format!("{r} was not trusted: {why}"))
        .collect();
    if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    }
}

/// Resolves `name` (a tag) for `display` (e.g. `demo/app:v2`).
pub fn resolve(
    trusted: &Trusted,
    display: &str,
    name: &str,
    required: &[String],
) -> Result<TrustedTarget, Error> {
    let gun = &trusted.gun;
    if required.is_empty() {
        for role in DOCKER_ORDER {
            if let Some(t) = lookup(trusted, role, name) {
                return to_trusted(gun, role, name, t);
            }
        }
        return Err(Error::NotSigned(format!(
            "{display} is not signed in targets/releases or targets of {gun}{}",
            skipped_note(trusted, &DOCKER_ORDER)
        )));
    }
    let mut found: Option<TrustedTarget> = None;
    for role in required {
        let Some(t) = lookup(trusted, role, name) else {
            let req: Vec<&str> = required.iter().map(String::as_str).collect();
            return Err(Error::NotSigned(format!(
                "{display} is not signed by required signer {role} of {gun}{}",
                skipped_note(trusted, &req)
            )));
        };
        let t = to_trusted(gun, role, name, t)?;
        match &found {
            Some(prev) if prev.digest != t.digest || prev.length != t.length => {
                return Err(Error::NotSigned(format!(
                    "{display}: required signers disagree in {gun}: {} signs {}, {role} signs {}",
                    prev.signer, prev.digest, t.digest
                )));
            }
            Some(_) => {}
            None => found = Some(t),
        }
    }
    let mut t = found.ok_or_else(|| Error::NotSigned(format!("{display}: no required signers")))?;
    t.signer = required.join("+");
    Ok(t)
}

/// Every name the policy trusts, resolved as [`resolve`] would.
pub fn all_targets(trusted: &Trusted, required: &[String]) -> Vec<TrustedTarget> {
    let mut names: Vec<&String> = Vec::new();
    let roles: Vec<&str> = if required.is_empty() {
        DOCKER_ORDER.to_vec()
    } else {
        required.iter().map(String::as_str).collect()
    };
    for role in roles {
        if let Some((t, _)) = trusted.role(role) {
            names.extend(t.targets.keys());
        }
    }
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|n| resolve(trusted, n, n, required).ok())
        .collect()
}
