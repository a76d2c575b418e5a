//! A toy digest verifier and signed images on the fake registry, for tests of what the proxy
//! does with signature verdicts (the real cosign / Notation verifiers have their own tests).

use std::time::SystemTime;

use portcullis::refs::Digest;
use portcullis::trust::signature::{
    ArtifactKind, Candidate, DigestVerifier, Evidence, Subject, Verdict,
};

use super::FakeRegistry;

pub const REPO: &str = "team/app";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const SIMPLE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// Vouches when a simple-signing layer holds `<key>:<digest>` (a stand-in for a signature
/// made with `key`).
/// A verifier factory (`Proxy::with_verifiers`) that makes every digest-vouching source the
/// toy key "ci".
pub fn ci_verifier(
    _: &str,
    _: &portcullis::config::TrustSourceConfig,
    _: &std::path::Path,
) -> anyhow::Result<std::sync::Arc<dyn DigestVerifier>> {
    Ok(std::sync::Arc::new(ToyKey("ci")))
}

pub struct ToyKey(pub &'static str);

impl DigestVerifier for ToyKey {
    fn accepts(&self, kind: ArtifactKind) -> bool {
        kind == ArtifactKind::CosignSimpleSigning
    }
    fn verify(&self, s: Subject<'_>, candidates: &[Candidate], _now: SystemTime) -> Verdict {
        let want = format!("{}:{}", self.0, s.digest);
        for c in candidates {
            if c.layers.iter().any(|l| l.bytes == want.as_bytes()) {
                return Verdict::Vouched(Evidence {
                    candidate: c.manifest_digest.clone(),
                    format: "toy".into(),
                    signer: format!("key {}", self.0),
                    signed_at: None,
                    details: vec![],
                });
            }
        }
        Verdict::No(format!(
            "none of {} signatures is by key {}",
            candidates.len(),
            self.0
        ))
    }
}

/// An image (config + one layer) under `tag`; returns (manifest digest, layer digest).
pub fn image(reg: &FakeRegistry, tag: &str, note: &str) -> (Digest, String) {
    let config = reg.blob(REPO, format!("{{\"note\":\"{note}\"}}").as_bytes());
    let layer = reg.blob(REPO, format!("layer {note}").as_bytes());
    let m = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":1}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":1}}]}}"#
    );
    let d = reg.manifest(REPO, Some(tag), m.as_bytes(), OCI_MANIFEST);
    (d.parse().unwrap(), layer)
}

/// cosign's legacy `.sig` manifest for `d` whose one layer says `payload`; returns the
/// signature manifest's digest and its layer's.
pub fn legacy_sig(reg: &FakeRegistry, d: &Digest, payload: &str) -> (String, String) {
    let layer = reg.blob(REPO, payload.as_bytes());
    let m = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": reg.blob(REPO, b"{}"), "size": 2},
        "layers": [{"mediaType": SIMPLE, "digest": layer, "size": payload.len(),
                    "annotations": {"dev.cosignproject.cosign/signature": "toy"}}],
    });
    let bytes = serde_json::to_vec(&m).unwrap();
    let sd = reg.manifest(
        REPO,
        Some(&format!("sha256-{}.sig", d.hex())),
        &bytes,
        OCI_MANIFEST,
    );
    (sd, layer)
}
