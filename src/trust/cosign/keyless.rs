//! `type = "cosign-keyless"`: a digest is vouched for by a signature whose Fulcio certificate
//! chains to the trusted root at the signing time proved by Rekor and/or an RFC 3161 timestamp
//! (by a TSA of the trusted root), and names a configured identity. Legacy `.sig` layers go through the v0.1 adapter; v0.3 bundles through `bundle`.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::future::BoxFuture;

use sigstore_types::Bundle;
use sigstore_verify::{VerificationPolicy, VerificationResult};

use super::bundle;
use super::config::SignedIdentity;
use super::config::{CosignKeylessConfig, SctPolicy};
use super::identity::{Identity, match_any};
use super::legacy::LegacySignature;
use super::payload;
use super::sigstore::{Root, to_system_time};
use super::tuf_root::RootSource;
use super::{Checked, Signed, by_format, first_vouching, identity_rule};
use crate::trust::signature::{ArtifactKind, Candidate, DigestVerifier, Subject, Verdict};

/// Verifies keyless cosign signatures.
pub struct CosignKeylessVerifier {
    root: RootSource,
    sct: SctPolicy,
    identities: Vec<Identity>,
    rule: SignedIdentity,
}

impl CosignKeylessVerifier {
    /// Reads the trusted root file (or the pinned TUF root of `sigstore_tuf`, state under
    /// `cache_dir`) and compiles the identities (regexes anchored, logged). Validate the
    /// config first (`CosignKeylessConfig::validate`).
    pub fn new(config: &CosignKeylessConfig, cache_dir: &Path) -> anyhow::Result<Self> {
        let root = RootSource::from_config(
            config.trusted_root.as_deref(),
            config.sigstore_tuf.as_ref(),
            cache_dir,
        )?
        .ok_or_else(|| anyhow::anyhow!("cosign-keyless needs trusted_root or sigstore_tuf"))?;
        Self::with_root(config, root)
    }

    /// As `new`, with the trusted root's JSON given (tests, benches).
    pub fn with_trusted_root_json(
        config: &CosignKeylessConfig,
        json: &str,
    ) -> anyhow::Result<Self> {
        Self::with_root(config, RootSource::File(Arc::new(Root::from_json(json)?)))
    }

    fn with_root(config: &CosignKeylessConfig, root: RootSource) -> anyhow::Result<Self> {
        let identities = config
            .identities
            .iter()
            .map(Identity::compile)
            .collect::<anyhow::Result<Vec<_>>>()?;
        if identities.is_empty() {
            anyhow::bail!("cosign-keyless needs at least one identity");
        }
        if config.sct == SctPolicy::NotRequired {
            tracing::warn!(
                root = %root.describe(),
                "cosign-keyless: sct = \"not-required\": certificates vouch without a CT log entry"
            );
        }
        Ok(CosignKeylessVerifier {
            root,
            sct: config.sct,
            identities,
            rule: identity_rule(&config.signed_identity),
        })
    }

    /// The sigstore-verify policy: chain, SCT (unless not required) and log all verified; the
    /// identity is matched by us afterwards (regexes and claims are ours).
    ///
    /// A bundle with RFC 3161 timestamps and no log entry (`timestamp_only`) is checked with
    /// `skip_tlog_unsafe`, because sigstore-bundle's structural check otherwise demands an
    /// inclusion proof of every bundle. It skips nothing there (there is no entry to check);
    /// the timestamps are verified against the trusted root's TSAs whatever the policy, and
    /// `accept_result` still demands a verified signing time. Entries, when present, are
    /// always verified; a bundle with neither is refused by the structural check.
    fn policy(&self, timestamp_only: bool) -> VerificationPolicy {
        let p = VerificationPolicy::any_identity();
        let p = if timestamp_only {
            p.skip_tlog_unsafe()
        } else {
            p
        };
        match self.sct {
            SctPolicy::Required => p,
            SctPolicy::NotRequired => p.skip_sct(),
        }
    }

