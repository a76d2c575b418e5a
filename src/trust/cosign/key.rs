//! `type = "cosign-key"`: a digest is vouched for by a signature made with one of the
//! configured public keys, in cosign's legacy `.sig` format or in a Sigstore bundle.

use std::path::Path;
use std::time::SystemTime;

use futures_util::future::BoxFuture;

use super::bundle;
use super::config::SignedIdentity;
use super::config::{CosignKeyConfig, TransparencyLog};
use super::keys::{CosignKey, load_keys};
use super::legacy::{BUNDLE_ANNOTATION, LegacySignature};
use super::payload;
use super::sigstore::Root;
use super::tuf_root::RootSource;
use super::{Checked, Signed, by_format, first_vouching, identity_rule};
use crate::trust::signature::{ArtifactKind, Candidate, DigestVerifier, Subject, Verdict};

/// Verifies cosign signatures made with configured keys.
pub struct CosignKeyVerifier {
    keys: Vec<CosignKey>,
    /// Present exactly when `transparency_log = "required"`.
    rekor: Option<RootSource>,
    rule: SignedIdentity,
}

impl CosignKeyVerifier {
    /// Reads the key files (and the trusted root when the log is required); the error names
    /// the file. Validate the config first (`CosignKeyConfig::validate`).
    pub fn new(config: &CosignKeyConfig, cache_dir: &Path) -> anyhow::Result<Self> {
        let keys = load_keys(&config.keys)?;
        let rekor = match config.transparency_log {
            TransparencyLog::Required => Some(
                RootSource::from_config(
                    config.trusted_root.as_deref(),
                    config.sigstore_tuf.as_ref(),
                    cache_dir,
                )?
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "transparency_log = \"required\" needs trusted_root or sigstore_tuf"
                    )
                })?,
            ),
            TransparencyLog::NotRequired => {
                // A named, logged loosening: nothing proves when (or that publicly) these
                // keys signed.
                tracing::warn!(
                    "cosign-key: transparency_log = \"not-required\": key-only signatures vouch \
                     without a Rekor entry"
                );
                None
            }
        };
        Ok(CosignKeyVerifier {
            keys,
            rekor,
            rule: identity_rule(&config.signed_identity),
        })
    }

    /// One legacy layer: the steps in order, each a reason to refuse.
    fn verify_legacy(&self, subject: &Subject<'_>, sig: &LegacySignature<'_>) -> Checked {
        // 1. A certificate means a keyless (or PKI) signature: not this source's business,
        //    even if its key happens to be ours (cosign-keyless checks the chain).
        if sig.certificate.is_some() {
            return Err("signed with a certificate, not a configured key".into());
        }
        // 2. The signature over the exact payload bytes, with any configured key.
        let key = self
            .keys
            .iter()
            .find(|k| k.verifies(sig.payload, &sig.signature))
            .ok_or("signature does not verify with any configured key")?;
        // 3. What the signed payload claims: type, this digest, this repository. Read only
        //    after the signature verified, so unsigned bytes are never interpreted.
        let reference = payload::check_claims(sig.payload, subject, &self.rule)?;
        // 4. The Rekor SET, when required: the key's signature over this payload was logged,
        //    at a time the log key was valid; and the RFC 3161 timestamp, when the trusted
        //    root names TSAs (`timestamp_ignored`).
        let root = self.rekor.as_ref().map(RootSource::current).transpose()?;
        let ignored = timestamp_ignored(root.as_deref());
        let signed_at = match &root {
            None => None,
            Some(root) => {
                // A timestamp does not stand in for the required log entry.
                if sig.rekor.is_none() {
                    return Err(format!("no {BUNDLE_ANNOTATION} (no Rekor entry)"));
                }
                let mut sig = sig.clone();
                if ignored.is_some() {
                    sig.timestamp = None;
                }
                let time = root
                    .verify_key_set(sig.payload, &sig.to_bundle_json()?, &key.spki)
                    .map_err(|e| format!("Rekor entry: {e}"))?;
                Some(time)
            }
        };
        Ok(Signed {
            signer: key.name.clone(),
            signed_at,
            detail: reference,
            more: timestamp_detail(sig.timestamp.is_some(), ignored),
        })
    }
}

/// What a key-only source does with an RFC 3161 timestamp on a signature: `None` when it is
/// verified, else why it is ignored.
///
/// It is verified only where the source has a trusted root (`transparency_log = "required"`)
/// that names timestamp authorities: sigstore-verify then checks it against them, and a
/// timestamp that fails refuses the signature (fail closed: a timestamp that is used must be
/// right). Otherwise it is ignored, and the evidence says so: the signature vouches exactly as
/// it would without it. Ignoring one never lets through what would be refused without it: a
/// configured key has no validity window a time could be checked against, and a required log
/// entry is still required. (cosign refuses a signature with a timestamp when no TSA is
/// configured; here a signer adding timestamps does not break nodes that trust its key alone.)
pub(super) fn timestamp_ignored(root: Option<&Root>) -> Option<&'static str> {
    match root {
        None => Some("ignored: no trusted root (transparency_log = \"not-required\")"),
        Some(r) if r.tsas == 0 => Some("ignored: the trusted root names no timestamp authority"),
        Some(_) => None,
    }
}

/// The evidence's line about a layer's RFC 3161 timestamp (none without one).
pub(super) fn timestamp_detail(present: bool, ignored: Option<&str>) -> Vec<(String, String)> {
    if !present {
        return Vec::new();
    }
    vec![(
        "rfc3161 timestamp".into(),
        ignored.unwrap_or("verified").into(),
    )]
}

impl DigestVerifier for CosignKeyVerifier {
    fn prepare(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            match &self.rekor {
                Some(root) => root.refresh().await,
                None => Ok(()),
            }
        })
    }

    fn accepts(&self, kind: ArtifactKind) -> bool {
        super::cosign_kind(kind)
    }

    fn verify(&self, subject: Subject<'_>, candidates: &[Candidate], _now: SystemTime) -> Verdict {
        first_vouching(
            &subject,
            candidates,
            |k| self.accepts(k),
            |c, layer| {
                let mut vouch = by_format(
                    c.kind,
                    || {
                        let rekor = self.rekor.as_ref().map(RootSource::current).transpose()?;
                        bundle::verify_key_layer(&self.keys, rekor.as_deref(), &subject, layer)
                    },
                    || self.verify_legacy(&subject, &LegacySignature::from_layer(layer)?),
                )?;
                let log = if vouch.signed_at.is_some() {
                    "verified"
                } else {
                    "not required"
                };
                vouch.details.push(("transparency log".into(), log.into()));
                Ok(vouch)
            },
        )
    }
}
