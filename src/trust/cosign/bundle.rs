//! Sigstore bundles attached to a digest (cosign v3's default format): a message signature over
//! the digest, or a DSSE envelope whose in-toto statement names the digest as its subject and
//! whose `predicateType` is cosign's signature predicate. Any other predicate (an SBOM, a
//! provenance attestation) signed by the same identity is not a signature and never vouches.

use std::time::SystemTime;

use serde::Deserialize;
use sigstore_types::{Artifact, Bundle, Sha256Hash, SignatureContent};

use super::keyless::CosignKeylessVerifier;
use crate::refs::Algorithm;
use crate::trust::signature::{Layer, Subject};

/// The layer media type of a bundle attached by cosign v3.
pub const BUNDLE_MEDIA_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
/// The in-toto predicate type cosign v3 uses for "this image is signed"
/// (sigstore/cosign `pkg/cosign/bundle`, `cosign sign` with the new bundle format).
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

#[derive(Deserialize)]
struct Statement {
    #[serde(rename = "predicateType")]
    predicate_type: String,
    subject: Vec<StatementSubject>,
}

#[derive(Deserialize)]
struct StatementSubject {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

/// The subject digest as sigstore-verify's artifact: the manifest bytes are not at hand (and
/// need not be: the signature, or the statement, names the digest).
fn artifact_of(subject: &Subject<'_>) -> Result<Artifact<'static>, String> {
    if subject.digest.algorithm() != Algorithm::Sha256 {
        return Err(format!(
            "{} is not a sha256 digest; Sigstore bundles here are checked for sha256 only",
            subject.digest
        ));
    }
    let hash = Sha256Hash::from_hex(subject.digest.hex()).map_err(|e| e.to_string())?;
    Ok(Artifact::from_digest(hash))
}

/// Reads the bundle, and for a DSSE envelope checks the statement before any cryptography:
/// in-toto payload type, cosign's signature predicate, this digest among the subjects.
/// (sigstore-verify binds the subject too; the predicate type is ours alone to check.)
pub fn parse_checked(
    layer: &Layer,
    subject: &Subject<'_>,
) -> Result<(Bundle, &'static str), String> {
    if !layer.media_type.starts_with(BUNDLE_MEDIA_TYPE_PREFIX) {
        return Err(format!(
            "layer is {:?}, not a Sigstore bundle",
            layer.media_type
        ));
    }
    let text = std::str::from_utf8(&layer.bytes).map_err(|_| "bundle is not UTF-8".to_string())?;
    let bundle = Bundle::from_json(text).map_err(|e| format!("not a Sigstore bundle: {e}"))?;
    let form = match &bundle.content {
        SignatureContent::MessageSignature(_) => "message signature",
        SignatureContent::DsseEnvelope(env) => {
            if env.payload_type != IN_TOTO_PAYLOAD_TYPE {
                return Err(format!(
                    "DSSE payload type {:?} is not in-toto",
                    env.payload_type
                ));
            }
            let st: Statement = serde_json::from_slice(env.payload.as_bytes())
                .map_err(|e| format!("DSSE payload is not an in-toto statement: {e}"))?;
            if st.predicate_type != COSIGN_SIGN_PREDICATE {
                return Err(format!(
                    "an attestation of {:?}, not a cosign signature ({COSIGN_SIGN_PREDICATE})",
                    st.predicate_type
                ));
            }
            let hex = subject.digest.hex();
            if !st
                .subject
                .iter()
                .any(|s| s.digest.get("sha256").map(String::as_str) == Some(hex))
            {
                return Err(format!("the statement's subject is not {}", subject.digest));
            }
            "DSSE in-toto cosign/sign/v1"
        }
        _ => return Err("bundle content is neither a message signature nor DSSE".into()),
    };
    Ok((bundle, form))
}

/// A keyless bundle: all of sigstore-verify's checks, then our identity match.
pub fn verify_layer(
    verifier: &CosignKeylessVerifier,
    subject: &Subject<'_>,
    layer: &Layer,
) -> Result<(String, SystemTime, String), String> {
    let (bundle, form) = parse_checked(layer, subject)?;
    let artifact = artifact_of(subject)?;
    let result = verifier
        .root()
        .verify_bundle(artifact, &bundle, &verifier.policy_for_bundle())?;
    let (who, at) = verifier.accept_result(&result)?;
    Ok((who, at, form.to_string()))
}
