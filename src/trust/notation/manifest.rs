//! The signature manifest around an envelope (`signature-specification.md`, "OCI
//! Signatures"): it must say it is a Notary Project signature, name the subject, hold one
//! envelope layer, and carry `io.cncf.notary.x509chain.thumbprint#S256`, which must list the
//! envelope's own chain (a manifest that lies about its signer is refused: tools filter
//! signatures by that annotation before fetching them).

use anyhow::{Context, bail};
use serde_json::Value;
use sha2::Digest as _;

use super::envelope::Format;
use crate::trust::signature::Candidate;

pub const ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";
pub const MEDIA_TYPE_JWS: &str = "application/jose+json";
pub const MEDIA_TYPE_COSE: &str = "application/cose";
pub const THUMBPRINT_ANNOTATION: &str = "io.cncf.notary.x509chain.thumbprint#S256";
const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";

/// What the manifest says about the signed artifact (compared with the payload).
#[derive(Debug, Clone)]
pub struct SubjectDescriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

/// Checks the manifest's own shape and returns the envelope format, the envelope bytes and
/// the subject descriptor.
pub fn inspect(cand: &Candidate) -> anyhow::Result<(Format, &[u8], SubjectDescriptor)> {
    let m: Value =
        serde_json::from_slice(&cand.manifest).context("the signature manifest is not JSON")?;
    let artifact_type = m.get("artifactType").and_then(Value::as_str);
    let config_type = m
        .pointer("/config/mediaType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // Spec: artifactType, if present, MUST be the Notary type with an empty config;
    // otherwise the config media type MUST be the Notary type.
    match artifact_type {
        Some(ARTIFACT_TYPE) if config_type == EMPTY_CONFIG || config_type == ARTIFACT_TYPE => {}
        Some(other) => bail!("the manifest's artifactType is {other:?}, not {ARTIFACT_TYPE}"),
        None if config_type == ARTIFACT_TYPE => {}
        None => bail!("the manifest's config media type is {config_type:?}, not {ARTIFACT_TYPE}"),
    }
    let subject = m
        .get("subject")
        .context("the signature manifest has no subject")?;
    let subject = SubjectDescriptor {
        media_type: subject
            .get("mediaType")
            .and_then(Value::as_str)
            .context("the manifest's subject has no mediaType")?
            .to_owned(),
        digest: subject
            .get("digest")
            .and_then(Value::as_str)
            .context("the manifest's subject has no digest")?
            .to_owned(),
        size: subject
            .get("size")
            .and_then(Value::as_u64)
            .context("the manifest's subject has no size")?,
    };
    let [layer] = cand.layers.as_slice() else {
        bail!(
            "the signature manifest has {} layers; a Notation signature has exactly one",
            cand.layers.len()
        );
    };
    let format = match layer.media_type.as_str() {
        MEDIA_TYPE_JWS => Format::Jws,
        MEDIA_TYPE_COSE => Format::Cose,
        other => bail!(
            "the signature layer's media type is {other:?}, not {MEDIA_TYPE_JWS} or {MEDIA_TYPE_COSE}"
        ),
    };
    Ok((format, &layer.bytes, subject))
}

/// Checks the thumbprint annotation against the envelope chain (SHA-256 of each DER
/// certificate, in order; hex compared case-insensitively, as the spec's example is
/// upper-case and notation writes lower-case).
pub fn check_thumbprints(cand: &Candidate, chain: &[Vec<u8>]) -> anyhow::Result<()> {
    let raw = cand
        .annotations
        .get(THUMBPRINT_ANNOTATION)
        .with_context(|| format!("the signature manifest has no {THUMBPRINT_ANNOTATION} annotation (required by the spec)"))?;
    let listed: Vec<String> = serde_json::from_str(raw)
        .with_context(|| format!("{THUMBPRINT_ANNOTATION} is not a JSON array of strings"))?;
    let actual: Vec<String> = chain
        .iter()
        .map(|der| hex::encode(sha2::Sha256::digest(der)))
        .collect();
    let same = listed.len() == actual.len()
        && listed
            .iter()
            .zip(&actual)
            .all(|(a, b)| a.eq_ignore_ascii_case(b));
    if !same {
        bail!(
            "the manifest's {THUMBPRINT_ANNOTATION} {listed:?} does not match the envelope's certificate chain {actual:?}"
        );
    }
    Ok(())
}
