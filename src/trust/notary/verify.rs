//! The checks on each role, as plainly ordered functions over bytes already fetched:
//! [`load_root`] (in `root`, re-exported here), [`load_timestamp`], [`load_snapshot`],
//! [`load_targets`], [`load_delegation`].
//!
//! Owns: signatures and thresholds, key IDs, expiry, version rollback, and the length/hash
//! links snapshot -> timestamp and targets/delegations -> snapshot, done once for every role
//! type by `load_role`; and delegations. Root certificates, trust pinning and rotation are
//! `root`'s. It does no I/O: `update` fetches and calls these in order. The rules follow notary
//! 0.7 (`tuf/signed/verify.go`, `client/tufclient.go`) and cite the TUF section where one
//! applies.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest as _, Sha256, Sha512};
use time::OffsetDateTime;

use super::canonical::to_canonical;
use super::error::{Error, invalid};
use super::keys::PublicKey;
use super::metadata::{
    Common, DelegatedRole, Envelope, FileMeta, Role, Snapshot, Targets, Timestamp, parse,
};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

// The root checks moved to `root`; callers keep naming them through `verify`.
pub use super::root::{
    RootAnchor, RootStep, VerifiedRoot, load_root, load_root_step, trusted_root,
};

/// Who must sign a role: a threshold of these key IDs, resolved in `keys`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Signers<'a> {
    pub keys: &'a HashMap<String, PublicKey>,
    pub ids: &'a [String],
    pub threshold: u32,
}

/// Where a role's bytes are recorded: the parent role that lists them, and its record.
#[derive(Debug, Clone, Copy)]
pub(super) struct Listed<'a> {
    pub by: &'a str,
    pub meta: &'a FileMeta,
}

/// `role`'s record in the `meta` of `listed_by` (the timestamp lists the snapshot, the
/// snapshot lists targets and delegations).
pub(super) fn listed_in<'a>(
    gun: &str,
    role: &str,
    listed_by: &'a str,
    meta: &'a BTreeMap<String, FileMeta>,
) -> Result<Listed<'a>, Error> {
    let meta = meta
        .get(role)
        .ok_or_else(|| invalid(gun, listed_by, format!("meta has no {role} entry")))?;
    Ok(Listed {
        by: listed_by,
        meta,
    })
}

/// Parses every key of a key map and checks that it is listed under its own ID. notary names
/// keys by the sha256 of their canonical JSON; a key listed under another ID is a forgery
/// attempt or corruption, so it is refused, not skipped.
pub(super) fn parse_keys(
    gun: &str,
    role: &str,
    keys: &std::collections::BTreeMap<String, serde_json::Value>,
    wanted: &[&String],
) -> Result<HashMap<String, PublicKey>, Error> {
    let mut out = HashMap::new();
    for id in wanted {
        let Some(v) = keys.get(*id) else { continue };
        let key =
            PublicKey::from_json(v).map_err(|e| invalid(gun, role, format!("key {id}: {e}")))?;
        if key.id != **id {
            return Err(invalid(
                gun,
                role,
                format!("key listed as {id} has key ID {}", key.id),
            ));
        }
        out.insert((*id).clone(), key);
    }
    Ok(out)
}

/// TUF 5.x "threshold": counts distinct keys of the role whose signature over the canonical
/// JSON of `signed` verifies. Signatures by other keys, or that fail, do not count.
pub(super) fn check_signatures<T>(
    gun: &str,
    role: &str,
    env: &Envelope<T>,
    keys: &HashMap<String, PublicKey>,
    allowed: &[String],
    threshold: u32,
) -> Result<(), Error> {
    // Re-canonicalise rather than verify the served slice: Go HTML-escapes `<>&` in what it
    // serves but signs them raw (see samples/escaping).
    let msg = to_canonical(&env.signed_value).map_err(|e| invalid(gun, role, e.to_string()))?;
    let mut valid: Vec<&str> = Vec::new();
    for s in &env.signatures {
        if valid.contains(&s.keyid.as_str()) || !allowed.contains(&s.keyid) {
            continue;
        }
        if let Some(k) = keys.get(&s.keyid)
            && k.verify(&s.method, &msg, &s.sig).is_ok()
        {
            valid.push(&s.keyid);
        }
    }
    if valid.len() < threshold as usize {
        return Err(invalid(
            gun,
            role,
            format!(
                "{} valid signature(s) from its {} trusted key(s), threshold {threshold}",
                valid.len(),
                allowed.iter().filter(|k| keys.contains_key(*k)).count(),
            ),
        ));
    }
    Ok(())
}

