//! Attack: a valid signature of another image presented for this digest (the legacy payload's
//! `docker-manifest-digest`, a DSSE statement's subject, a referrer's own `subject`).

mod support;

use portcullis::refs::Digest;
use portcullis::trust::cosign::TransparencyLog;
use support::cosign::dir::bundle_candidate;
use support::cosign::fixtures::*;
use support::cosign::signer::statement;

fn other_digest() -> Digest {
    Digest::sha256_of(b"another image")
}

#[test]
fn legacy_signature_of_another_digest_is_refused() {
    // Real: cosign's signature of 634a8f35... presented for a manifest with an extra field.
    let v = key_verifier("cosign.pub", TransparencyLog::NotRequired);
    let (_, candidate) = dir_fixture("dir-img-cosign-valid");
    let (modified, _) = dir_fixture("dir-img-cosign-modified-manifest");
    let why = refused(verify(&v, &[candidate], HOST, SINGLE, &modified));
    assert!(why.contains(&format!("not for {modified}")), "{why}");

    // Test signer: a valid signature by a trusted key, over a payload naming another digest.
    let (key, v, _dir) = trusted_test_key();
    let wanted = Digest::sha256_of(b"this image");
    let sig = key.sign_image("127.0.0.1:5000/team/app", &other_digest().to_string());
    let why = refused(verify_local(&v, sig.candidate(), "team/app", &wanted));
    assert!(
        why.contains(&format!("signed for {}, not for {wanted}", other_digest())),
        "{why}"
    );
}

#[test]
fn dsse_statement_about_another_digest_is_refused() {
    // The real bundle, attached (as discovery would see it) to another digest.
    let v = keyless_verifier(GITHUB, KUBEWARDEN);
    let other = other_digest();
    let c = bundle_candidate(&bundle_bytes(), &other);
    let why = refused(verify(&v, &[c], "ghcr.io", KUBEWARDEN_REPO, &other));
    assert!(
        why.contains(&format!("the statement's subject is not {other}")),
        "{why}"
    );
}

#[test]
fn referrer_whose_subject_is_another_digest_is_refused() {
    let v = keyless_verifier(GITHUB, KUBEWARDEN);
    let digest: Digest = BUNDLE_DIGEST.parse().unwrap();
    let mut c = bundle_candidate(&bundle_bytes(), &digest);
    c.subject = Some(other_digest());
    let why = refused(verify(&v, &[c], "ghcr.io", KUBEWARDEN_REPO, &digest));
    assert!(why.contains("its manifest's subject is"), "{why}");
}

#[test]
fn validly_signed_statement_about_another_digest_is_refused() {
    // The trusted key signed a statement about another image; attached here as a referrer.
    let (key, v, _dir) = trusted_test_key();
    let wanted = Digest::sha256_of(b"this image");
    let bundle = key.sign_bundle_dsse(&statement(
        &other_digest(),
        "https://sigstore.dev/cosign/sign/v1",
    ));
    assert_refused(
        verify(
            &v,
            &[bundle_candidate(&bundle, &wanted)],
            LOCAL,
            "team/app",
            &wanted,
        ),
        &format!("the statement's subject is not {wanted}"),
    );
}
