//! Signature math on aws-lc-rs: the envelope's signature with the algorithm the signing
//! certificate's key dictates ("Algorithm Selection" in `signature-specification.md`), and
//! certificate signatures in the chain (SHA-1 refused).

use anyhow::{anyhow, bail};
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::prelude::X509Certificate;
use x509_parser::public_key::PublicKey;

const OID_EC_P256: &str = "1.2.840.10045.3.1.7";
const OID_EC_P384: &str = "1.3.132.0.34";
const OID_EC_P521: &str = "1.3.132.0.35";

/// The six algorithms the spec allows, each tied to a key type and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    /// RSASSA-PSS with SHA-256 (RSA 2048).
    Ps256,
    /// RSASSA-PSS with SHA-384 (RSA 3072).
    Ps384,
    /// RSASSA-PSS with SHA-512 (RSA 4096).
    Ps512,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
    /// ECDSA P-521 with SHA-512.
    Es512,
}

impl SignatureAlgorithm {
    const ALL: [Self; 6] = [
        Self::Ps256,
        Self::Ps384,
        Self::Ps512,
        Self::Es256,
        Self::Es384,
        Self::Es512,
    ];

    /// The JWS `alg` name.
    pub fn jws_name(self) -> &'static str {
        match self {
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::Es512 => "ES512",
        }
    }

    pub fn from_jws(alg: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.jws_name() == alg)
    }

    /// The COSE `alg` label.
    pub fn cose_label(self) -> i64 {
        match self {
            Self::Ps256 => -37,
            Self::Ps384 => -38,
            Self::Ps512 => -39,
            Self::Es256 => -7,
            Self::Es384 => -35,
            Self::Es512 => -36,
        }
    }

    pub fn from_cose(label: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.cose_label() == label)
    }

    /// The algorithm the key of `cert` dictates; other key types and sizes are refused.
    pub fn for_key(cert: &X509Certificate<'_>) -> anyhow::Result<Self> {
        let spki = cert.public_key();
        match spki
            .parsed()
            .map_err(|e| anyhow!("unreadable public key: {e}"))?
        {
            PublicKey::RSA(rsa) => match rsa.key_size() {
                2048 => Ok(Self::Ps256),
                3072 => Ok(Self::Ps384),
                4096 => Ok(Self::Ps512),
                n => bail!("RSA key of {n} bits: Notation allows 2048, 3072 or 4096"),
            },
            PublicKey::EC(_) => match curve_of(cert).as_deref() {
                Some(OID_EC_P256) => Ok(Self::Es256),
                Some(OID_EC_P384) => Ok(Self::Es384),
                Some(OID_EC_P521) => Ok(Self::Es512),
                other => bail!("EC key on curve {other:?}: Notation allows P-256, P-384, P-521"),
            },
            _ => bail!(
                "key type {}: Notation allows RSA and ECDSA",
                spki.algorithm.algorithm
            ),
        }
    }

    fn verifier(self) -> &'static dyn VerificationAlgorithm {
        match self {
            // JWS PS* and COSE PS* use a salt as long as the hash (RFC 7518 3.5, RFC 8230),
            // which is what these verify.
            Self::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
            Self::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
            Self::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
            // JWS and COSE carry ECDSA signatures as fixed-width r || s.
            Self::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
            Self::Es384 => &signature::ECDSA_P384_SHA384_FIXED,
            Self::Es512 => &signature::ECDSA_P521_SHA512_FIXED,
        }
    }
}

/// Verifies an envelope signature over `message` with the key of `cert`.
pub fn verify_envelope_signature(
    alg: SignatureAlgorithm,
    cert: &X509Certificate<'_>,
    message: &[u8],
    sig: &[u8],
) -> anyhow::Result<()> {
    let key = cert.public_key().subject_public_key.data.as_ref();
    UnparsedPublicKey::new(alg.verifier(), key)
        .verify(message, sig)
        .map_err(|_| {
            anyhow!(
                "the envelope signature does not verify with the signing certificate's key ({})",
                alg.jws_name()
            )
        })
}

