//! Attack: a valid Notation signature over another digest attached to this one (the
//! manifest's `subject` says this digest, the signed `targetArtifact` says another). Refused
//! for JWS and COSE, and a payload whose size or media type disagrees with the subject
//! descriptor is refused too.

mod support;

use std::time::SystemTime;

use portcullis::refs::Digest;
use portcullis::trust::signature::{ArtifactKind, Verdict};
use support::notation_signer::*;

#[test]
fn signature_over_another_digest_does_not_vouch() {
    let signer = NotationSigner::new(LeafKey::EcP256, "ci");
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_trust(dir.path(), "strict", SCOPE, "ca", &signer.root_pem);
    let signed = Digest::sha256_of(b"the image that was signed");
    let pulled = Digest::sha256_of(b"the image being pulled");
    for kind in [ArtifactKind::NotationJws, ArtifactKind::NotationCose] {
        let o = SignOptions::default();
        let envelope = match kind {
            ArtifactKind::NotationCose => signer.cose(&signed, &o),
            _ => signer.jws(&signed, &o),
        };
        let ty = if kind == ArtifactKind::NotationCose {
            "application/cose"
        } else {
            "application/jose+json"
        };
        // The attacker's manifest names the pulled digest as its subject.
        let cand = candidate_of(
            signer.manifest(&pulled, o.size, &envelope, ty, None),
            envelope,
        );
        let why = refusal(verify_in_scope(
            &cfg,
            &pulled,
            std::slice::from_ref(&cand),
            SystemTime::now(),
        ));
        assert!(
            why.contains(&format!("the signature is over {signed}")),
            "{kind:?}: {why}"
        );
        // Sanity: the same envelope vouches for the digest it signs.
        let honest = signer.candidate(&signed, &o, kind, None);
        assert!(matches!(
            verify_in_scope(&cfg, &signed, &[honest], SystemTime::now()),
            Verdict::Vouched(_)
        ));
    }
}

#[test]
fn size_or_media_type_that_disagrees_with_the_subject_does_not_vouch() {
    let signer = NotationSigner::new(LeafKey::Rsa2048, "ci");
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_trust(dir.path(), "strict", SCOPE, "ca", &signer.root_pem);
    let digest = Digest::sha256_of(b"image");
    let o = SignOptions {
        size: 99,
        ..SignOptions::default()
    };
    let envelope = signer.jws(&digest, &o);
    // The manifest's subject descriptor says 1234 bytes; the payload says 99.
    let cand = candidate_of(
        signer.manifest(&digest, 1234, &envelope, "application/jose+json", None),
        envelope,
    );
    let why = refusal(verify_in_scope(&cfg, &digest, &[cand], SystemTime::now()));
    assert!(why.contains("of 99 bytes"), "{why}");
}
