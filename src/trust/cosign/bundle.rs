//! Sigstore bundles attached to a digest (cosign v3's default format): a message signature over
//! the digest, or a DSSE envelope whose in-toto statement names the digest as its subject and
//! whose `predicateType` is cosign's signature predicate. Any other predicate (an SBOM, a
//! provenance attestation) signed by the same identity is not a signature and never vouches.

use serde::Deserialize;
use sigstore_types::bundle::VerificationMaterialContent;
use sigstore_types::{Artifact, Bundle, Sha256Hash, SignatureContent};
use sigstore_verify::PublicKeyVerificationPolicy;

use super::keyless::{self, CosignKeylessVerifier};
use super::keys::CosignKey;
use super::sigstore::{Root, to_system_time};
use super::{Checked, Signed, key};
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
    // Some bundle of another kind might share the prefix; cosign attaches exactly these.
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
) -> Checked {
    let (bundle, form) = parse_checked(layer, subject)?;
    let artifact = artifact_of(subject)?;
    let result =
        verifier
            .root()?
            .verify_bundle(artifact, &bundle, &verifier.policy_for(&bundle))?;
    let (who, at, source) = verifier.accept_result(&result, &bundle)?;
    Ok(keyless::signed(who, at, form.to_string(), source))
}

/// A key-signed bundle (cosign 3's `sign --key`): the bundle must carry no certificate; with
/// `rekor` (transparency_log = "required") sigstore-verify checks the signature, the log entry
/// (inclusion proof and checkpoint, or SET) and its binding for each key, and the RFC 3161
/// timestamps when the root names TSAs (`key::timestamp_ignored`); without, our own check of
/// the signature: over the digest (message signature, prehashed SHA-256) or over the DSSE
/// pre-authentication encoding. Returns the key's name, the signing time, the form.
pub fn verify_key_layer(
    keys: &[CosignKey],
    rekor: Option<&Root>,
    subject: &Subject<'_>,
    layer: &Layer,
) -> Checked {
    let (mut bundle, form) = parse_checked(layer, subject)?;
    if !matches!(
        bundle.verification_material.content,
        VerificationMaterialContent::PublicKey(_)
    ) {
        return Err("signed with a certificate, not a configured key".into());
    }
    let artifact = artifact_of(subject)?;
    let stamps = &mut bundle.verification_material.timestamp_verification_data;
    let ignored = key::timestamp_ignored(rekor);
    let more = key::timestamp_detail(!stamps.rfc3161_timestamps.is_empty(), ignored);
    if ignored.is_some() {
        stamps.rfc3161_timestamps.clear();
    }
    let signed = |key: &CosignKey, at| Signed {
        signer: key.name.clone(),
        signed_at: at,
        detail: form.to_string(),
        more: more.clone(),
    };
    let Some(root) = rekor else {
        let key = keys
            .iter()
            .find(|k| key_signed(k, &bundle, subject))
            .ok_or("signature does not verify with any configured key")?;
        return Ok(signed(key, None));
    };
    // Fail closed: a bundle without entries would pass log checks vacuously.
    if bundle.verification_material.tlog_entries.is_empty() {
        return Err("no transparency log entry (transparency_log = \"required\")".into());
    }
    let mut last = String::from("no configured key");
    for key in keys {
        let policy = PublicKeyVerificationPolicy::new(key.spki.clone());
        match root.verify_bundle(artifact.clone(), &bundle, &policy) {
            Ok(result) if result.tlog_verified() => {
                let at = result
                    .integrated_time()
                    .or_else(|| result.verified_timestamps().iter().min().copied())
                    .map(to_system_time);
                return Ok(signed(key, at));
            }
            Ok(_) => last = "log entry not verified".into(),
            Err(e) => last = e,
        }
    }
    Err(format!(
        "signature does not verify with any configured key ({last})"
    ))
}

/// The key-only check: the message signature is over this digest (its `messageDigest`, when
/// given, must be this digest too), or the DSSE signature is over PAE(payloadType, payload)
/// of the statement `parse_checked` already bound to this digest.
fn key_signed(key: &CosignKey, bundle: &Bundle, subject: &Subject<'_>) -> bool {
    match &bundle.content {
        SignatureContent::MessageSignature(m) => {
            let Ok(digest) = hex::decode(subject.digest.hex()) else {
                return false;
            };
            let declared_ok = m
                .message_digest
                .as_ref()
                .is_none_or(|d| d.digest.as_bytes() == digest.as_slice());
            declared_ok && key.verifies_prehashed(&digest, m.signature.as_bytes())
        }
        SignatureContent::DsseEnvelope(env) => {
            key.verifies(&env.pae(), env.signature.sig.as_bytes())
        }
        _ => false,
    }
}
