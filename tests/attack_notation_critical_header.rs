//! Attack: a signature carrying a critical protected header the verifier does not know
//! (it might restrict where the signature is valid). The spec says to refuse it; a
//! verification plugin requirement is refused the same way (Portcullis runs no plugins).

mod support;

use std::time::SystemTime;

use portcullis::refs::Digest;
use portcullis::trust::signature::ArtifactKind;
use support::notation_signer::*;

#[test]
fn unknown_critical_header_is_refused() {
    let signer = NotationSigner::new(LeafKey::EcP256, "ci");
    let digest = Digest::sha256_of(b"image");
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_trust(dir.path(), "strict", SCOPE, "ca", &signer.root_pem);
    for kind in [ArtifactKind::NotationJws, ArtifactKind::NotationCose] {
        let o = SignOptions {
            extra_critical: Some(("io.example.onlyOnTuesdays", "true")),
            ..SignOptions::default()
        };
        let cand = signer.candidate(&digest, &o, kind, None);
        let why = refusal(verify_in_scope(&cfg, &digest, &[cand], SystemTime::now()));
        assert!(
            why.contains("unknown critical header \"io.example.onlyOnTuesdays\""),
            "{kind:?}: {why}"
        );
        let o = SignOptions {
            extra_critical: Some(("io.cncf.notary.verificationPlugin", "com.example.plugin")),
            ..SignOptions::default()
        };
        let cand = signer.candidate(&digest, &o, kind, None);
        let why = refusal(verify_in_scope(&cfg, &digest, &[cand], SystemTime::now()));
        assert!(why.contains("verification plugin"), "{kind:?}: {why}");
    }
}