    /// Whatever the format, what a verified keyless result of `bundle` must show before it
    /// vouches: who signed, when, and what proved when.
    pub(super) fn accept_result(
        &self,
        result: &VerificationResult,
        bundle: &Bundle,
    ) -> Result<(String, SystemTime, &'static str), String> {
        if !result.certificate_verified() {
            return Err("certificate chain not verified".into());
        }
        if self.sct == SctPolicy::Required && !result.sct_verified() {
            return Err("SCT not verified".into());
        }
        let material = &bundle.verification_material;
        // Fail closed: log entries that came with the bundle must have been verified.
        if !material.tlog_entries.is_empty() && !result.tlog_verified() {
            return Err("transparency log entry not verified".into());
        }
        // Signing-time evidence is mandatory for keyless: without it, an expired certificate
        // (whose key may since have leaked) would vouch. sigstore-verify has checked the
        // certificate at every verified time (each SET's integrated time, each RFC 3161
        // timestamp) and refused the bundle if any timestamp it carried failed. The evidence
        // shows the log's time when there is one, else the earliest timestamp.
        let stamped = !material
            .timestamp_verification_data
            .rfc3161_timestamps
            .is_empty();
        let (signed_at, source) = match (result.integrated_time(), stamped) {
            (Some(t), false) => (t, "Rekor entry"),
            (Some(t), true) => (t, "Rekor entry and RFC 3161 timestamp"),
            (None, true) => (
                result
                    .verified_timestamps()
                    .iter()
                    .min()
                    .copied()
                    .ok_or("no verified RFC 3161 timestamp")?,
                "RFC 3161 timestamp",
            ),
            (None, false) => {
                return Err("no verified signing time (Rekor entry or timestamp)".into());
            }
        };
        let info = result.certificate().ok_or("no certificate in the result")?;
        match_any(&self.identities, info)?;
        let who = format!(
            "{} (issuer {})",
            info.identity.as_ref().map_or("", |s| s.as_str()),
            info.issuer.as_deref().unwrap_or("")
        );
        Ok((who, to_system_time(signed_at), source))
    }

    fn verify_legacy(&self, subject: &Subject<'_>, sig: &LegacySignature<'_>) -> Checked {
        // 1. A keyless signature has a certificate; a key-signed one is cosign-key's business.
        if sig.certificate.is_none() {
            return Err("no signing certificate (a key signature)".into());
        }
        // 2. Signing-time evidence: the Rekor bundle annotation and/or the RFC 3161 timestamp
        //    annotation. Refused with neither, before anything else, whatever the certificate
        //    says.
        let json = sig.to_bundle_json()?;
        let bundle = Bundle::from_json(&json).map_err(|e| format!("bundle: {e}"))?;
        // 3. sigstore-verify: Fulcio chain valid at the SET's integrated time and at the
        //    timestamp's time, SCT, SET with a Rekor key valid then, timestamp over this
        //    signature by a TSA of the trusted root within its window, log entry body bound to
        //    this signature and payload, and the signature over the exact payload bytes.
        let policy = self.policy(timestamp_only(&bundle));
        let result = self.root()?.verify_bundle(sig.payload, &bundle, &policy)?;
        // 4. Who signed, and when.
        let (who, signed_at, source) = self.accept_result(&result, &bundle)?;
        // 5. What the signed payload claims (read only now that it is verified).
        let reference = payload::check_claims(sig.payload, subject, &self.rule)?;
        Ok(signed(who, signed_at, reference, source))
    }
}

/// RFC 3161 timestamps and no log entry.
fn timestamp_only(bundle: &Bundle) -> bool {
    let material = &bundle.verification_material;
    material.tlog_entries.is_empty()
        && !material
            .timestamp_verification_data
            .rfc3161_timestamps
            .is_empty()
}

/// A keyless signature always has a signing time, and names what proved it.
pub(super) fn signed(who: String, at: SystemTime, detail: String, source: &str) -> Signed {
    Signed {
        signer: who,
        signed_at: Some(at),
        detail,
        more: vec![("signing time".into(), source.into())],
    }
}

impl DigestVerifier for CosignKeylessVerifier {
    fn prepare(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(self.root.refresh())
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
                by_format(
                    c.kind,
                    || bundle::verify_layer(self, &subject, layer),
                    || self.verify_legacy(&subject, &LegacySignature::from_layer(layer)?),
                )
            },
        )
    }
}

impl CosignKeylessVerifier {
    /// The trusted root in use: the file's, or the one TUF trusts now (none after a failed
    /// refresh: then nothing vouches).
    pub(super) fn root(&self) -> Result<Arc<Root>, String> {
        self.root.current()
    }

    pub(super) fn policy_for(&self, bundle: &Bundle) -> VerificationPolicy {
        self.policy(timestamp_only(bundle))
    }
}
