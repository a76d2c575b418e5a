//! Attack: replaying a signature past its `expiry`, or one whose certificate has expired
//! (no verified timestamp can rescue it: Portcullis does not verify RFC 3161 timestamps).

mod support;

use std::time::{Duration, SystemTime};

use portcullis::refs::Digest;
use portcullis::trust::signature::{ArtifactKind, Verdict};
use support::notation_signer::*;

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn signature_past_its_expiry_is_refused_at_strict() {
    let signer = NotationSigner::new(LeafKey::EcP256, "ci");
    let digest = Digest::sha256_of(b"image");
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_trust(dir.path(), "strict", SCOPE, "ca", &signer.root_pem);
    let now = SystemTime::now();
    for kind in [ArtifactKind::NotationJws, ArtifactKind::NotationCose] {
        let o = SignOptions {
            expiry: Some(now + HOUR),
            ..SignOptions::default()
        };
        let cand = signer.candidate(&digest, &o, kind, None);
        assert!(matches!(
            verify_in_scope(&cfg, &digest, std::slice::from_ref(&cand), now),
            Verdict::Vouched(_)
        ));
        // Exactly at expiry it has expired (the spec: "greater than or equal").
        let at_expiry = now + HOUR;
        let why = refusal(verify_in_scope(&cfg, &digest, &[cand], at_expiry));
        assert!(why.contains("expiry failed"), "{why}");
    }
}

#[test]
fn expired_certificate_is_refused() {
    let now = SystemTime::now();
    let signer =
        NotationSigner::with_validity(LeafKey::Rsa2048, "ci", now - 48 * HOUR, now - 24 * HOUR);
    let digest = Digest::sha256_of(b"image");
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_trust(dir.path(), "strict", SCOPE, "ca", &signer.root_pem);
    let o = SignOptions {
        signing_time: now - 36 * HOUR,
        ..SignOptions::default()
    };
    let cand = signer.candidate(&digest, &o, ArtifactKind::NotationJws, None);
    let why = refusal(verify_in_scope(
        &cfg,
        &digest,
        std::slice::from_ref(&cand),
        now,
    ));
    assert!(
        why.contains("authentic timestamp failed") && why.contains("is not valid at now"),
        "{why}"
    );
    // While it was valid, it vouched.
    assert!(matches!(
        verify_in_scope(&cfg, &digest, &[cand], now - 30 * HOUR),
        Verdict::Vouched(_)
    ));
}
