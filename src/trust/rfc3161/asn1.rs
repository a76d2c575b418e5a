//! The ASN.1 a time-stamp token is made of (RFC 3161's module uses IMPLICIT tags; RFC 5035
//! for the signer's certificate), as RustCrypto `der` models, and `genTime`.

use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow, bail};
use der::asn1::{Any, Int, ObjectIdentifier, OctetString};
use der::{Sequence, Tag, Tagged};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::spki::AlgorithmIdentifierOwned;

pub(super) const ID_SIGNED_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
pub(super) const ID_CT_TST_INFO: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
pub(super) const ID_CONTENT_TYPE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
pub(super) const ID_MESSAGE_DIGEST: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
pub(super) const ID_SIGNING_CERT_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
/// RFC 3628's baseline time-stamp policy: without an explicit accuracy it means 1 s.
pub(super) const BASELINE_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.2023.1.1");
pub(super) const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
pub(super) const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
pub(super) const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// RFC 3161 `MessageImprint`.
#[derive(Clone, Debug, Sequence)]
pub(super) struct MessageImprint {
    pub(super) hash_algorithm: AlgorithmIdentifierOwned,
    pub(super) hashed_message: OctetString,
}

/// RFC 3161 `Accuracy` (the module uses IMPLICIT tags).
#[derive(Clone, Debug, Sequence)]
pub(super) struct Accuracy {
    #[asn1(optional = "true")]
    pub(super) seconds: Option<u32>,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub(super) millis: Option<u32>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub(super) micros: Option<u32>,
}

fn default_false() -> bool {
    false
}

/// RFC 3161 `TSTInfo`. `genTime` is kept raw: TSAs send fractional seconds, which der's
/// `GeneralizedTime` refuses.
#[derive(Clone, Debug, Sequence)]
pub(super) struct TstInfo {
    pub(super) version: u8,
    pub(super) policy: ObjectIdentifier,
    pub(super) message_imprint: MessageImprint,
    pub(super) serial_number: Int,
    pub(super) gen_time: Any,
    #[asn1(optional = "true")]
    pub(super) accuracy: Option<Accuracy>,
    #[asn1(default = "default_false")]
    pub(super) ordering: bool,
    #[asn1(optional = "true")]
    pub(super) nonce: Option<Int>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub(super) tsa: Option<GeneralName>,
    #[asn1(
        context_specific = "1",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub(super) extensions: Option<x509_cert::ext::Extensions>,
}

/// RFC 5035 `IssuerSerial`.
#[derive(Clone, Debug, Sequence)]
pub(super) struct IssuerSerial {
    pub(super) issuer: Vec<GeneralName>,
    pub(super) serial_number: Int,
}

/// RFC 5035 `ESSCertIDv2` (hash algorithm DEFAULT SHA-256).
#[derive(Clone, Debug, Sequence)]
pub(super) struct EssCertIdV2 {
    #[asn1(optional = "true")]
    pub(super) hash_algorithm: Option<AlgorithmIdentifierOwned>,
    pub(super) cert_hash: OctetString,
    #[asn1(optional = "true")]
    pub(super) issuer_serial: Option<IssuerSerial>,
}

/// RFC 5035 `SigningCertificateV2` (the policies are not used).
#[derive(Clone, Debug, Sequence)]
pub(super) struct SigningCertificateV2 {
    pub(super) certs: Vec<EssCertIdV2>,
    #[asn1(optional = "true")]
    pub(super) policies: Option<Any>,
}

/// `YYYYMMDDHHMMSS[.f+]Z` (RFC 3161 2.4.2: UTC, fractions allowed, no trailing zeros).
pub(super) fn generalized_time(any: &Any) -> anyhow::Result<SystemTime> {
    if any.tag() != Tag::GeneralizedTime {
        bail!("TSTInfo genTime is not a GeneralizedTime");
    }
    let s = std::str::from_utf8(any.value()).context("TSTInfo genTime is not ASCII")?;
    let body = s
        .strip_suffix('Z')
        .with_context(|| format!("TSTInfo genTime {s:?} is not UTC (no trailing Z)"))?;
    let (whole, frac) = match body.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (body, None),
    };
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        bail!("TSTInfo genTime {s:?} is not YYYYMMDDHHMMSS");
    }
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &whole[0..4],
        &whole[4..6],
        &whole[6..8],
        &whole[8..10],
        &whole[10..12],
        &whole[12..14]
    );
    let mut t =
        humantime::parse_rfc3339(&rfc3339).map_err(|e| anyhow!("TSTInfo genTime {s:?}: {e}"))?;
    if let Some(f) = frac {
        if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) {
            bail!("TSTInfo genTime {s:?} has a malformed fraction");
        }
        let nanos: u32 = format!("{f:0<9}").parse()?;
        t += Duration::from_nanos(nanos.into());
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any_time(s: &str) -> Any {
        Any::new(Tag::GeneralizedTime, s.as_bytes()).unwrap()
    }

    #[test]
    fn generalized_time_with_and_without_fractions() {
        let t = generalized_time(&any_time("20240618062937Z")).unwrap();
        assert_eq!(
            humantime::format_rfc3339_seconds(t).to_string(),
            "2024-06-18T06:29:37Z"
        );
        let f = generalized_time(&any_time("20240618062937.25Z")).unwrap();
        assert_eq!(f.duration_since(t).unwrap(), Duration::from_millis(250));
        for bad in [
            "20240618062937",
            "2024061806293Z",
            "20240618062937.Z",
            "20240618062937+0100",
            "20241318062937Z",
        ] {
            assert!(generalized_time(&any_time(bad)).is_err(), "{bad}");
        }
        let utc = Any::new(Tag::UtcTime, b"240618062937Z".as_slice()).unwrap();
        assert!(generalized_time(&utc).is_err());
    }
}
