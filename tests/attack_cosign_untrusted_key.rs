//! Attack: a well-formed cosign signature made with a key that is not configured, or bytes
//! that are not exactly what the key signed.

mod support;

use portcullis::refs::Digest;
use portcullis::trust::cosign::TransparencyLog;
use support::cosign::dir::{candidate_from_layers, layer_from_signature_file};
use support::cosign::fixtures::*;
use support::cosign::signer::{CosignTestKey, SignedSig};

#[test]
fn real_signature_by_an_unknown_key_is_refused() {
    let v = key_verifier("cosign.pub", TransparencyLog::NotRequired);
    let sig = std::fs::read(ci("unknown-cosign-key.signature")).unwrap();
    let c = candidate_from_layers(vec![layer_from_signature_file(&sig)]);
    let (digest, _) = dir_fixture("dir-img-cosign-valid");
    let why = refused(verify(&v, &[c], HOST, SINGLE, &digest));
    assert!(
        why.contains("does not verify with any configured key"),
        "{why}"
    );
    // The key + SET fixture with the other real key (its SET is valid: the key is what fails).
    let (digest, c) = dir_fixture(KEY_REKOR_DIR);
    let why = refused(verify(
        &key_verifier("cosign.pub", TransparencyLog::Required),
        &[c],
        HOST,
        KEY_REKOR_REPO,
        &digest,
    ));
    assert!(
        why.contains("does not verify with any configured key"),
        "{why}"
    );
}

#[test]
fn test_signer_signature_by_another_key_is_refused() {
    let (_trusted, v, _dir) = trusted_test_key();
    let attacker = CosignTestKey::generate();
    let digest = Digest::sha256_of(b"image");
    let sig = attacker.sign_image("127.0.0.1:5000/team/app", &digest.to_string());
    assert_refused(
        verify_local(&v, sig.candidate(), "team/app", &digest),
        "does not verify with any configured key",
    );
}

#[test]
fn signature_over_other_bytes_of_the_same_claims_is_refused() {
    // The same JSON claims, re-serialized (a space added): the signature is over exact bytes.
    let (key, v, _dir) = trusted_test_key();
    let digest = Digest::sha256_of(b"image");
    let good = key.sign_image("127.0.0.1:5000/team/app", &digest.to_string());
    let mut payload = good.payload.clone();
    payload.insert(1, b' ');
    let forged = SignedSig::assemble(
        payload,
        good.signature_b64.clone(),
        Default::default(),
        &digest.to_string(),
    );
    assert_refused(
        verify_local(&v, forged.candidate(), "team/app", &digest),
        "does not verify with any configured key",
    );
    vouched(verify_local(&v, good.candidate(), "team/app", &digest));
}
