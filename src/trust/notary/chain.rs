//! Root chain walking: from the trusted root version N to the current root.json through every
//! `<version>.root.json` in between (TUF 1.0 §5.3 "Update the root role"; notary 0.7
//! `tufClient.updateRoot` / `updateRootVersions`).
//!
//! Owns: which root files are fetched, the bound on how many one refresh walks
//! ([`Limits::MAX_ROOT_STEPS`]), and handing each verified step to [`KeepRoot`] at once so a
//! failure later (a forged next step, a crash, an unreachable server) never costs the verified
//! part of the walk. The checks on each root are `root::load_root_step`.
//!
//! Like notary, root.json is fetched first and tells how far the chain goes. A root one version
//! ahead of the trusted one (or the same) is checked directly, as before; anything further is
//! walked one version at a time, so a root that skips a version is refused even when the
//! trusted keys signed it.

use std::fmt;

use time::OffsetDateTime;

use super::error::{Error, invalid};
use super::fetch::Fetch;
use super::metadata::{Root, parse};
use super::update::{Limits, Prior, get};
use super::verify::{RootAnchor, RootStep, VerifiedRoot, load_root, load_root_step};

/// Where a root verified in the middle of a chain is persisted (TUF 1.0 §5.3.8 "persist root
/// metadata"). Must be atomic: what it stored is the trusted root from then on.
pub trait KeepRoot: Send + Sync + fmt::Debug {
    fn keep_root(&self, root: &VerifiedRoot) -> Result<(), Error>;
}

/// The role name errors use for one root of a chain, so the operator learns which file broke
/// it: "root version 3 of GUN is invalid: ...".
fn label(version: u64) -> String {
    format!("root version {version}")
}

/// Re-labels an error about "root" as one about `root version N`.
fn in_chain(version: u64, e: Error) -> Error {
    match e {
        Error::Invalid { gun, role, reason } if role == "root" => Error::Invalid {
            gun,
            role: label(version),
            reason,
        },
        Error::Expired {
            gun, role, expires, ..
        } if role == "root" => Error::Expired {
            gun,
            role: label(version),
            expires,
        },
        other => other,
    }
}

/// The version root.json claims, read before anything is verified: it only decides how many
/// `<version>.root.json` files to ask for, each of which is then verified in full. `None` for
/// bytes that do not parse (`load_root` says why).
fn claimed_version(raw: &[u8]) -> Option<u64> {
    parse::<Root>(raw).ok().map(|env| env.signed.version)
}

/// Fetches root.json and returns it verified, walking the chain from `prior.root` when the
/// current root is more than one version ahead of it.
pub async fn update_root(
    fetcher: &dyn Fetch,
    gun: &str,
    anchor: &RootAnchor,
    prior: &Prior,
    limits: &Limits,
    now: OffsetDateTime,
) -> Result<VerifiedRoot, Error> {
    let raw = get(fetcher, gun, "root", "root", limits.root).await?;
    let Some(trusted) = prior.root.as_ref() else {
        // First sight of this GUN: trust pinning or TOFU decides; there is no chain.
        return load_root(gun, &raw, None, anchor, now);
    };
    let from = trusted.env.signed.version;
    let current = match claimed_version(&raw) {
        Some(v) if v > from.saturating_add(1) => v,
        // The same root, the next one (checked against the trusted root directly), a rollback
        // or garbage: load_root refuses or accepts as it always has.
        _ => return load_root(gun, &raw, Some(trusted), anchor, now),
    };
    // TUF 1.0 §5.3.3: the number of root files one update downloads is bounded by the
    // application. Past the bound, the walk still makes (and keeps) MAX_ROOT_STEPS of progress,
    // so an honest but long chain is crossed over a few refreshes, and a server that claims a
    // huge version costs at most that many verified fetches.
    let last = (current - 1).min(from.saturating_add(Limits::MAX_ROOT_STEPS));
    let walk = Walk {
        fetcher,
        gun,
        anchor,
        limits,
        now,
        current,
    };
    let mut prev = trusted.clone();
    // TUF 1.0 §5.3.2 to §5.3.9: N+1, N+2, ... each verified against the one before, which it
    // then replaces as the trusted root (§5.3.7) and is persisted at once (§5.3.8).
    for version in from + 1..=last {
        let next = walk.step(&prev, version).await?;
        if let Some(keep) = &prior.keep {
            keep.keep_root(&next)?;
        }
        prev = next;
    }
    if current - from > Limits::MAX_ROOT_STEPS {
        return Err(invalid(
            gun,
            &label(current),
            format!(
                "{} root versions ahead of the trusted version {from}, more than the {} one refresh walks; versions up to {last} were verified and kept, and the next refresh goes on from there",
                current - from,
                Limits::MAX_ROOT_STEPS
            ),
        ));
    }
    // The current root, verified against the last intermediate one, with every check.
    load_root(gun, &raw, Some(&prev), anchor, now).map_err(|e| in_chain(current, e))
}

/// One walk's fixed inputs.
struct Walk<'a> {
    fetcher: &'a dyn Fetch,
    gun: &'a str,
    anchor: &'a RootAnchor,
    limits: &'a Limits,
    now: OffsetDateTime,
    /// The version root.json claims: where the walk ends.
    current: u64,
}

impl Walk<'_> {
    /// Fetches and verifies `<version>.root.json` against `prev` (TUF 1.0 §5.3.3 to §5.3.6).
    async fn step(&self, prev: &VerifiedRoot, version: u64) -> Result<VerifiedRoot, Error> {
        let (gun, name) = (self.gun, label(version));
        let path = format!("{version}.root");
        let raw = match get(self.fetcher, gun, &name, &path, self.limits.root).await {
            // TUF 1.0 §5.3.1: the client MUST download every intermediate root until the
            // latest; a chain with a hole cannot be verified, so fail closed, naming the file.
            Err(Error::NotFound { server, .. }) => {
                return Err(invalid(
                    gun,
                    &name,
                    format!(
                        "{path}.json is not on the notary server {server} (404), and the chain from the trusted version {} to the current version {} needs it",
                        prev.env.signed.version, self.current
                    ),
                ));
            }
            other => other?,
        };
        let step = RootStep::Intermediate(version);
        load_root_step(gun, &raw, Some(prev), self.anchor, self.now, step)
            .map_err(|e| in_chain(version, e))
    }
}
