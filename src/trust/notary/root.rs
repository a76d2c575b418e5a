//! The root of trust: checks on root.json (certificates for the GUN, trust pinning, rotation
//! from a trusted root, self-signature, expiry) and the roots a chain walk passes through.
//!
//! Owns: [`RootAnchor`], [`VerifiedRoot`], [`load_root`] / [`load_root_step`] and
//! [`trusted_root`]. The generic signature, version and expiry checks are `verify`'s; the
//! fetching of a chain is `chain`'s. The rules follow notary 0.7 (`trustpinning/certs.go`
//! `ValidateRoot`) and TUF 1.0 §5.3 "Update the root role".

use std::collections::HashMap;

use time::{Duration, OffsetDateTime};

use super::error::{Error, invalid};
use super::keys::PublicKey;
use super::metadata::{Envelope, Root, parse};
use super::verify::{Signers, check_expiry, check_signatures, check_version, parse_keys, reason};

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
    pub(super) fn signers(&self, gun: &str, role: &str) -> Result<Signers<'_>, Error> {
        let (ids, threshold) = self.role(gun, role)?;
        Ok(Signers {
            keys: &self.keys,
            ids,
            threshold,
        })
    }
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
    // Parsed and key IDs checked as a stored root is; every other check follows.
    let root = trusted_root(gun, raw)?;
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
                "no root certificate is valid for this GUN{}: {}",
                if now.is_some() { " now" } else { "" },
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