/// A certificate signed with RSASSA-PSS: aws-lc-rs verifies PSS with MGF1 over the same hash
/// and a salt as long as the hash (what RFC 4055 recommends and CAs issue); parameters
/// outside that are refused by name rather than left to fail as a bad signature.
fn pss_algorithm(cert: &X509Certificate<'_>) -> anyhow::Result<&'static dyn VerificationAlgorithm> {
    use x509_parser::signature_algorithm::SignatureAlgorithm as Sa;
    let subject = cert.subject();
    let params = match Sa::try_from(&cert.signature_algorithm) {
        Ok(Sa::RSASSA_PSS(p)) => p,
        _ => bail!("certificate {subject} has malformed RSASSA-PSS parameters"),
    };
    let hash = params.hash_algorithm_oid().to_id_string();
    let (alg, name, len): (&'static dyn VerificationAlgorithm, _, _) = match hash.as_str() {
        "2.16.840.1.101.3.4.2.1" => (&signature::RSA_PSS_2048_8192_SHA256, "SHA-256", 32),
        "2.16.840.1.101.3.4.2.2" => (&signature::RSA_PSS_2048_8192_SHA384, "SHA-384", 48),
        "2.16.840.1.101.3.4.2.3" => (&signature::RSA_PSS_2048_8192_SHA512, "SHA-512", 64),
        other => bail!(
            "certificate {subject} is signed with RSASSA-PSS over hash {other} (SHA-1 or \
             unknown), which Notation refuses"
        ),
    };
    let mgf = params
        .mask_gen_algorithm()
        .map_err(|e| anyhow!("certificate {subject}: RSASSA-PSS mask generation: {e}"))?;
    if mgf.mgf.to_id_string() != "1.2.840.113549.1.1.8" || mgf.hash.to_id_string() != hash {
        bail!("certificate {subject} is signed with RSASSA-PSS whose MGF is not MGF1 with {name}");
    }
    if params.salt_length() != len || params.trailer_field() != 1 {
        bail!(
            "certificate {subject} is signed with RSASSA-PSS {name} with salt length {} (only {len}, the hash length, is verified)",
            params.salt_length()
        );
    }
    Ok(alg)
}

/// Verifies that `issuer`'s key signed `cert`.
pub fn verify_cert_signature(
    cert: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
) -> anyhow::Result<()> {
    let oid = cert.signature_algorithm.algorithm.to_id_string();
    let curve = curve_of(issuer);
    let alg: &'static dyn VerificationAlgorithm = match (oid.as_str(), curve.as_deref()) {
        ("1.2.840.113549.1.1.5" | "1.2.840.10045.4.1", _) => {
            // Spec "Other requirements": no SHA1WithRSA or ECDSAWithSHA1 anywhere in the chain.
            bail!(
                "certificate {} is signed with SHA-1, which Notation refuses",
                cert.subject()
            )
        }
        ("1.2.840.113549.1.1.11", _) => &signature::RSA_PKCS1_2048_8192_SHA256,
        ("1.2.840.113549.1.1.12", _) => &signature::RSA_PKCS1_2048_8192_SHA384,
        ("1.2.840.113549.1.1.13", _) => &signature::RSA_PKCS1_2048_8192_SHA512,
        ("1.2.840.113549.1.1.10", _) => pss_algorithm(cert)?,
        ("1.2.840.10045.4.3.2", Some(OID_EC_P256)) => &signature::ECDSA_P256_SHA256_ASN1,
        ("1.2.840.10045.4.3.2", Some(OID_EC_P384)) => &signature::ECDSA_P384_SHA256_ASN1,
        ("1.2.840.10045.4.3.3", Some(OID_EC_P256)) => &signature::ECDSA_P256_SHA384_ASN1,
        ("1.2.840.10045.4.3.3", Some(OID_EC_P384)) => &signature::ECDSA_P384_SHA384_ASN1,
        ("1.2.840.10045.4.3.4", Some(OID_EC_P521)) => &signature::ECDSA_P521_SHA512_ASN1,
        (other, curve) => bail!(
            "certificate {} uses signature algorithm {other} (issuer curve {curve:?}), which Portcullis does not verify",
            cert.subject()
        ),
    };
    let key = issuer.public_key().subject_public_key.data.as_ref();
    UnparsedPublicKey::new(alg, key)
        .verify(
            cert.tbs_certificate.as_ref(),
            cert.signature_value.data.as_ref(),
        )
        .map_err(|_| {
            anyhow!(
                "certificate {} is not signed by {}",
                cert.subject(),
                issuer.subject()
            )
        })
}

/// The named curve of an EC key, as a dotted OID.
fn curve_of(cert: &X509Certificate<'_>) -> Option<String> {
    let params = cert.public_key().algorithm.parameters.as_ref()?;
    params.as_oid().ok().map(|o| o.to_id_string())
}