/// The reason alone of an `Invalid` error, for wrapping it in a more specific one without
/// repeating "<role> of <GUN> is invalid".
pub(super) fn reason(e: Error) -> String {
    match e {
        Error::Invalid { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// TUF 5.x "freeze attack": refuse metadata whose `expires` is not after now.
pub(super) fn check_expiry<T: Common>(
    gun: &str,
    role: &str,
    signed: &T,
    now: OffsetDateTime,
) -> Result<(), Error> {
    if signed.expires() <= now {
        return Err(Error::Expired {
            gun: gun.to_string(),
            role: role.to_string(),
            expires: signed.expires(),
        });
    }
    Ok(())
}

/// TUF 5.x "rollback attack": a role's version never goes below the highest trusted.
pub(super) fn check_version<T: Common>(
    gun: &str,
    role: &str,
    signed: &T,
    seen: Option<u64>,
) -> Result<(), Error> {
    match seen {
        Some(seen) if signed.version() < seen => Err(Error::Rollback {
            gun: gun.to_string(),
            role: role.to_string(),
            got: signed.version(),
            seen,
        }),
        _ => Ok(()),
    }
}

/// The served bytes must match the length and every known hash the parent lists (notary's
/// `utils.CheckHashes`: sha256 and sha512, at least one of them present). This ties each file
/// to one publication, defeating mix-and-match and tampered files.
pub fn check_file_meta(
    gun: &str,
    role: &str,
    listed_by: &str,
    raw: &[u8],
    meta: &FileMeta,
) -> Result<(), Error> {
    let fail = |what: String| {
        invalid(
            gun,
            role,
            format!(
                "served file does not match {listed_by}'s record of it ({what}): mixed or tampered metadata"
            ),
        )
    };
    if raw.len() as u64 != meta.length {
        return Err(fail(format!("length {} != {}", raw.len(), meta.length)));
    }
    let mut checked = 0;
    for (alg, b64) in &meta.hashes {
        let actual = match alg.as_str() {
            "sha256" => Sha256::digest(raw).to_vec(),
            "sha512" => Sha512::digest(raw).to_vec(),
            _ => continue,
        };
        let expected = B64
            .decode(b64)
            .map_err(|_| fail(format!("{alg} is not base64")))?;
        if expected != actual {
            return Err(fail(format!("{alg} differs")));
        }
        checked += 1;
    }
    if checked == 0 {
        return Err(fail("no sha256 or sha512 listed".into()));
    }
    Ok(())
}

/// The checks every role but root gets, in one order, whatever its type `T`: the served bytes
/// match the parent's record when it has one (TUF 1.0 §5.5.2, §5.6.2: mix-and-match), the
/// envelope parses as a `T` (`_type` is signed, so a file of one role cannot pass as another),
/// a threshold of `signers` signs it (§5.4.2, §5.5.3, §5.6.3: arbitrary software), its version
/// is not below the highest trusted (§5.4.3, §5.5.5: rollback) and it has not expired (§5.4.4,
/// §5.5.6, §5.6.5: freeze).
fn load_role<T: Role>(
    gun: &str,
    role: &str,
    raw: &[u8],
    listed: Option<Listed<'_>>,
    signers: Signers<'_>,
    seen: Option<u64>,
    now: OffsetDateTime,
) -> Result<Envelope<T>, Error> {
    if let Some(l) = listed {
        check_file_meta(gun, role, l.by, raw, l.meta)?;
    }
    let env = parse::<T>(raw).map_err(|r| invalid(gun, role, r))?;
    let Signers {
        keys,
        ids,
        threshold,
    } = signers;
    check_signatures(gun, role, &env, keys, ids, threshold)?;
    check_version(gun, role, &env.signed, seen)?;
    check_expiry(gun, role, &env.signed, now)?;
    Ok(env)
}

/// Loads timestamp.json: signed by a threshold of the root's timestamp keys, not rolled back,
/// not expired, and naming a snapshot.
pub fn load_timestamp(
    gun: &str,
    raw: &[u8],
    root: &VerifiedRoot,
    seen: Option<u64>,
    now: OffsetDateTime,
) -> Result<Envelope<Timestamp>, Error> {
    let signers = root.signers(gun, "timestamp")?;
    let env = load_role::<Timestamp>(gun, "timestamp", raw, None, signers, seen, now)?;
    listed_in(gun, "snapshot", "timestamp", &env.signed.meta)?;
    Ok(env)
}

/// Loads the snapshot: its served bytes must match the timestamp's record, then signatures,
/// version, expiry; and root.json must match the snapshot's record of it when listed.
pub fn load_snapshot(
    gun: &str,
    raw: &[u8],
    root: &VerifiedRoot,
    timestamp: &Envelope<Timestamp>,
    seen: Option<u64>,
    now: OffsetDateTime,
) -> Result<Envelope<Snapshot>, Error> {
    let listed = listed_in(gun, "snapshot", "timestamp", &timestamp.signed.meta)?;
    let signers = root.signers(gun, "snapshot")?;
    let env = load_role::<Snapshot>(gun, "snapshot", raw, Some(listed), signers, seen, now)?;
    if let Some(m) = env.signed.meta.get("root") {
        check_file_meta(gun, "root", "snapshot", &root.env.raw, m)?;
    }
    Ok(env)
}

/// Loads the top-level targets: bytes match the snapshot's record, then signatures by the
/// root's targets keys, version, expiry.
pub fn load_targets(
    gun: &str,
    raw: &[u8],
    root: &VerifiedRoot,
    snapshot: &Envelope<Snapshot>,
    seen: Option<u64>,
    now: OffsetDateTime,
) -> Result<Envelope<Targets>, Error> {
    let listed = listed_in(gun, "targets", "snapshot", &snapshot.signed.meta)?;
    let signers = root.signers(gun, "targets")?;
    load_role::<Targets>(gun, "targets", raw, Some(listed), signers, seen, now)
}

/// A delegation as its parent defines it: keys, threshold and the effective `paths`.
#[derive(Debug, Clone)]
pub struct Delegation {
    pub name: String,
    pub keyids: Vec<String>,
    pub threshold: u32,
    pub keys: HashMap<String, PublicKey>,
    /// Target-name prefixes, already narrowed to those within the parent's paths.
    pub paths: Vec<String>,
}

impl Delegation {
    /// notary: a delegation signs only names under one of its path prefixes; others are
    /// ignored, not trusted.
    pub fn allows(&self, target: &str) -> bool {
        self.paths.iter().any(|p| target.starts_with(p.as_str()))
    }
}

/// The delegations a verified targets role defines. Roles that are not direct children of
/// `parent` are ignored (notary's delegation walk only follows `parent/child`), and a child's
/// paths are narrowed to those that lie within one of the parent's (notary `Restrict`).
pub fn child_delegations(
    gun: &str,
    parent: &str,
    parent_paths: &[String],
    signed: &Targets,
) -> Result<Vec<Delegation>, Error> {
    let mut out = Vec::new();
    for d in &signed.delegations.roles {
        if !is_direct_child(parent, &d.name) {
            tracing::warn!(gun, role = %d.name, parent, "ignoring delegation that is not a direct child of its parent");
            continue;
        }
        out.push(delegation(gun, parent, parent_paths, signed, d)?);
    }
    Ok(out)
}

fn is_direct_child(parent: &str, name: &str) -> bool {
    name.strip_prefix(parent)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|leaf| !leaf.is_empty() && !leaf.contains('/') && leaf != "." && leaf != "..")
}

fn delegation(
    gun: &str,
    parent: &str,
    parent_paths: &[String],
    signed: &Targets,
    d: &DelegatedRole,
) -> Result<Delegation, Error> {
    let wanted: Vec<&String> = d.keyids.iter().collect();
    let keys = parse_keys(gun, parent, &signed.delegations.keys, &wanted)?;
    let paths = d
        .paths
        .iter()
        .filter(|p| parent_paths.iter().any(|q| p.starts_with(q.as_str())))
        .cloned()
        .collect();
    Ok(Delegation {
        name: d.name.clone(),
        keyids: d.keyids.clone(),
        threshold: d.threshold,
        keys,
        paths,
    })
}

/// Loads a delegation file: bytes match the snapshot's record, signatures by a threshold of
/// the keys its parent delegated to it, version, expiry.
pub fn load_delegation(
    gun: &str,
    d: &Delegation,
    raw: &[u8],
    snapshot: &Envelope<Snapshot>,
    seen: Option<u64>,
    now: OffsetDateTime,
) -> Result<Envelope<Targets>, Error> {
    let meta = snapshot
        .signed
        .meta
        .get(&d.name)
        .ok_or_else(|| invalid(gun, &d.name, "not listed in the snapshot"))?;
    let listed = Listed {
        by: "snapshot",
        meta,
    };
    let signers = Signers {
        keys: &d.keys,
        ids: &d.keyids,
        threshold: d.threshold,
    };
    load_role::<Targets>(gun, &d.name, raw, Some(listed), signers, seen, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets_with(roles: serde_json::Value) -> Targets {
        serde_json::from_value(serde_json::json!({
            "_type": "Targets", "version": 1, "expires": "2030-01-01T00:00:00Z",
            "targets": {}, "delegations": {"keys": {}, "roles": roles}
        }))
        .unwrap()
    }

    #[test]
    fn only_direct_children_are_delegations() {
        assert!(is_direct_child("targets", "targets/releases"));
        assert!(is_direct_child("targets/role", "targets/role/foo"));
        assert!(!is_direct_child("targets", "targets/role/foo"));
        assert!(!is_direct_child("targets", "targetsx/a"));
        assert!(!is_direct_child("targets", "targets/"));
        assert!(!is_direct_child("targets", "targets/.."));
        let t = targets_with(serde_json::json!([
            {"name": "targets/a", "keyids": [], "threshold": 1, "paths": [""]},
            {"name": "targets/a/b", "keyids": [], "threshold": 1, "paths": [""]},
            {"name": "other", "keyids": [], "threshold": 1, "paths": [""]}
        ]));
        let ds = child_delegations("g", "targets", &[String::new()], &t).unwrap();
        assert_eq!(ds.len(), 1);
        assert_eq!(ds[0].name, "targets/a");
    }

    #[test]
    fn child_paths_are_narrowed_to_the_parents() {
        let t = targets_with(serde_json::json!([
            {"name": "targets/r/x", "keyids": [], "threshold": 1, "paths": ["edge/1", "v1", ""]}
        ]));
        let ds = child_delegations("g", "targets/r", &["edge".to_string()], &t).unwrap();
        assert_eq!(ds[0].paths, vec!["edge/1".to_string()]);
        assert!(ds[0].allows("edge/1.2"));
        assert!(!ds[0].allows("v1"));
        assert!(!ds[0].allows("edge/2"));
        let none = targets_with(serde_json::json!([
            {"name": "targets/n", "keyids": [], "threshold": 1}
        ]));
        let ds = child_delegations("g", "targets", &[String::new()], &none).unwrap();
        assert!(!ds[0].allows("anything"), "no paths means nothing");
    }

    #[test]
    fn file_meta_needs_a_known_hash_and_exact_length() {
        let raw = b"abc";
        let sha = B64.encode(Sha256::digest(raw));
        let meta = |len: u64, hashes: &[(&str, &str)]| FileMeta {
            length: len,
            hashes: hashes
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        };
        check_file_meta("g", "r", "p", raw, &meta(3, &[("sha256", &sha)])).unwrap();
        assert!(check_file_meta("g", "r", "p", raw, &meta(4, &[("sha256", &sha)])).is_err());
        assert!(check_file_meta("g", "r", "p", raw, &meta(3, &[("md5", "AA==")])).is_err());
        let other = B64.encode(Sha256::digest(b"abd"));
        assert!(check_file_meta("g", "r", "p", raw, &meta(3, &[("sha256", &other)])).is_err());
    }
}
