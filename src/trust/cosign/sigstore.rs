//! The glue to sigstore-verify: loading a `trusted_root.json`, and handing it bundles (real
//! v0.3 ones, or v0.1 ones made by the legacy adapter). Every use of the sigstore-* crates'
//! verification API goes through here, so an upgrade of their monthly breaking minors touches
//! one file.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use sigstore_trust_root::TrustedRoot;
use sigstore_types::{Artifact, Bundle, DerPublicKey};
use sigstore_verify::{Policy, PublicKeyVerificationPolicy, VerificationResult, Verifier};

/// A loaded trusted root, prepared once.
pub struct Root {
    pub verifier: Verifier,
    /// How many timestamp authorities (`timestampAuthorities`) the root names: key-only
    /// signatures use their RFC 3161 timestamps only when there are some.
    pub tsas: usize,
    /// What the log shows: file and content digest.
    pub describe: String,
}

impl Root {
    /// Reads and prepares a `trusted_root.json`; rejects malformed or duplicate trust material
    /// at start rather than at the first pull.
    pub fn load(path: &Path) -> anyhow::Result<Root> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading Sigstore trusted root {}", path.display()))?;
        let root = Root::from_json(&text).with_context(|| path.display().to_string())?;
        let sha = hex::encode(sigstore_crypto::sha256(text.as_bytes()).as_bytes());
        Ok(Root {
            describe: format!("{} (sha256:{sha})", path.display()),
            ..root
        })
    }

    pub fn from_json(text: &str) -> anyhow::Result<Root> {
        let root = TrustedRoot::from_json(text)
            .map_err(|e| anyhow::anyhow!("not a Sigstore trusted_root.json: {e}"))?;
        tracing::info!(
            fulcio_cas = root.certificate_authorities.len(),
            rekor_logs = root.tlogs.len(),
            ct_logs = root.ctlogs.len(),
            tsas = root.timestamp_authorities.len(),
            "Sigstore trusted root loaded"
        );
        let verifier = Verifier::new(&root)
            .map_err(|e| anyhow::anyhow!("trusted root rejected by sigstore-verify: {e}"))?;
        Ok(Root {
            verifier,
            tsas: root.timestamp_authorities.len(),
            describe: "trusted_root.json".into(),
        })
    }

    /// Verifies `bundle` (JSON) over `artifact` with `policy`.
    pub fn verify<'a>(
        &self,
        artifact: impl Into<Artifact<'a>>,
        bundle_json: &str,
        policy: &(impl Policy + ?Sized),
    ) -> Result<VerificationResult, String> {
        let bundle = Bundle::from_json(bundle_json).map_err(|e| format!("bundle: {e}"))?;
        self.verify_bundle(artifact, &bundle, policy)
    }

    pub fn verify_bundle<'a>(
        &self,
        artifact: impl Into<Artifact<'a>>,
        bundle: &Bundle,
        policy: &(impl Policy + ?Sized),
    ) -> Result<VerificationResult, String> {
        self.verifier
            .verify(artifact, bundle, policy)
            .map_err(|e| e.to_string())
    }

    /// A key-signed legacy signature whose Rekor SET must verify: the SET against the
    /// trusted root's Rekor keys valid at the integrated time, the log entry body bound to
    /// this signature, key and payload (sigstore-verify's tlog consistency check).
    /// Returns the SET's integrated time.
    pub fn verify_key_set(
        &self,
        payload: &[u8],
        bundle_json: &str,
        key: &DerPublicKey,
    ) -> Result<SystemTime, String> {
        let policy = PublicKeyVerificationPolicy::new(key.clone());
        let result = self.verify(payload, bundle_json, &policy)?;
        // Fail closed: a bundle whose entry carried no promise would pass inclusion checks
        // vacuously; only an authenticated integrated time counts as "logged".
        match (result.tlog_verified(), result.integrated_time()) {
            (true, Some(t)) => Ok(to_system_time(t)),
            _ => Err("no verified Rekor SET".into()),
        }
    }
}

pub fn to_system_time(t: jiff::Timestamp) -> SystemTime {
    let secs = t.as_second();
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}
