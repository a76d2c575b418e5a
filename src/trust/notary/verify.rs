//! The checks on each role, as plainly ordered functions over bytes already fetched:
//! [`load_root`], [`load_timestamp`], [`load_snapshot`], [`load_targets`], [`load_delegation`].
//!
//! Owns: signatures and thresholds, key IDs, root certificates and trust pinning, root
//! rotation, expiry, version rollback, and the length/hash links snapshot -> timestamp and
//! targets/delegations -> snapshot. It does no I/O: `update` fetches and calls these in
//! order. The rules follow notary 0.7 (`tuf/signed/verify.go`, `trustpinning/certs.go`,
//! `client/tufclient.go`) and cite the TUF section where one applies.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest as _, Sha256, Sha512};
use time::{Duration, OffsetDateTime};

use super::canonical::to_canonical;
use super::error::{Error, invalid};
use super::keys::PublicKey;
use super::metadata::{
    Common, DelegatedRole, Envelope, FileMeta, Role, Root, Snapshot, Targets, Timestamp, parse,
};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

/// How a root is anchored besides a previously trusted root (notary's `trust_pinning`).
#[derive(Debug, Clone)]
pub enum RootAnchor {
    /// `trust_pinning.certs`: a root certificate's key ID (as listed in root.json, or its
    /// canonical public-key ID) must be one of these.
    KeyIds(Vec<String>),
    /// `trust_pinning.ca`: the root certificate must be issued by one of these CA certs (DER).
    Ca(Vec<Vec<u8>>),
    /// `trust_pinning.tofu`: trust the first root seen; later roots only by rotation.
    Tofu,
    /// Nothing configured: only a previously trusted root can vouch for a new one.
    Refuse,
}

/// A root that passed [`load_root`], with its keys parsed and ID-checked.
#[derive(Debug, Clone)]
pub struct VerifiedRoot {
    pub env: Envelope<Root>,
    pub keys: HashMap<String, PublicKey>,
}

impl VerifiedRoot {
    fn role(&self, gun: &str, role: &str) -> Result<(&[String], u32), Error> {
        let r = self.env.signed.roles.get(role).ok_or_else(|| {
            invalid(
                gun,
                "root",
                format!("root.json does not define the {role} role"),
            )
        })?;
        Ok((&r.keyids, r.threshold))
    }

    /// Who must sign the top-level `role`: the keys and threshold root.json names for it.
    fn signers(&self, gun: &str, role: &str) -> Result<Signers<'_>, Error> {
        let (ids, threshold) = self.role(gun, role)?;
        Ok(Signers {
            keys: &self.keys,
            ids,
            threshold,
        })
    }
}

/// Who must sign a role: a threshold of these key IDs, resolved in `keys`.
#[derive(Debug, Clone, Copy)]
pub struct Signers<'a> {
    pub keys: &'a HashMap<String, PublicKey>,
    pub ids: &'a [String],
    pub threshold: u32,
}

/// Where a role's bytes are recorded: the parent role that lists them, and its record.
#[derive(Debug, Clone, Copy)]
pub struct Listed<'a> {
    pub by: &'a str,
    pub meta: &'a FileMeta,
}

