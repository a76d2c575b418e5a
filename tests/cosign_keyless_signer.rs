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

#[test]
fn keyless_bundle_v03_vouches_and_another_identity_does_not() {
    let sigstore = TestSigstore::new();
    let v = test_keyless_verifier(&sigstore.trusted_root_json(), EMAIL, ISSUER);
    let manifest = b"an image manifest";
    let digest = Digest::sha256_of(manifest);
    let t = Timing::recent();
    let bundle = sigstore.sign_bundle(EMAIL, ISSUER, manifest, t);
    let e = vouched(verify_local(
        &v,
        support::cosign::dir::bundle_candidate(&bundle, &digest),
        "team/app",
        &digest,
    ));
    assert_eq!(e.format, "cosign bundle v0.3");
    assert_eq!(e.signer, format!("{EMAIL} (issuer {ISSUER})"));
    assert_eq!(
        e.signed_at,
        Some(UNIX_EPOCH + Duration::from_secs(t.integrated_time as u64))
    );
    let other = sigstore.sign_bundle("mallory@example.com", ISSUER, manifest, t);
    assert_refused(
        verify_local(
            &v,
            support::cosign::dir::bundle_candidate(&other, &digest),
            "team/app",
            &digest,
        ),
        "no configured identity matches",
    );
    // Over other bytes: not a signature of this digest.
    let elsewhere = sigstore.sign_bundle(EMAIL, ISSUER, b"another manifest", t);
    refused(verify_local(
        &v,
        support::cosign::dir::bundle_candidate(&elsewhere, &digest),
        "team/app",
        &digest,
    ));
}
