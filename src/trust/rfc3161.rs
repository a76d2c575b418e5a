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

use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow, bail};
use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use der::asn1::{Any, Int, ObjectIdentifier, OctetString};
use der::{Decode, Encode, Sequence, Tag, Tagged};
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Largest token accepted (real ones are 2-7 KiB with their certificates).
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;
/// Most certificates a token may carry.
const MAX_CERTS: usize = 16;

const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_CERT_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
/// RFC 3628's baseline time-stamp policy: without an explicit accuracy it means 1 s.
const BASELINE_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.2023.1.1");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// RFC 3161 `MessageImprint`.
#[derive(Clone, Debug, Sequence)]
struct MessageImprint {
    hash_algorithm: AlgorithmIdentifierOwned,
    hashed_message: OctetString,
}

/// RFC 3161 `Accuracy` (the module uses IMPLICIT tags).
#[derive(Clone, Debug, Sequence)]
struct Accuracy {
    #[asn1(optional = "true")]
    seconds: Option<u32>,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    millis: Option<u32>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    micros: Option<u32>,
}

fn default_false() -> bool {
    false
}

/// RFC 3161 `TSTInfo`. `genTime` is kept raw: TSAs send fractional seconds, which der's
/// `GeneralizedTime` refuses.
#[derive(Clone, Debug, Sequence)]
struct TstInfo {
    version: u8,
    policy: ObjectIdentifier,
    message_imprint: MessageImprint,
    serial_number: Int,
    gen_time: Any,
    #[asn1(optional = "true")]
    accuracy: Option<Accuracy>,
    #[asn1(default = "default_false")]
    ordering: bool,
    #[asn1(optional = "true")]
    nonce: Option<Int>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    tsa: Option<GeneralName>,
    #[asn1(
        context_specific = "1",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    extensions: Option<x509_cert::ext::Extensions>,
}

/// RFC 5035 `IssuerSerial`.
#[derive(Clone, Debug, Sequence)]
struct IssuerSerial {
    issuer: Vec<GeneralName>,
    serial_number: Int,
}

/// RFC 5035 `ESSCertIDv2` (hash algorithm DEFAULT SHA-256).
#[derive(Clone, Debug, Sequence)]
struct EssCertIdV2 {
    #[asn1(optional = "true")]
    hash_algorithm: Option<AlgorithmIdentifierOwned>,
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<IssuerSerial>,
}

/// RFC 5035 `SigningCertificateV2` (the policies are not used).
#[derive(Clone, Debug, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
    #[asn1(optional = "true")]
    policies: Option<Any>,
}

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

fn hash(alg: &ObjectIdentifier, data: &[u8]) -> anyhow::Result<Vec<u8>> {
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

/// A certificate the token carries, as DER and as x509-cert's model (for the CMS ids).
struct Carried {
    der: Vec<u8>,
    cert: Certificate,
}

fn carried_certificates(sd: &SignedData) -> anyhow::Result<Vec<Carried>> {
    let Some(set) = &sd.certificates else {
        // RFC 3161 lets a TSA leave its certificate out unless certReq was set; Notation
        // and cosign request it, and without it there is nothing to verify with.
        bail!("the timestamp token carries no certificate (the TSA's certificate is needed)");
    };
    let mut out = Vec::new();
    for choice in set.0.iter() {
        if let CertificateChoices::Certificate(cert) = choice {
            out.push(Carried {
                der: cert.to_der()?,
                cert: cert.clone(),
            });
        }
    }
    if out.is_empty() {
        // An empty set (as Sigstore's TSAs send, whose leaf the trusted root pins) says the
        // same as none.
        bail!("the timestamp token carries no certificate (the TSA's certificate is needed)");
    }
    if out.len() > MAX_CERTS {
        bail!(
            "the timestamp token carries {} certificates (at most {MAX_CERTS})",
            out.len()
        );
    }
    Ok(out)
}

fn find_signer(sid: &SignerIdentifier, certs: &[Carried]) -> anyhow::Result<Carried> {
    let found = certs.iter().find(|c| match sid {
        SignerIdentifier::IssuerAndSerialNumber(is) => {
            c.cert.tbs_certificate.issuer == is.issuer
                && c.cert.tbs_certificate.serial_number == is.serial_number
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => c
            .cert
            .tbs_certificate
            .get::<x509_cert::ext::pkix::SubjectKeyIdentifier>()
            .ok()
            .flatten()
            .is_some_and(|(_, k)| &k == ski),
    });
    let c = found.context("the timestamp token does not carry the certificate that signed it")?;
    Ok(Carried {
        der: c.der.clone(),
        cert: c.cert.clone(),
    })
}

fn single_value<'a>(
    attrs: &'a x509_cert::attr::Attributes,
    oid: ObjectIdentifier,
    name: &str,
) -> anyhow::Result<&'a Any> {
    let mut found = attrs.iter().filter(|a| a.oid == oid);
    let attr = found
        .next()
        .with_context(|| format!("the timestamp's signed attributes lack {name}"))?;
    if found.next().is_some() || attr.values.len() != 1 {
        bail!("the timestamp's signed attribute {name} must occur once with one value");
    }
    attr.values
        .get(0)
        .with_context(|| format!("the timestamp's signed attribute {name} is empty"))
}

