//! Attack: a signature copied from another repository (cosign itself does not check the
//! legacy payload's `docker-reference`; `signed_identity` does, as containers-policy.json's
//! `signedIdentity`).

mod support;

use portcullis::refs::Digest;
use portcullis::trust::cosign::{Remap, SignedIdentity, TransparencyLog};
use support::cosign::fixtures::*;

#[test]
fn real_signature_pulled_from_another_repository_is_refused_under_match_repository() {
    let (digest, c) = dir_fixture("dir-img-cosign-valid");
    let v = key_verifier("cosign.pub", TransparencyLog::NotRequired);
    let why = refused(verify(
        &v,
        std::slice::from_ref(&c),
        HOST,
        "team/other",
        &digest,
    ));
    assert!(
        why.contains(&format!("signed for repository {HOST}/{SINGLE}")),
        "{why}"
    );
    // Same path, another registry host: also another repository.
    refused(verify(
        &v,
        std::slice::from_ref(&c),
        "mirror.example.com",
        SINGLE,
        &digest,
    ));
    // The named loosenings, each as documented.
    let any = key_verifier_with("cosign.pub", SignedIdentity::Any);
    vouched(verify(
        &any,
        std::slice::from_ref(&c),
        HOST,
        "team/other",
        &digest,
    ));
    let exact = key_verifier_with(
        "cosign.pub",
        SignedIdentity::ExactRepository(format!("{HOST}/{SINGLE}")),
    );
    vouched(verify(
        &exact,
        std::slice::from_ref(&c),
        "mirror.example.com",
        "x/y",
        &digest,
    ));
    let remap = key_verifier_with(
        "cosign.pub",
        SignedIdentity::Remap(Remap {
            prefix: "mirror.example.com/prod".into(),
            signed_prefix: HOST.to_string() + "/cosign-signed-single",
        }),
    );
    // Prefixes match whole segments: prod/-sample is not prod-sample.
    refused(verify(
        &remap,
        std::slice::from_ref(&c),
        "mirror.example.com",
        "prod-sample",
        &digest,
    ));
    let remap = key_verifier_with(
        "cosign.pub",
        SignedIdentity::Remap(Remap {
            prefix: "mirror.example.com/prod".into(),
            signed_prefix: HOST.to_string(),
        }),
    );
    vouched(verify(
        &remap,
        &[c],
        "mirror.example.com",
        &format!("prod/{SINGLE}"),
        &digest,
    ));
}

#[test]
fn signer_trusted_for_repository_a_does_not_vouch_in_b() {
    let (key, v, _dir) = trusted_test_key();
    let digest = Digest::sha256_of(b"image");
    // Tag and digest in the reference are ignored; the repository is not.
    let a = key.sign_image("127.0.0.1:5000/team/a:v1", &digest.to_string());
    vouched(verify_local(&v, a.candidate(), "team/a", &digest));
    let why = refused(verify_local(&v, a.candidate(), "team/b", &digest));
    assert!(
        why.contains("signed for repository 127.0.0.1:5000/team/a"),
        "{why}"
    );
    // Docker Hub spellings normalize alike, and only alike.
    let hub = key.sign_image("index.docker.io/library/busybox:1", &digest.to_string());
    vouched(verify(
        &v,
        &[hub.candidate()],
        "docker.io",
        "library/busybox",
        &digest,
    ));
    refused(verify(
        &v,
        &[hub.candidate()],
        "docker.io",
        "acme/busybox",
        &digest,
    ));
}