/// `role`'s record in the `meta` of `listed_by` (the timestamp lists the snapshot, the
/// snapshot lists targets and delegations).
pub fn listed_in<'a>(
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
fn parse_keys(
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
fn check_signatures<T>(
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
fn reason(e: Error) -> String {
    match e {
        Error::Invalid { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// TUF 5.x "freeze attack": refuse metadata whose `expires` is not after now.
fn check_expiry<T: Common>(
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
fn check_version<T: Common>(
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

/// Why a root certificate key cannot vouch for `gun`, or `None` if it can (notary's
/// `validRootLeafCerts` + `utils.ValidateCertificate`). `now = None` skips the validity window,
/// as notary does for the previously trusted root during rotation.
fn root_cert_problem(gun: &str, key: &PublicKey, now: Option<OffsetDateTime>) -> Option<String> {
    let Some(cert) = &key.cert else {
        return Some(format!("key {} is not a certificate", key.id));
    };
    let cn = cert.common_name.as_deref().unwrap_or("");
    // notary: the CN equals the GUN, or is a `prefix*` wildcard covering it.
    let cn_ok = cn == gun || cn.strip_suffix('*').is_some_and(|p| gun.starts_with(p));
    if !cn_ok {
        return Some(format!("certificate CN {cn:?} is not the GUN"));
    }
    if cert.sha1_signed {
        return Some("certificate is signed with SHA-1".into());
    }
    if let Some(now) = now {
        // notary allows NotBefore up to a day ahead (clock skew) and refuses once NotAfter is
        // past, whatever root.json's own `expires` says.
        if cert.not_before > now + Duration::days(1) || now > cert.not_after {
            return Some(format!(
                "certificate is valid only {} .. {}",
                super::error::fmt_time(cert.not_before),
                super::error::fmt_time(cert.not_after)
            ));
        }
    }
    None
}

/// A root trusted earlier (from the state directory): parsed, keys ID-checked, no other
/// checks, since it already passed [`load_root`] when it was stored. Like notary, the old
/// root's certificates are not expiry-checked when they vouch for a new root.
pub fn trusted_root(gun: &str, raw: &[u8]) -> Result<VerifiedRoot, Error> {
    let env = parse::<Root>(raw).map_err(|r| invalid(gun, "root", r))?;
    let all: Vec<&String> = env.signed.keys.keys().collect();
    let keys = parse_keys(gun, "root", &env.signed.keys, &all)?;
    Ok(VerifiedRoot { env, keys })
}

/// Where a root stands in an update (TUF 1.0 §5.3 "Update the root role").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootStep {
    /// `<version>.root.json` between the trusted root and the current one, which must carry
    /// exactly this version. It only vouches for the next root, so neither its `expires`
    /// (§5.3.6) nor its certificates' validity window is checked: like the previously trusted
    /// root, it may have lapsed while a node was offline.
    Intermediate(u64),
    /// The root the update goes on with: every check, expiry included (§5.3.10).
    Final,
}

/// Loads root.json: certificate checks, rotation from `prev`, trust pinning, self-signature,
/// version and expiry (notary `trustpinning.ValidateRoot`, then the TUF client's checks).
pub fn load_root(
    gun: &str,
    raw: &[u8],
    prev: Option<&VerifiedRoot>,
    anchor: &RootAnchor,
    now: OffsetDateTime,
) -> Result<VerifiedRoot, Error> {
    load_root_step(gun, raw, prev, anchor, now, RootStep::Final)
}

/// Loads one root of a chain (see [`RootStep`]); [`load_root`] is the final step.
pub fn load_root_step(
    gun: &str,
    raw: &[u8],
    prev: Option<&VerifiedRoot>,
    anchor: &RootAnchor,
    now: OffsetDateTime,
    step: RootStep,
) -> Result<VerifiedRoot, Error> {
    let env = parse::<Root>(raw).map_err(|r| invalid(gun, "root", r))?;
    let all: Vec<&String> = env.signed.keys.keys().collect();
    let keys = parse_keys(gun, "root", &env.signed.keys, &all)?;
    let root = VerifiedRoot { env, keys };
    let (_, threshold) = root.role(gun, "root")?;
    for role in ["timestamp", "snapshot", "targets"] {
        root.role(gun, role)?;
    }
    let version = root.env.signed.version;
    if let RootStep::Intermediate(expected) = step
        && version != expected
    {
        // TUF 1.0 §5.3.5 (rollback): the root after version N is precisely N+1, so a server
        // cannot skip a version (and the rotation it carries) or replay an older one.
        return Err(invalid(
            gun,
            "root",
            format!(
                "{expected}.root.json holds root version {version}, not {expected}: root versions must be consecutive"
            ),
        ));
    }
    let cert_now = match step {
        RootStep::Final => Some(now),
        RootStep::Intermediate(_) => None,
    };
    let certs = valid_root_certs(gun, &root, cert_now)?;
    if let Some(prev) = prev {
        check_rotation(gun, &root, prev)?;
    }
    let pinned = pinned_certs(gun, &certs, anchor, prev.is_some(), now)?;
    // TUF 1.0 §5.3.4 (2): a threshold of the new root's own root keys (those that pass trust
    // pinning, as notary requires) signs it.
    check_signatures(gun, "root", &root.env, &root.keys, &pinned, threshold).map_err(|e| {
        invalid(
            gun,
            "root",
            format!(
                "signature threshold of its own root keys not met ({})",
                reason(e)
            ),
        )
    })?;
    if step == RootStep::Final {
        // TUF 1.0 §5.3.10 (freeze attack): only the final root must not have expired.
        check_expiry(gun, "root", &root.env.signed, now)?;
    }
    Ok(root)
}

/// The root-role certificates of `root` that may sign for `gun` (at `now`, or whenever when
/// `None`); refuses the root when there are none.
fn valid_root_certs<'r>(
    gun: &str,
    root: &'r VerifiedRoot,
    now: Option<OffsetDateTime>,
) -> Result<Vec<&'r PublicKey>, Error> {
    let (root_ids, _) = root.role(gun, "root")?;
    let mut problems = Vec::new();
    let mut certs: Vec<&PublicKey> = Vec::new();
    for id in root_ids {
        match root.keys.get(id) {
            None => problems.push(format!("key {id} is not in keys")),
            Some(k) => match root_cert_problem(gun, k, now) {
                Some(p) => problems.push(p),
                None => certs.push(k),
            },
        }
    }
    if certs.is_empty() {
        return Err(invalid(
            gun,
            "root",
            format!(
                "no root certificate is valid for this GUN now: {}",
                problems.join("; ")
            ),
        ));
    }
    Ok(certs)
}

/// TUF 1.0 §5.3.4 (1), "arbitrary software attack": the new root must be signed by a threshold
/// of the keys the trusted root (version N) names for the root role; and §5.3.5: its version
/// is not below N. notary does not re-check the old certificates' expiry here. Same bytes pass
/// trivially.
fn check_rotation(gun: &str, root: &VerifiedRoot, prev: &VerifiedRoot) -> Result<(), Error> {
    check_version(gun, "root", &root.env.signed, Some(prev.env.signed.version))?;
    let (old_ids, old_threshold) = prev.role(gun, "root")?;
    let old_ok: Vec<String> = old_ids
        .iter()
        .filter(|id| {
            prev.keys
                .get(*id)
                .is_some_and(|k| root_cert_problem(gun, k, None).is_none())
        })
        .cloned()
        .collect();
    check_signatures(gun, "root", &root.env, &prev.keys, &old_ok, old_threshold).map_err(|e| {
        invalid(
            gun,
            "root",
            format!(
                "signature threshold of root version {} not met by root version {} ({}): root rotation refused",
                prev.env.signed.version,
                root.env.signed.version,
                reason(e)
            ),
        )
    })
}

/// Trust pinning applies to every root, first, rotated or intermediate (notary checks it
/// regardless): the IDs of the certificates that match the configured anchor.
fn pinned_certs(
    gun: &str,
    certs: &[&PublicKey],
    anchor: &RootAnchor,
    has_prev: bool,
    now: OffsetDateTime,
) -> Result<Vec<String>, Error> {
    let pinned: Vec<String> = match anchor {
        RootAnchor::KeyIds(ids) => certs
            .iter()
            .filter(|k| ids.contains(&k.id) || ids.contains(&k.canonical_id()))
            .map(|k| k.id.clone())
            .collect(),
        RootAnchor::Ca(cas) => certs
            .iter()
            .filter(|k| {
                k.cert
                    .as_ref()
                    .is_some_and(|c| super::keys::issued_by(&c.der_chain, cas, now))
            })
            .map(|k| k.id.clone())
            .collect(),
        RootAnchor::Tofu => certs.iter().map(|k| k.id.clone()).collect(),
        RootAnchor::Refuse if has_prev => certs.iter().map(|k| k.id.clone()).collect(),
        RootAnchor::Refuse => {
            let offered: Vec<String> = certs.iter().map(|k| k.canonical_id()).collect();
            return Err(Error::NoRootOfTrust(format!(
                "no root of trust for {gun}: pin its root key with trust_pinning.certs.\"{gun}\" = [\"<root key ID>\"] \
                 (the server offers {}; check it out of band), or pin a CA with trust_pinning.ca, \
                 or allow trust on first use with trust_pinning.tofu = true",
                offered.join(", ")
            )));
        }
    };
    if pinned.is_empty() {
        let offered: Vec<String> = certs.iter().map(|k| k.canonical_id()).collect();
        return Err(invalid(
            gun,
            "root",
            format!(
                "no root certificate matches trust_pinning (root keys offered: {})",
                offered.join(", ")
            ),
        ));
    }
    Ok(pinned)
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