/// RFC 5652 5.3/5.4 (content type, message digest) and RFC 5035 (which certificate signed).
fn check_signed_attributes(
    si: &SignerInfo,
    tst_der: &[u8],
    signer: &Carried,
) -> anyhow::Result<()> {
    let attrs = si
        .signed_attrs
        .as_ref()
        .context("the timestamp's signature has no signed attributes")?;
    let ct: ObjectIdentifier = single_value(attrs, ID_CONTENT_TYPE, "content-type")?
        .decode_as()
        .context("the timestamp's content-type attribute")?;
    if ct != ID_CT_TST_INFO {
        bail!("the timestamp's content-type attribute is {ct}, not id-ct-TSTInfo");
    }
    let md: OctetString = single_value(attrs, ID_MESSAGE_DIGEST, "message-digest")?
        .decode_as()
        .context("the timestamp's message-digest attribute")?;
    if hash(&si.digest_alg.oid, tst_der)? != md.as_bytes() {
        bail!("the timestamp's TSTInfo was altered (message-digest attribute mismatch)");
    }
    // Notation's spec: "Validate the signing-certificate-v2 attribute ... When missing,
    // fail". It binds the signature to one certificate, so a token cannot be re-attributed
    // to another certificate with the same key.
    let scv2: SigningCertificateV2 =
        single_value(attrs, ID_SIGNING_CERT_V2, "signing-certificate-v2")?
            .decode_as()
            .context("the timestamp's signing-certificate-v2 attribute")?;
    let first = scv2
        .certs
        .first()
        .context("the timestamp's signing-certificate-v2 names no certificate")?;
    let alg = first.hash_algorithm.as_ref().map_or(SHA256, |a| a.oid);
    if hash(&alg, &signer.der)? != first.cert_hash.as_bytes() {
        bail!("the timestamp's signing-certificate-v2 names another certificate than its signer");
    }
    if let Some(is) = &first.issuer_serial {
        let issuer_ok = is.issuer.iter().any(|g| match g {
            GeneralName::DirectoryName(n) => *n == signer.cert.tbs_certificate.issuer,
            _ => false,
        });
        if !issuer_ok
            || is.serial_number.as_bytes() != signer.cert.tbs_certificate.serial_number.as_bytes()
        {
            bail!("the timestamp's signing-certificate-v2 issuer and serial are not its signer's");
        }
    }
    Ok(())
}

