//! Attack: a valid keyless signature by someone else (another identity, another issuer, or the
//! right identity string from another workflow repository).

mod support;

use portcullis::refs::Digest;
use portcullis::trust::cosign::KeylessIdentity;
use support::cosign::dir::bundle_candidate;
use support::cosign::fixtures::*;

fn identity(issuer: &str, subject: &str, claims: &[(&str, &str)]) -> KeylessIdentity {
    KeylessIdentity {
        issuer: issuer.into(),
        subject: Some(subject.into()),
        subject_regex: None,
        claims: claims
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

#[test]
fn legacy_keyless_with_wrong_identity_or_issuer_is_refused() {
    let (digest, c) = dir_fixture(FULCIO_DIR);
    let v = keyless_verifier(GITHUB_OAUTH, "attacker@redhat.com");
    let why = refused(verify(
        &v,
        std::slice::from_ref(&c),
        HOST,
        FULCIO_REPO,
        &digest,
    ));
    assert!(
        why.contains("identity \"mitr@redhat.com\" does not match"),
        "{why}"
    );
    let v = keyless_verifier("https://accounts.google.com", MITR);
    let why = refused(verify(&v, &[c], HOST, FULCIO_REPO, &digest));
    assert!(
        why.contains("issuer \"https://github.com/login/oauth\" is not"),
        "{why}"
    );
}

#[test]
fn bundle_with_wrong_identity_issuer_or_claim_is_refused() {
    let digest: Digest = BUNDLE_DIGEST.parse().unwrap();
    let c = bundle_candidate(&bundle_bytes(), &digest);
    let run = |id: KeylessIdentity| {
        verify(
            &keyless_with(vec![id], None).unwrap(),
            std::slice::from_ref(&c),
            "ghcr.io",
            KUBEWARDEN_REPO,
            &digest,
        )
    };
    let why = refused(run(identity(
        GITHUB,
        &KUBEWARDEN.replace("v1.34.0", "v1.35.0"),
        &[],
    )));
    assert!(why.contains("does not match"), "{why}");
    let why = refused(run(identity("https://gitlab.com", KUBEWARDEN, &[])));
    assert!(why.contains("issuer"), "{why}");
    let why = refused(run(identity(
        GITHUB,
        KUBEWARDEN,
        &[("source_repository_uri", "https://github.com/acme/app")],
    )));
    assert!(why.contains("claim source_repository_uri"), "{why}");
    // The claims it does carry vouch (the deprecated GitHub ones too).
    vouched(run(identity(
        GITHUB,
        KUBEWARDEN,
        &[
            (
                "source_repository_uri",
                "https://github.com/kubewarden/kubewarden-controller",
            ),
            ("github_workflow_ref", "refs/tags/v1.34.0"),
            ("runner_environment", "github-hosted"),
        ],
    )));
}
