//! What a Notation signature envelope says once parsed, whatever its format (JWS or COSE):
//! the signed attributes, the payload, the bytes the signature covers, and the unsigned
//! certificate chain and timestamp. Parsing refuses unknown critical attributes; deciding
//! whether to trust any of it is `verify`'s job.

use std::time::SystemTime;

use anyhow::{Context, bail};
use serde::Deserialize;

use super::crypto::SignatureAlgorithm;

/// `cty` / COSE content type: the only payload type the spec defines.
pub const PAYLOAD_CONTENT_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";
/// Largest envelope accepted (notation-go's limit for a signature blob is 4 MiB; real ones
/// are a few KiB plus a timestamp token).
pub const MAX_ENVELOPE_BYTES: usize = 4 << 20;

pub const HDR_SIGNING_SCHEME: &str = "io.cncf.notary.signingScheme";
pub const HDR_SIGNING_TIME: &str = "io.cncf.notary.signingTime";
pub const HDR_AUTHENTIC_SIGNING_TIME: &str = "io.cncf.notary.authenticSigningTime";
pub const HDR_EXPIRY: &str = "io.cncf.notary.expiry";
pub const HDR_VERIFICATION_PLUGIN: &str = "io.cncf.notary.verificationPlugin";
pub const HDR_VERIFICATION_PLUGIN_MIN_VERSION: &str = "io.cncf.notary.verificationPluginMinVersion";

/// The envelope formats Notation defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Flattened JWS JSON, `application/jose+json`.
    Jws,
    /// COSE_Sign1_Tagged, `application/cose`.
    Cose,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Jws => "notation jws",
            Format::Cose => "notation cose",
        }
    }
}

/// `io.cncf.notary.signingScheme`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningScheme {
    /// `notary.x509`: chain to a `ca` store, unauthenticated signing time.
    X509,
    /// `notary.x509.signingAuthority`: chain to a `signingAuthority` store, authentic
    /// signing time.
    X509SigningAuthority,
}

impl SigningScheme {
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "notary.x509" => Ok(Self::X509),
            "notary.x509.signingAuthority" => Ok(Self::X509SigningAuthority),
            other => {
                bail!("signing scheme {other:?} is not notary.x509 or notary.x509.signingAuthority")
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::X509 => "notary.x509",
            Self::X509SigningAuthority => "notary.x509.signingAuthority",
        }
    }
}

/// The time attributes, read the same way from either format.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignedTimes {
    /// `signingTime` (notary.x509; not authenticated).
    pub signing: Option<SystemTime>,
    /// `authenticSigningTime` (notary.x509.signingAuthority).
    pub authentic_signing: Option<SystemTime>,
    pub expiry: Option<SystemTime>,
}

impl SignedTimes {
    /// Reads the three attributes with the format's own reader (`None`: absent).
    pub fn read(
        read: impl Fn(&str) -> anyhow::Result<Option<SystemTime>>,
    ) -> anyhow::Result<SignedTimes> {
        Ok(SignedTimes {
            signing: read(HDR_SIGNING_TIME)?,
            authentic_signing: read(HDR_AUTHENTIC_SIGNING_TIME)?,
            expiry: read(HDR_EXPIRY)?,
        })
    }
}

/// A parsed envelope. Nothing here is trusted until the signature is verified.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub format: Format,
    pub algorithm: SignatureAlgorithm,
    pub scheme: SigningScheme,
    pub times: SignedTimes,
    /// The payload bytes (JSON).
    pub payload: Vec<u8>,
    /// Exactly the bytes the signature covers (JWS signing input, COSE Sig_structure).
    pub signed_bytes: Vec<u8>,
    pub signature: Vec<u8>,
    /// DER certificates, signing certificate first.
    pub chain: Vec<Vec<u8>>,
    /// RFC 3161 TimeStampToken (unsigned attribute), if any.
    pub timestamp_token: Option<Vec<u8>>,
    pub signing_agent: Option<String>,
}

impl Envelope {
    /// Checks the rules both formats share once their headers are read: the scheme's own
    /// time attribute is present (and the other absent), and `expiry` / the authentic
    /// signing time were marked critical (`critical` lists the attribute names marked so).
    pub fn check_attributes(&self, critical: &[&str]) -> anyhow::Result<()> {
        if !critical.contains(&HDR_SIGNING_SCHEME) {
            bail!("{HDR_SIGNING_SCHEME} must be marked critical");
        }
        match self.scheme {
            SigningScheme::X509 => {
                if self.times.signing.is_none() {
                    bail!("signing scheme notary.x509 requires {HDR_SIGNING_TIME}");
                }
                if self.times.authentic_signing.is_some() {
                    bail!(
                        "{HDR_AUTHENTIC_SIGNING_TIME} is only valid with notary.x509.signingAuthority"
                    );
                }
            }
            SigningScheme::X509SigningAuthority => {
                if self.times.authentic_signing.is_none() {
                    bail!(
                        "signing scheme notary.x509.signingAuthority requires {HDR_AUTHENTIC_SIGNING_TIME}"
                    );
                }
                if !critical.contains(&HDR_AUTHENTIC_SIGNING_TIME) {
                    bail!("{HDR_AUTHENTIC_SIGNING_TIME} must be marked critical");
                }
            }
        }
        if self.times.expiry.is_some() && !critical.contains(&HDR_EXPIRY) {
            bail!("{HDR_EXPIRY} must be marked critical");
        }
        Ok(())
    }
}

/// The attribute names a verifier may see marked critical and processes.
pub fn is_known_critical(name: &str) -> bool {
    matches!(
        name,
        HDR_SIGNING_SCHEME | HDR_AUTHENTIC_SIGNING_TIME | HDR_EXPIRY
    )
}

/// The Notary Project payload (other members are ignored, as Notation does: only
/// `targetArtifact` is ever used).
#[derive(Debug, Clone, Deserialize)]
pub struct Payload {
    #[serde(rename = "targetArtifact")]
    pub target_artifact: TargetArtifact,
}

/// The descriptor of the signed artifact (other descriptor fields are allowed and ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct TargetArtifact {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

impl Payload {
    pub fn parse(bytes: &[u8]) -> anyhow::Result<Payload> {
        serde_json::from_slice(bytes).context("the payload is not a Notary Project payload")
    }
}

/// RFC 3339 (JWS times).
pub fn parse_rfc3339(s: &str) -> anyhow::Result<SystemTime> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("{s:?} is not an RFC 3339 time"))?;
    Ok(SystemTime::from(t))
}