/// The TSA's signature over the DER SET OF signed attributes (RFC 5652 5.4). RSA PKCS#1 v1.5
/// is what public TSAs use and what notation-go accepts, though Notation's own envelopes
/// use PSS; SHA-1 and RSA-PSS tokens are refused.
fn verify_signature(si: &SignerInfo, signer: &Carried) -> anyhow::Result<()> {
    let digest_alg = si.digest_alg.oid.to_string();
    let sig_alg = si.signature_algorithm.oid.to_string();
    let (_, cert) = X509Certificate::from_der(&signer.der)
        .map_err(|e| anyhow!("the timestamp's signing certificate: {e}"))?;
    let curve = cert
        .public_key()
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    let alg: &'static dyn VerificationAlgorithm = match (
        sig_alg.as_str(),
        digest_alg.as_str(),
        curve.as_deref(),
    ) {
        ("1.2.840.113549.1.1.1" | "1.2.840.113549.1.1.11", "2.16.840.1.101.3.4.2.1", _) => {
            &signature::RSA_PKCS1_2048_8192_SHA256
        }
        ("1.2.840.113549.1.1.1" | "1.2.840.113549.1.1.12", "2.16.840.1.101.3.4.2.2", _) => {
            &signature::RSA_PKCS1_2048_8192_SHA384
        }
        ("1.2.840.113549.1.1.1" | "1.2.840.113549.1.1.13", "2.16.840.1.101.3.4.2.3", _) => {
            &signature::RSA_PKCS1_2048_8192_SHA512
        }
        (
            "1.2.840.10045.2.1" | "1.2.840.10045.4.3.2",
            "2.16.840.1.101.3.4.2.1",
            Some("1.2.840.10045.3.1.7"),
        ) => &signature::ECDSA_P256_SHA256_ASN1,
        (
            "1.2.840.10045.2.1" | "1.2.840.10045.4.3.3",
            "2.16.840.1.101.3.4.2.2",
            Some("1.2.840.10045.3.1.7"),
        ) => &signature::ECDSA_P256_SHA384_ASN1,
        (
            "1.2.840.10045.2.1" | "1.2.840.10045.4.3.2",
            "2.16.840.1.101.3.4.2.1",
            Some("1.3.132.0.34"),
        ) => &signature::ECDSA_P384_SHA256_ASN1,
        (
            "1.2.840.10045.2.1" | "1.2.840.10045.4.3.3",
            "2.16.840.1.101.3.4.2.2",
            Some("1.3.132.0.34"),
        ) => &signature::ECDSA_P384_SHA384_ASN1,
        (
            "1.2.840.10045.2.1" | "1.2.840.10045.4.3.4",
            "2.16.840.1.101.3.4.2.3",
            Some("1.3.132.0.35"),
        ) => &signature::ECDSA_P521_SHA512_ASN1,
        (s, d, c) => bail!(
            "the timestamp is signed with algorithm {s} over digest {d} (key curve {c:?}), which Portcullis does not verify"
        ),
    };
    let attrs = si
        .signed_attrs
        .as_ref()
        .context("the timestamp's signature has no signed attributes")?;
    // Signed as a DER SET OF, not with the [0] IMPLICIT tag they are stored under.
    let signed = attrs.to_der()?;
    let key = cert.public_key().subject_public_key.data.as_ref();
    UnparsedPublicKey::new(alg, key)
        .verify(&signed, si.signature.as_bytes())
        .map_err(|_| {
            anyhow!(
                "the timestamp's signature does not verify with its signing certificate ({})",
                cert.subject()
            )
        })
}

/// `YYYYMMDDHHMMSS[.f+]Z` (RFC 3161 2.4.2: UTC, fractions allowed, no trailing zeros).
fn generalized_time(any: &Any) -> anyhow::Result<SystemTime> {
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

    #[test]
    fn garbage_is_refused_with_a_reason() {
        let e = verify(b"not a token", b"sig").unwrap_err();
        assert!(format!("{e:#}").contains("not CMS"), "{e:#}");
        let e = verify(&vec![0u8; MAX_TOKEN_BYTES + 1], b"sig").unwrap_err();
        assert!(format!("{e:#}").contains("at most"), "{e:#}");
    }
}
