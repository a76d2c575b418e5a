//! The CMS side of a token: the certificates it carries, which of them signed it, the
//! signed attributes (RFC 5652 5.3/5.4, RFC 5035) and the TSA's signature over them.

use anyhow::{Context, anyhow, bail};
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use cms::cert::CertificateChoices;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use der::Encode;
use der::asn1::{Any, ObjectIdentifier, OctetString};
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::asn1::{
    ID_CONTENT_TYPE, ID_CT_TST_INFO, ID_MESSAGE_DIGEST, ID_SIGNING_CERT_V2, SHA256,
    SigningCertificateV2,
};
use super::hash;

/// Most certificates a token may carry.
const MAX_CERTS: usize = 16;

/// A certificate the token carries, as DER and as x509-cert's model (for the CMS ids).
pub(super) struct Carried {
    pub(super) der: Vec<u8>,
    pub(super) cert: Certificate,
}

pub(super) fn carried_certificates(sd: &SignedData) -> anyhow::Result<Vec<Carried>> {
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

pub(super) fn find_signer(sid: &SignerIdentifier, certs: &[Carried]) -> anyhow::Result<Carried> {
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
pub(super) fn check_signed_attributes(
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
pub(super) fn verify_signature(si: &SignerInfo, signer: &Carried) -> anyhow::Result<()> {
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
