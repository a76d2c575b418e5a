//! `type = "cosign-keyless"`: a digest is vouched for by a signature whose Fulcio certificate
//! chains to the trusted root at the signing time proved by Rekor, and names a configured
//! identity. Legacy `.sig` layers go through the v0.1 adapter; v0.3 bundles through `bundle`.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::future::BoxFuture;

use sigstore_verify::{VerificationPolicy, VerificationResult};

use super::bundle;
use super::config::SignedIdentity;
use super::config::{CosignKeylessConfig, SctPolicy};
use super::identity::{Identity, match_any};
use super::legacy::LegacySignature;
use super::payload;
use super::sigstore::{Root, to_system_time};
use super::tuf_root::RootSource;
use super::{by_format, first_vouching, identity_rule};
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
    fn policy(&self) -> VerificationPolicy {
        let p = VerificationPolicy::any_identity();
        match self.sct {
            SctPolicy::Required => p,
            SctPolicy::NotRequired => p.skip_sct(),
        }
    }

    /// Whatever the format, what a verified keyless result must show before it vouches.
    pub(super) fn accept_result(
        &self,
        result: &VerificationResult,
    ) -> Result<(String, SystemTime), String> {
        if !result.certificate_verified() {
            return Err("certificate chain not verified".into());
        }
        if self.sct == SctPolicy::Required && !result.sct_verified() {
            return Err("SCT not verified".into());
        }
        // Signing-time evidence is mandatory for keyless: without it, an expired certificate
        // (whose key may since have leaked) would vouch.
        let signed_at = result
            .integrated_time()
            .or_else(|| result.verified_timestamps().iter().min().copied())
            .filter(|_| result.tlog_verified())
            .ok_or("no verified signing time (Rekor entry or timestamp)")?;
        let info = result.certificate().ok_or("no certificate in the result")?;
        match_any(&self.identities, info)?;
        let who = format!(
            "{} (issuer {})",
            info.identity.as_ref().map_or("", |s| s.as_str()),
            info.issuer.as_deref().unwrap_or("")
        );
        Ok((who, to_system_time(signed_at)))
    }

    fn verify_legacy(
        &self,
        subject: &Subject<'_>,
        sig: &LegacySignature<'_>,
    ) -> Result<(String, SystemTime, String), String> {
        // 1. A keyless signature has a certificate; a key-signed one is cosign-key's business.
        if sig.certificate.is_none() {
            return Err("no signing certificate (a key signature)".into());
        }
        // 2. Signing-time evidence: the Rekor bundle annotation. Refused without it, before
        //    anything else, whatever the certificate says.
        let bundle = sig.to_bundle_json()?;
        // 3. sigstore-verify: Fulcio chain valid at the SET's integrated time, SCT, SET with a
        //    Rekor key valid then, log entry body bound to this signature and payload, and the
        //    signature over the exact payload bytes.
        let result = self.root()?.verify(sig.payload, &bundle, &self.policy())?;
        // 4. Who signed, and when.
        let (who, signed_at) = self.accept_result(&result)?;
        // 5. What the signed payload claims (read only now that it is verified).
        let reference = payload::check_claims(sig.payload, subject, &self.rule)?;
        Ok((who, signed_at, reference))
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
                // Keyless always has a signing time; `by_format` takes the key path's Option.
                let timed =
                    |(who, at, detail): (String, SystemTime, String)| (who, Some(at), detail);
                by_format(
                    c.kind,
                    || bundle::verify_layer(self, &subject, layer).map(timed),
                    || {
                        let sig = LegacySignature::from_layer(layer)?;
                        self.verify_legacy(&subject, &sig).map(timed)
                    },
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

    pub(super) fn policy_for_bundle(&self) -> VerificationPolicy {
        self.policy()
    }
}
