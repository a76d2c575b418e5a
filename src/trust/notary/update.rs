//! The update workflow: fetch and verify every role of a GUN in notary 0.7's order.
//!
//! Owns: the order (root.json and any root chain via `chain`, timestamp.json,
//! `snapshot.<sha256>.json`, `targets.<sha256>.json`, then each delegation
//! `targets/X.<sha256>.json` breadth first), the per-role size [`Limits`], and what a bad
//! delegation costs. Checks themselves live in `verify` and `root`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use time::OffsetDateTime;

use super::chain::{KeepRoot, update_root};
use super::error::Error;
use super::fetch::{Fetch, FetchError};
use super::metadata::{Common, Envelope, FileMeta, Snapshot, Targets, Timestamp};
use super::verify::{
    Delegation, Listed, RootAnchor, VerifiedRoot, check_file_meta, child_delegations, listed_in,
    load_delegation, load_snapshot, load_targets, load_timestamp,
};

/// Size limits per role (TUF "endless data" attack). Snapshot, targets and delegations are
/// also held to the exact length their parent lists.
#[derive(Debug, Clone)]
pub struct Limits {
    pub root: u64,
    pub timestamp: u64,
    pub snapshot: u64,
    pub targets: u64,
    pub delegation: u64,
    /// Most delegation roles walked per GUN.
    pub max_delegations: usize,
    /// How long past its expiry the timestamp is still accepted. Zero except when cached
    /// metadata is replayed with the server unreachable and `offline_grace` is set
    /// (`source::NotarySource::refresh`); every other role's expiry is checked as always.
    pub timestamp_grace: std::time::Duration,
}

impl Limits {
    /// Most new root versions one refresh verifies when walking the chain from the trusted
    /// root to the current one (TUF 1.0 §5.3.3 leaves this bound to the application). A
    /// repository rotating its root every day stays within it for a month offline; a longer
    /// chain is crossed over several refreshes, each keeping its progress.
    pub const MAX_ROOT_STEPS: u64 = 32;
}

impl Default for Limits {
    fn default() -> Self {
        // notary's own client caps timestamp at 1 MiB (notary.MaxTimestampSize); real root
        // files are a few KiB, targets for busy repositories a few hundred KiB.
        Limits {
            root: 1 << 20,
            timestamp: 1 << 20,
            snapshot: 16 << 20,
            targets: 16 << 20,
            delegation: 16 << 20,
            max_delegations: 64,
            timestamp_grace: std::time::Duration::ZERO,
        }
    }
}

/// What was trusted before: the root that vouches for the next one, and the highest version
/// seen of each role (for rollback checks); and where a root verified on the way to the
/// current one is kept at once (`None`: nowhere, as when replaying the cache).
#[derive(Debug, Clone, Default)]
pub struct Prior {
    pub root: Option<VerifiedRoot>,
    pub versions: BTreeMap<String, u64>,
    pub keep: Option<Arc<dyn KeepRoot>>,
}

/// Every role of a GUN, verified at one instant.
#[derive(Debug, Clone)]
pub struct Trusted {
    pub gun: String,
    pub root: VerifiedRoot,
    pub timestamp: Envelope<Timestamp>,
    pub snapshot: Envelope<Snapshot>,
    pub targets: Envelope<Targets>,
    /// Verified delegations, in walk order, with their effective paths.
    pub delegations: Vec<(Delegation, Envelope<Targets>)>,
    /// Delegations that were not trusted, and why (expired, under threshold, not published),
    /// with their bytes when they were fetched (kept so the cache can replay this update).
    pub skipped: Vec<(String, String, Option<Vec<u8>>)>,
}

/// One role's version and expiry, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleStatus {
    pub role: String,
    pub version: u64,
    pub expires: OffsetDateTime,
}

