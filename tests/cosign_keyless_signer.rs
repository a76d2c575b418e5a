//! The keyless test signer (a Fulcio-like CA and Rekor-like log of our own) against the
//! keyless verifier: what end-to-end tests push must verify here first.

mod support;

use std::time::{Duration, UNIX_EPOCH};

use portcullis::refs::Digest;
use support::cosign::fixtures::*;
use support::cosign::keyless_signer::{TestSigstore, Timing};

#[test]
fn legacy_keyless_signature_vouches_with_its_signing_time() {
    let sigstore = TestSigstore::new();
    let v = test_keyless_verifier(&sigstore.trusted_root_json(), EMAIL, ISSUER);
    let digest = Digest::sha256_of(b"image");
    let t = Timing::recent();
    let sig = sigstore.sign_image(
        EMAIL,
        ISSUER,
        "127.0.0.1:5000/team/app:v1",
        &digest.to_string(),
        t,
    );
    let e = vouched(verify_local(&v, sig.candidate(), "team/app", &digest));
    assert_eq!(e.signer, format!("{EMAIL} (issuer {ISSUER})"));
    assert_eq!(
        e.signed_at,
        Some(UNIX_EPOCH + Duration::from_secs(t.integrated_time as u64))
    );
    // Another instance's root does not know this CA or log.
    let other = TestSigstore::new();
    let v = test_keyless_verifier(&other.trusted_root_json(), EMAIL, ISSUER);
    refused(verify_local(&v, sig.candidate(), "team/app", &digest));
}
