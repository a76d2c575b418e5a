//! Attack: a Notation signature whose chain does not end in the trust store: another CA
//! with the very same root name (names are not trust, bytes are), and a self-signed
//! certificate nobody put in the store. Refused, naming the chain and the store.

mod support;

use std::time::SystemTime;

use portcullis::refs::Digest;
use portcullis::trust::signature::ArtifactKind;
use support::notation_signer::*;

#[test]
fn chain_to_another_ca_with_the_same_name_is_refused() {
    let trusted = NotationSigner::new(LeafKey::Rsa2048, "ci");
    let attacker = NotationSigner::new(LeafKey::Rsa2048, "ci");
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_trust(dir.path(), "strict", SCOPE, "ca", &trusted.root_pem);
    let digest = Digest::sha256_of(b"image");
    for kind in [ArtifactKind::NotationJws, ArtifactKind::NotationCose] {
        let cand = attacker.candidate(&digest, &SignOptions::default(), kind, None);
        let why = refusal(verify_in_scope(&cfg, &digest, &[cand], SystemTime::now()));
        assert!(why.contains("is in trust store ca:test"), "{why}");
        assert!(why.contains("Portcullis Test Root"), "{why}");
    }
}

#[test]
fn self_signed_chain_not_in_the_store_is_refused() {
    let trusted = NotationSigner::new(LeafKey::EcP256, "ci");
    let attacker = NotationSigner::self_signed(LeafKey::Rsa2048, "ci");
    assert_eq!(attacker.chain.len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_trust(dir.path(), "strict", SCOPE, "ca", &trusted.root_pem);
    let digest = Digest::sha256_of(b"image");
    let cand = attacker.candidate(
        &digest,
        &SignOptions::default(),
        ArtifactKind::NotationJws,
        None,
    );
    let why = refusal(verify_in_scope(
        &cfg,
        &digest,
        std::slice::from_ref(&cand),
        SystemTime::now(),
    ));
    assert!(why.contains("no certificate of the chain"), "{why}");
    // Once it is in the store, the same self-signed signature vouches (as in notation).
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_trust(dir.path(), "strict", SCOPE, "ca", &attacker.root_pem);
    assert!(matches!(
        verify_in_scope(&cfg, &digest, &[cand], SystemTime::now()),
        portcullis::trust::signature::Verdict::Vouched(_)
    ));
}