impl Trusted {
    /// Version and expiry of each verified role.
    pub fn roles(&self) -> Vec<RoleStatus> {
        fn st<T: Common>(role: &str, t: &T) -> RoleStatus {
            RoleStatus {
                role: role.to_string(),
                version: t.version(),
                expires: t.expires(),
            }
        }
        let mut out = vec![
            st("root", &self.root.env.signed),
            st("timestamp", &self.timestamp.signed),
            st("snapshot", &self.snapshot.signed),
            st("targets", &self.targets.signed),
        ];
        out.extend(self.delegations.iter().map(|(d, e)| st(&d.name, &e.signed)));
        out
    }

    /// The earliest `expires` of the verified roles: past it, this must not be used.
    pub fn valid_until(&self) -> OffsetDateTime {
        self.roles()
            .iter()
            .map(|r| r.expires)
            .min()
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// The raw served bytes of each verified role, for the on-disk cache.
    pub fn files(&self) -> Vec<(String, &[u8])> {
        let mut out = vec![
            ("root".to_string(), self.root.env.raw.as_slice()),
            ("timestamp".to_string(), self.timestamp.raw.as_slice()),
            ("snapshot".to_string(), self.snapshot.raw.as_slice()),
            ("targets".to_string(), self.targets.raw.as_slice()),
        ];
        out.extend(
            self.delegations
                .iter()
                .map(|(d, e)| (d.name.clone(), e.raw.as_slice())),
        );
        out.extend(
            self.skipped
                .iter()
                .filter_map(|(name, _, raw)| raw.as_deref().map(|r| (name.clone(), r))),
        );
        out
    }

    /// The verified targets of `role` (`targets` or a delegation), if trusted.
    pub fn role(&self, role: &str) -> Option<(&Targets, Option<&Delegation>)> {
        if role == "targets" {
            return Some((&self.targets.signed, None));
        }
        self.delegations
            .iter()
            .find(|(d, _)| d.name == role)
            .map(|(d, e)| (&e.signed, Some(d)))
    }
}

pub(super) async fn get(
    fetcher: &dyn Fetch,
    gun: &str,
    role: &str,
    path: &str,
    max_len: u64,
) -> Result<bytes::Bytes, Error> {
    fetcher
        .fetch(gun, path, max_len)
        .await
        .map_err(|e| match e {
            FetchError::NotFound => Error::NotFound {
                gun: gun.to_string(),
                role: role.to_string(),
                server: fetcher.describe(),
            },
            source => Error::Fetch {
                gun: gun.to_string(),
                role: role.to_string(),
                source,
            },
        })
}

/// Fetches a file whose length its parent lists, reading at most that length (TUF: download
/// at most the listed length), and names an overlong file as the mismatch it is.
async fn get_listed(
    fetcher: &dyn Fetch,
    gun: &str,
    role: &str,
    listed: Listed<'_>,
    limit: u64,
) -> Result<bytes::Bytes, Error> {
    let Listed { by, meta } = listed;
    if meta.length > limit {
        return Err(super::error::invalid(
            gun,
            role,
            format!(
                "{by} lists it at {} bytes, above the limit of {limit}",
                meta.length
            ),
        ));
    }
    let path = checksum_path(role, meta);
    match get(fetcher, gun, role, &path, meta.length).await {
        Err(Error::Fetch {
            source: FetchError::TooLarge { .. },
            ..
        }) => Err(super::error::invalid(
            gun,
            role,
            format!(
                "served file does not match {by}'s record of it (longer than {} bytes): mixed or tampered metadata",
                meta.length
            ),
        )),
        other => other,
    }
}

/// The path notary 0.7 asks for: `<role>.<sha256 hex>` when the parent lists a sha256.
fn checksum_path(role: &str, meta: &FileMeta) -> String {
    match meta.sha256_hex() {
        Some(hex) => format!("{role}.{hex}"),
        None => role.to_string(),
    }
}

/// Fetches and verifies all of `gun`'s metadata at `now`.
pub async fn update(
    fetcher: &dyn Fetch,
    gun: &str,
    anchor: &RootAnchor,
    prior: &Prior,
    limits: &Limits,
    wanted: &[String],
    now: OffsetDateTime,
) -> Result<Trusted, Error> {
    let seen = |role: &str| prior.versions.get(role).copied();

    let root = update_root(fetcher, gun, anchor, prior, limits, now).await?;

    let raw = get(fetcher, gun, "timestamp", "timestamp", limits.timestamp).await?;
    let timestamp = load_timestamp(
        gun,
        &raw,
        &root,
        seen("timestamp"),
        now - limits.timestamp_grace,
    )?;

    let listed = listed_in(gun, "snapshot", "timestamp", &timestamp.signed.meta)?;
    let raw = get_listed(fetcher, gun, "snapshot", listed, limits.snapshot).await?;
    let snapshot = load_snapshot(gun, &raw, &root, &timestamp, seen("snapshot"), now)?;

    let listed = listed_in(gun, "targets", "snapshot", &snapshot.signed.meta)?;
    let raw = get_listed(fetcher, gun, "targets", listed, limits.targets).await?;
    let targets = load_targets(gun, &raw, &root, &snapshot, seen("targets"), now)?;

    let mut trusted = Trusted {
        gun: gun.to_string(),
        root,
        timestamp,
        snapshot,
        targets,
        delegations: Vec::new(),
        skipped: Vec::new(),
    };
    walk_delegations(fetcher, gun, &mut trusted, prior, limits, wanted, now).await?;
    Ok(trusted)
}

/// Whether the walk must fetch `role`: it is read by the policy, or is an ancestor of a role
/// that is. Other delegations are never fetched (Docker ignores them), so a broken or missing
/// unrelated delegation cannot block a pull, and a missing wanted one always does.
fn is_wanted(role: &str, wanted: &[String]) -> bool {
    wanted.iter().any(|w| {
        w == role
            || w.strip_prefix(role)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// Breadth-first over the wanted part of the delegation tree, in notary's order. Like notary, a
/// delegation the snapshot does not list is skipped (not yet published), and one that is
/// expired or under its threshold is skipped with a warning: its targets are simply not
/// trusted. Bytes that do not match the snapshot, or a rolled-back version, abort the update.
async fn walk_delegations(
    fetcher: &dyn Fetch,
    gun: &str,
    trusted: &mut Trusted,
    prior: &Prior,
    limits: &Limits,
    wanted: &[String],
    now: OffsetDateTime,
) -> Result<(), Error> {
    let mut queue: VecDeque<Delegation> =
        child_delegations(gun, "targets", &[String::new()], &trusted.targets.signed)?.into();
    let mut walked = 0;
    while let Some(d) = queue.pop_front() {
        if !is_wanted(&d.name, wanted)
            || trusted
                .delegations
                .iter()
                .any(|(done, _)| done.name == d.name)
        {
            continue;
        }
        let Some(meta) = trusted.snapshot.signed.meta.get(&d.name).cloned() else {
            trusted
                .skipped
                .push((d.name.clone(), "not listed in the snapshot".into(), None));
            continue;
        };
        walked += 1;
        if walked > limits.max_delegations {
            return Err(super::error::invalid(
                gun,
                &d.name,
                format!("more than {} delegations", limits.max_delegations),
            ));
        }
        let listed = Listed {
            by: "snapshot",
            meta: &meta,
        };
        let raw = get_listed(fetcher, gun, &d.name, listed, limits.delegation).await?;
        check_file_meta(gun, &d.name, "snapshot", &raw, &meta)?;
        let seen = prior.versions.get(&d.name).copied();
        match load_delegation(gun, &d, &raw, &trusted.snapshot, seen, now) {
            Ok(env) => {
                let children = child_delegations(gun, &d.name, &d.paths, &env.signed)?;
                queue.extend(children);
                trusted.delegations.push((d, env));
            }
            Err(e @ Error::Rollback { .. }) => return Err(e),
            Err(e) => {
                tracing::warn!(gun, role = %d.name, error = %e, "delegation not trusted");
                trusted
                    .skipped
                    .push((d.name.clone(), e.to_string(), Some(raw.to_vec())));
            }
        }
    }
    Ok(())
}
