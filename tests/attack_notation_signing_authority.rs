//! Attack: a signature made under the `notary.x509.signingAuthority` scheme presented to a
//! statement whose store is a `ca` store (and the reverse). Each scheme chains only to its
//! own kind of store, so neither vouches; with the matching store both do.

mod support;

use std::time::SystemTime;

use portcullis::refs::Digest;
use portcullis::trust::signature::{ArtifactKind, Verdict};
use support::notation_signer::*;

fn sa() -> SignOptions {
    SignOptions {
        scheme: "notary.x509.signingAuthority",
        ..SignOptions::default()
    }
}

#[test]
fn signing_authority_signature_against_a_ca_store_is_refused() {
    let signer = NotationSigner::new(LeafKey::EcP256, "ci");
    let digest = Digest::sha256_of(b"image");
    let ca = tempfile::tempdir().unwrap();
    let ca = write_trust(ca.path(), "strict", SCOPE, "ca", &signer.root_pem);
    let sa_store = tempfile::tempdir().unwrap();
    let sa_store = write_trust(
        sa_store.path(),
        "strict",
        SCOPE,
        "signingAuthority",
        &signer.root_pem,
    );
    for kind in [ArtifactKind::NotationJws, ArtifactKind::NotationCose] {
        let sa_sig = signer.candidate(&digest, &sa(), kind, None);
        let why = refusal(verify_in_scope(
            &ca,
            &digest,
            std::slice::from_ref(&sa_sig),
            SystemTime::now(),
        ));
        assert!(why.contains("names no signingAuthority store"), "{why}");
        let x509_sig = signer.candidate(&digest, &SignOptions::default(), kind, None);
        let why = refusal(verify_in_scope(
            &sa_store,
            &digest,
            &[x509_sig],
            SystemTime::now(),
        ));
        assert!(why.contains("names no ca store"), "{why}");
        // The signing authority's time is authenticated, and shown as the signing time.
        let Verdict::Vouched(e) = verify_in_scope(&sa_store, &digest, &[sa_sig], SystemTime::now())
        else {
            panic!("a signingAuthority signature with its own store must vouch");
        };
        assert!(e.signed_at.is_some());
    }
}

#[test]
fn signing_authority_time_outside_the_certificate_is_refused() {
    let signer = NotationSigner::new(LeafKey::Rsa2048, "ci");
    let digest = Digest::sha256_of(b"image");
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_trust(
        dir.path(),
        "strict",
        SCOPE,
        "signingAuthority",
        &signer.root_pem,
    );
    let o = SignOptions {
        signing_time: SystemTime::now() - std::time::Duration::from_secs(3 * 86400),
        ..sa()
    };
    let cand = signer.candidate(&digest, &o, ArtifactKind::NotationJws, None);
    let why = refusal(verify_in_scope(&cfg, &digest, &[cand], SystemTime::now()));
    assert!(
        why.contains("not valid at the authentic signing time"),
        "{why}"
    );
}
