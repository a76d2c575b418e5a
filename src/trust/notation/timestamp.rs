//! The timestamp countersignature step of "Validate Authentic Timestamp"
//! (`trust-store-trust-policy.md`): the envelope's RFC 3161 token stamps this signature's
//! bytes, its TSA chains to a certificate of the statement's `tsa` stores and meets the
//! timestamping certificate requirements at the stamped time, and the stamped time range
//! lies inside every signing certificate's validity. Token parsing and the TSA's own
//! signature are [`crate::trust::rfc3161`]'s.

use std::time::SystemTime;

use anyhow::{Context, anyhow, bail};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::certs::{MAX_CHAIN_LEN, Purpose, revocation_locations, valid_at, validate_chain_for};
use super::crypto::verify_cert_signature;
use super::envelope::Envelope;
use super::policy::{Action, Statement, StoreType};
use super::store::TrustStore;
use crate::trust::rfc3161;

/// Verifies the countersignature and returns a line for the evidence.
pub fn verify(
    store: &TrustStore,
    st: &Statement,
    env: &Envelope,
    chain: &[X509Certificate<'_>],
) -> anyhow::Result<String> {
    let token = env
        .timestamp_token
        .as_deref()
        .filter(|t| !t.is_empty())
        .context("no timestamp countersignature was found in the signature envelope")?;
    // The TSA stamped the primitive signature's bytes (signature spec, "Timestamp
    // Signature"): the JWS signature decoded, the COSE_Sign1 signature field.
    let stamp = rfc3161::verify(token, &env.signature).context("the timestamp countersignature")?;

    let anchors: Vec<(&[u8], String)> = st
        .stores
        .iter()
        .filter(|(t, _)| *t == StoreType::Tsa)
        .flat_map(|(_, name)| {
            store
                .certs(StoreType::Tsa, name)
                .iter()
                .map(move |c| (c.der.as_slice(), format!("tsa:{name} ({})", c.file)))
        })
        .collect();
    if anchors.is_empty() {
        bail!(
            "statement {:?} names tsa stores holding no certificate",
            st.name
        );
    }
    let (tsa_chain, anchor) = chain_to_anchor(&stamp, &anchors)?;
    let tsa: Vec<X509Certificate<'_>> = tsa_chain
        .iter()
        .map(|der| {
            X509Certificate::from_der(der)
                .map(|(_, c)| c)
                .map_err(|e| anyhow!("timestamping certificate: {e}"))
        })
        .collect::<anyhow::Result<_>>()?;
    validate_chain_for(&tsa, Purpose::Timestamping).context("the timestamping chain")?;
    for c in &tsa {
        if !valid_at(c, stamp.time) {
            bail!(
                "timestamping certificate {} was not valid at the stamped time {}",
                c.subject(),
                humantime::format_rfc3339_seconds(stamp.time)
            );
        }
    }
    tsa_revocation(st, &tsa)?;

    // The whole range genTime ± accuracy must lie inside each signing certificate's
    // validity: the signature was made at some instant in it.
    for c in chain {
        if !(valid_at(c, stamp.lower) && valid_at(c, stamp.upper)) {
            bail!(
                "the timestamp ({} to {}) is not within certificate {}'s validity ({} to {})",
                humantime::format_rfc3339_seconds(stamp.lower),
                humantime::format_rfc3339_seconds(stamp.upper),
                c.subject(),
                c.validity().not_before,
                c.validity().not_after
            );
        }
    }
    Ok(format!(
        "{} by {} (anchor {anchor}, serial {})",
        humantime::format_rfc3339_seconds(stamp.time),
        tsa[0].subject(),
        stamp.serial
    ))
}

/// The token's signer, then issuers found among the token's certificates and the anchors
/// (each link's signature checked), until a certificate that is byte-for-byte an anchor.
/// The token's certificates are hints: only the anchor is trusted.
fn chain_to_anchor(
    stamp: &rfc3161::Stamp,
    anchors: &[(&[u8], String)],
) -> anyhow::Result<(Vec<Vec<u8>>, String)> {
    let mut chain = vec![stamp.signer.clone()];
    loop {
        let current = chain.last().context("empty chain")?.clone();
        if let Some((_, label)) = anchors.iter().find(|(a, _)| *a == current.as_slice()) {
            return Ok((chain, label.clone()));
        }
        if chain.len() >= MAX_CHAIN_LEN {
            bail!("the timestamping chain is longer than {MAX_CHAIN_LEN} certificates");
        }
        let (_, cert) = X509Certificate::from_der(&current)
            .map_err(|e| anyhow!("timestamping certificate: {e}"))?;
        let candidates = anchors
            .iter()
            .map(|(a, _)| *a)
            .chain(stamp.certs.iter().map(Vec::as_slice));
        let mut issuer = None;
        for der in candidates {
            if der == current.as_slice() {
                continue;
            }
            let Ok((_, c)) = X509Certificate::from_der(der) else {
                continue;
            };
            if c.subject().as_raw() == cert.issuer().as_raw()
                && verify_cert_signature(&cert, &c).is_ok()
            {
                issuer = Some(der.to_vec());
                break;
            }
        }
        match issuer {
            Some(i) if !chain.contains(&i) => chain.push(i),
            _ => bail!(
                "the timestamping certificate chain ({}) does not lead to a certificate of the tsa stores {}",
                chain_names(&chain),
                anchors
                    .iter()
                    .map(|(_, l)| l.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

fn chain_names(chain: &[Vec<u8>]) -> String {
    chain
        .iter()
        .map(|d| {
            X509Certificate::from_der(d)
                .map(|(_, c)| c.subject().to_string())
                .unwrap_or_else(|_| "?".to_owned())
        })
        .collect::<Vec<_>>()
        .join(" <- ")
}

/// The spec checks the TSA chain's revocation status as part of this step. Portcullis fetches
/// no CRL or OCSP, so it applies the statement's `revocation` action to the TSA chain too:
/// enforced, a chain naming revocation locations cannot be accepted; `log` or `skip` (the
/// operator's explicit choice) accepts it, logged.
fn tsa_revocation(st: &Statement, tsa: &[X509Certificate<'_>]) -> anyhow::Result<()> {
    let locations = revocation_locations(tsa);
    if locations.is_empty() {
        return Ok(());
    }
    match st.actions.revocation {
        Action::Enforce => bail!(
            "the timestamping chain's revocation status cannot be determined ({}): Portcullis does not fetch CRLs or OCSP; set override.revocation to \"log\" or \"skip\" in statement {:?} to accept it without a revocation check",
            locations.join("; "),
            st.name
        ),
        Action::Log | Action::Skip => {
            tracing::warn!(
                statement = %st.name,
                "Notation timestamp accepted without a revocation check of the TSA chain ({}): revocation is not enforced in this statement",
                locations.join("; ")
            );
            Ok(())
        }
    }
}

/// Whether a signature's timestamp must be checked, per the spec's "sufficient and
/// necessary conditions" (the step's action and the scheme are the caller's).
pub fn triggered(st: &Statement, chain: &[X509Certificate<'_>], now: SystemTime) -> bool {
    use super::policy::VerifyTimestamp;
    st.has_store(StoreType::Tsa)
        && (st.verify_timestamp == VerifyTimestamp::Always || chain.iter().any(|c| expired(c, now)))
}

/// notation-go's "expired": the verification time is after `notAfter` (a certificate not
/// yet valid is not expired, and fails the validity check instead).
fn expired(c: &X509Certificate<'_>, now: SystemTime) -> bool {
    now.duration_since(SystemTime::UNIX_EPOCH)
        .is_ok_and(|d| d.as_secs() as i64 > c.validity().not_after.timestamp())
}
