//! RFC 3161 time-stamp tokens: the CMS `SignedData` a time-stamping authority (TSA) returns,
//! checked as far as the token itself allows: its `TSTInfo` (RFC 3161 2.4.2) stamps exactly
//! the given bytes, and the TSA's signature over the signed attributes verifies with the
//! certificate the `signing-certificate-v2` attribute names (RFC 5035, which RFC 5816 makes
//! the way a TSA identifies its certificate). Which TSA is trusted is the caller's business:
//! the token carries certificates, none of them trusted by being there; [`Stamp`] hands back
//! the signer and the carried certificates for the caller to chain to its own anchors.
//!
//! sigstore-tsa (already in the tree through sigstore-verify) does this for Sigstore's
//! trusted roots, but only for ECDSA TSAs whose leaf is pinned in advance; Notation's TSAs
//! (GlobalSign, DigiCert, Microsoft) sign with RSA and are trusted by their root. So this is
//! our own, on RustCrypto's `cms` (ASN.1 only) and aws-lc-rs (the math).
//!
//! `asn1`: the RFC 3161 / RFC 5035 models and `genTime`; `signed`: the CMS signer, its
//! signed attributes and its signature.

mod asn1;
mod signed;

use signed::{carried_certificates, check_signed_attributes, find_signer, verify_signature};

use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use aws_lc_rs::digest;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerInfo};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};

use asn1::{
    BASELINE_POLICY, ID_CT_TST_INFO, ID_SIGNED_DATA, MessageImprint, SHA256, SHA384, SHA512,
    TstInfo, generalized_time,
};

/// Largest token accepted (real ones are 2-7 KiB with their certificates).
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// A token whose integrity and TSA signature verified; nothing about who the TSA is.
#[derive(Debug, Clone)]
pub struct Stamp {
    /// `genTime`.
    pub time: SystemTime,
    /// `genTime` minus and plus the accuracy (RFC 3161 2.4.2; 1 s under the baseline
    /// policy when no accuracy is given, 0 otherwise, as Notation's spec says).
    pub lower: SystemTime,
    pub upper: SystemTime,
    /// DER of the certificate that signed the token.
    pub signer: Vec<u8>,
    /// DER of every certificate the token carries (the signer among them), untrusted.
    pub certs: Vec<Vec<u8>>,
    /// The TSA policy OID and serial number, for evidence.
    pub policy: String,
    pub serial: String,
}

/// Checks `token` (a DER `TimeStampToken`, i.e. CMS `ContentInfo`) stamps `message`, and
/// that the TSA's signature verifies with the certificate the token names. Every `Err` says
/// which check failed.
pub fn verify(token: &[u8], message: &[u8]) -> anyhow::Result<Stamp> {
    if token.len() > MAX_TOKEN_BYTES {
        bail!(
            "the timestamp token is {} bytes (at most {MAX_TOKEN_BYTES})",
            token.len()
        );
    }
    let info = ContentInfo::from_der(token).context("the timestamp token is not CMS")?;
    if info.content_type != ID_SIGNED_DATA {
        bail!(
            "the timestamp token's content type is {}, not SignedData",
            info.content_type
        );
    }
    let sd: SignedData = info
        .content
        .decode_as()
        .context("the timestamp token's SignedData is malformed")?;
    if sd.encap_content_info.econtent_type != ID_CT_TST_INFO {
        bail!(
            "the timestamp token encapsulates {}, not id-ct-TSTInfo",
            sd.encap_content_info.econtent_type
        );
    }
    let econtent = sd
        .encap_content_info
        .econtent
        .as_ref()
        .context("the timestamp token carries no TSTInfo")?;
    let tst_der = OctetString::from_der(&econtent.to_der()?)
        .context("the TSTInfo is not wrapped in an OCTET STRING")?
        .into_bytes();
    let tst = TstInfo::from_der(&tst_der).context("the TSTInfo is malformed")?;
    if tst.version != 1 {
        bail!("TSTInfo version {} (only 1 exists)", tst.version);
    }
    // Read before anything is judged: a TSTInfo missing genTime must not get further.
    let time = generalized_time(&tst.gen_time).context("the TSTInfo is malformed")?;
    check_imprint(&tst.message_imprint, message)?;

    let certs = carried_certificates(&sd)?;
    // RFC 3161 2.4.1: exactly one signer, the TSA.
    let signer_infos: Vec<&SignerInfo> = sd.signer_infos.0.iter().collect();
    let [si] = signer_infos.as_slice() else {
        bail!(
            "the timestamp token has {} signers (exactly one expected)",
            signer_infos.len()
        );
    };
    let signer = find_signer(&si.sid, &certs)?;
    check_signed_attributes(si, &tst_der, &signer)?;
    verify_signature(si, &signer)?;

    let accuracy = match &tst.accuracy {
        Some(a) => {
            Duration::from_secs(a.seconds.unwrap_or(0).into())
                + Duration::from_millis(a.millis.unwrap_or(0).into())
                + Duration::from_micros(a.micros.unwrap_or(0).into())
        }
        None if tst.policy == BASELINE_POLICY => Duration::from_secs(1),
        None => Duration::ZERO,
    };
    let lower = time
        .checked_sub(accuracy)
        .context("timestamp accuracy reaches before 1970")?;
    let upper = time
        .checked_add(accuracy)
        .context("timestamp accuracy overflows")?;
    Ok(Stamp {
        time,
        lower,
        upper,
        signer: signer.der,
        certs: certs.into_iter().map(|c| c.der).collect(),
        policy: tst.policy.to_string(),
        serial: hex::encode(tst.serial_number.as_bytes()),
    })
}

pub(super) fn hash(alg: &ObjectIdentifier, data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let a = if *alg == SHA256 {
        &digest::SHA256
    } else if *alg == SHA384 {
        &digest::SHA384
    } else if *alg == SHA512 {
        &digest::SHA512
    } else {
        // SHA-1 and MD5 included: refused as everywhere else in the trust code.
        bail!("hash algorithm {alg} is not SHA-256, SHA-384 or SHA-512");
    };
    Ok(digest::digest(a, data).as_ref().to_vec())
}

fn check_imprint(mi: &MessageImprint, message: &[u8]) -> anyhow::Result<()> {
    let want = hash(&mi.hash_algorithm.oid, message).context("the timestamp's message imprint")?;
    if want != mi.hashed_message.as_bytes() {
        bail!("the timestamp is over other bytes than this signature (message imprint mismatch)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused_with_a_reason() {
        let e = verify(b"not a token", b"sig").unwrap_err();
        assert!(format!("{e:#}").contains("not CMS"), "{e:#}");
        let e = verify(&vec![0u8; MAX_TOKEN_BYTES + 1], b"sig").unwrap_err();
        assert!(format!("{e:#}").contains("at most"), "{e:#}");
    }
}
