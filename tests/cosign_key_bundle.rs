//! Key-signed Sigstore bundles (cosign 3's default format for `cosign sign --key`) under a
//! `cosign-key` source: DSSE and message signatures made by the test signer, key-only.

mod support;

use portcullis::refs::Digest;
use support::cosign::dir::bundle_candidate;
use support::cosign::fixtures::*;
use support::cosign::signer::{CosignTestKey, statement};

const SIGN: &str = "https://sigstore.dev/cosign/sign/v1";

#[test]
fn dsse_and_message_bundles_vouch_with_the_key() {
    let (key, v, _dir) = trusted_test_key();
    let manifest = b"an image manifest";
    let digest = Digest::sha256_of(manifest);
    let dsse = bundle_candidate(&key.sign_bundle_dsse(&statement(&digest, SIGN)), &digest);
    let e = vouched(verify(&v, &[dsse], LOCAL, "team/app", &digest));
    assert_eq!(e.format, "cosign bundle v0.3");
    assert!(
        e.details
            .iter()
            .any(|(_, d)| d == "DSSE in-toto cosign/sign/v1"),
        "{e:?}"
    );
    let msg = bundle_candidate(&key.sign_bundle_message(manifest), &digest);
    vouched(verify(&v, &[msg], LOCAL, "team/app", &digest));
}

#[test]
fn bundles_by_another_key_or_for_other_bytes_are_refused() {
    let (_key, v, _dir) = trusted_test_key();
    let other = CosignTestKey::generate();
    let manifest = b"an image manifest";
    let digest = Digest::sha256_of(manifest);
    let dsse = bundle_candidate(&other.sign_bundle_dsse(&statement(&digest, SIGN)), &digest);
    assert_refused(
        verify(&v, &[dsse], LOCAL, "team/app", &digest),
        "does not verify with any configured key",
    );
    let msg = bundle_candidate(&other.sign_bundle_message(manifest), &digest);
    assert_refused(
        verify(&v, &[msg], LOCAL, "team/app", &digest),
        "does not verify with any configured key",
    );
}

#[test]
fn keyless_bundle_is_not_a_key_signature() {
    let (_key, v, _dir) = trusted_test_key();
    let digest: Digest = BUNDLE_DIGEST.parse().unwrap();
    let c = bundle_candidate(&bundle_bytes(), &digest);
    assert_refused(
        verify(&v, &[c], "ghcr.io", KUBEWARDEN_REPO, &digest),
        "signed with a certificate",
    );
}
