//! Attack: an attestation (an SBOM, a provenance statement) signed by the trusted identity and
//! attached to the digest, presented as a signature. Only the predicate type
//! `https://sigstore.dev/cosign/sign/v1` says "this image is signed".

mod support;

use portcullis::refs::Digest;
use support::cosign::dir::bundle_candidate;
use support::cosign::fixtures::*;
use support::cosign::signer::statement;

#[test]
fn attestation_of_another_predicate_type_never_vouches() {
    // The real bundle with its statement's predicate type changed to SLSA provenance. The
    // envelope's signature no longer verifies either, but the refusal comes first and names
    // the predicate: the statement is read before any cryptography.
    let digest: Digest = BUNDLE_DIGEST.parse().unwrap();
    let text = String::from_utf8(bundle_bytes()).unwrap();
    let provenance = edit_json(&text, |b| {
        use base64::Engine;
        let engine = base64::engine::general_purpose::STANDARD;
        let payload = b["dsseEnvelope"]["payload"].as_str().unwrap();
        let statement = String::from_utf8(engine.decode(payload).unwrap()).unwrap();
        let statement = statement.replace(
            "https://sigstore.dev/cosign/sign/v1",
            "https://slsa.dev/provenance/v1",
        );
        b["dsseEnvelope"]["payload"] = engine.encode(statement).into();
    });
    let c = bundle_candidate(provenance.as_bytes(), &digest);
    let v = keyless_verifier(GITHUB, KUBEWARDEN);
    let why = refused(verify(&v, &[c], "ghcr.io", KUBEWARDEN_REPO, &digest));
    assert!(
        why.contains(
            "an attestation of \"https://slsa.dev/provenance/v1\", not a cosign signature"
        ),
        "{why}"
    );
}

#[test]
fn validly_signed_attestation_of_another_predicate_type_never_vouches() {
    // Signed by the trusted key, about this digest: only the predicate type differs.
    let (key, v, _dir) = trusted_test_key();
    let digest = Digest::sha256_of(b"an image manifest");
    for predicate in [
        "https://spdx.dev/Document",
        "https://slsa.dev/provenance/v1",
    ] {
        let attestation = key.sign_bundle_dsse(&statement(&digest, predicate));
        let c = bundle_candidate(&attestation, &digest);
        assert_refused(
            verify(&v, &[c], LOCAL, "team/app", &digest),
            &format!("an attestation of {predicate:?}, not a cosign signature"),
        );
    }
    let signature =
        key.sign_bundle_dsse(&statement(&digest, "https://sigstore.dev/cosign/sign/v1"));
    vouched(verify(
        &v,
        &[bundle_candidate(&signature, &digest)],
        LOCAL,
        "team/app",
        &digest,
    ));
}
