//! Attack: a `subject_regex` that would match the signer only if it were searched for rather
//! than matched whole (a prefix, a suffix, or an unescaped `.`).

mod support;

use portcullis::refs::Digest;
use portcullis::trust::cosign::KeylessIdentity;
use support::cosign::dir::bundle_candidate;
use support::cosign::fixtures::*;

fn regex(issuer: &str, re: &str) -> KeylessIdentity {
    KeylessIdentity {
        issuer: issuer.into(),
        subject: None,
        subject_regex: Some(re.into()),
        claims: Default::default(),
    }
}

#[test]
fn legacy_identity_regex_is_anchored() {
    let (digest, c) = dir_fixture(FULCIO_DIR);
    let run = |re: &str| {
        let v = keyless_with(vec![regex(GITHUB_OAUTH, re)], None).unwrap();
        verify(&v, std::slice::from_ref(&c), HOST, FULCIO_REPO, &digest)
    };
    // Each of these finds "mitr@redhat.com" somewhere, but none matches it whole.
    for re in ["mitr@redhat", "redhat\\.com", "itr@redhat\\.co"] {
        let why = refused(run(re));
        assert!(why.contains(&format!("regex ^(?:{re})$")), "{re}: {why}");
    }
    vouched(run("[a-z]+@redhat\\.com"));
}

#[test]
fn bundle_identity_regex_is_anchored() {
    let digest: Digest = BUNDLE_DIGEST.parse().unwrap();
    let c = bundle_candidate(&bundle_bytes(), &digest);
    let run = |re: &str| {
        let v = keyless_with(vec![regex(GITHUB, re)], None).unwrap();
        verify(
            &v,
            std::slice::from_ref(&c),
            "ghcr.io",
            KUBEWARDEN_REPO,
            &digest,
        )
    };
    // A repository prefix would also admit any workflow of any repository whose URL starts so.
    let why = refused(run("https://github.com/kubewarden/"));
    assert!(why.contains("does not match"), "{why}");
    vouched(run(
        "https://github.com/kubewarden/kubewarden-controller/\\.github/workflows/release\\.yml@refs/tags/v.*",
    ));
}
