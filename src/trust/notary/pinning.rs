//! The root of trust for a GUN, from `trust_pinning` (notary's `trustpinning.NewTrustPinChecker`).
//!
//! Order, as notary: an exact `certs` entry for the GUN, else the longest `prefix*` wildcard
//! `certs` entry, else the longest `ca` GUN prefix, else TOFU if enabled, else refuse.

use crate::config::TrustPinning;

use super::error::Error;
use super::verify::RootAnchor;

/// The anchor for `gun`. A CA bundle that cannot be read or holds no certificate is an error
/// (never a silent fall-through to TOFU).
pub fn anchor_for(gun: &str, pinning: &TrustPinning) -> Result<RootAnchor, Error> {
    if let Some(ids) = pinning.certs.get(gun) {
        return Ok(RootAnchor::KeyIds(ids.clone()));
    }
    let wildcard = pinning
        .certs
        .iter()
        .filter_map(|(k, v)| k.strip_suffix('*').map(|p| (p, v)))
        .filter(|(p, _)| gun.starts_with(p))
        .max_by_key(|(p, _)| p.len());
    if let Some((_, ids)) = wildcard {
        return Ok(RootAnchor::KeyIds(ids.clone()));
    }
    let ca = pinning
        .ca
        .iter()
        .filter(|(prefix, _)| gun.starts_with(prefix.as_str()))
        .max_by_key(|(prefix, _)| prefix.len());
    if let Some((_, path)) = ca {
        let bad = |why: String| {
            Error::NoRootOfTrust(format!(
                "trust_pinning.ca for {gun}: {} {why}",
                path.display()
            ))
        };
        let pem = std::fs::read(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
        let mut ders = Vec::new();
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            ders.push(cert.map_err(|e| bad(format!("is not PEM: {e}")))?.to_vec());
        }
        if ders.is_empty() {
            return Err(bad("holds no certificate".into()));
        }
        return Ok(RootAnchor::Ca(ders));
    }
    Ok(if pinning.tofu {
        RootAnchor::Tofu
    } else {
        RootAnchor::Refuse
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_beats_wildcard_beats_ca_beats_tofu() {
        let mut p = TrustPinning {
            tofu: true,
            ..TrustPinning::default()
        };
        assert!(matches!(anchor_for("a/b", &p).unwrap(), RootAnchor::Tofu));
        p.ca.insert("a/".into(), "/nonexistent/ca.pem".into());
        let e = anchor_for("a/b", &p).unwrap_err();
        assert!(e.to_string().contains("cannot be read"), "{e}");
        p.certs.insert("a/*".into(), vec!["w".into()]);
        p.certs.insert("a/b*".into(), vec!["longer".into()]);
        assert!(
            matches!(anchor_for("a/bc", &p).unwrap(), RootAnchor::KeyIds(ids) if ids == ["longer"])
        );
        p.certs.insert("a/bc".into(), vec!["exact".into()]);
        assert!(
            matches!(anchor_for("a/bc", &p).unwrap(), RootAnchor::KeyIds(ids) if ids == ["exact"])
        );
        p.tofu = false;
        assert!(matches!(anchor_for("z", &p).unwrap(), RootAnchor::Refuse));
    }
}
