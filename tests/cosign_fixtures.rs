//! Real cosign signatures (containers/image's fixtures, a cosign v3 bundle from sigstore-rs):
//! each verifies or is refused as tests/fixtures/signatures/README.md says, with `now` fixed.

mod support;

use std::time::UNIX_EPOCH;

use portcullis::refs::Digest;
use portcullis::trust::cosign::{
    CosignKeyConfig, CosignKeyVerifier, SignedIdentity, TransparencyLog,
};
use support::cosign::dir::bundle_candidate;
use support::cosign::fixtures::*;

#[test]
fn key_only_valid_fixtures_vouch_with_cosign_pub() {
    let v = key_verifier("cosign.pub", TransparencyLog::NotRequired);
    for dir in ["dir-img-cosign-valid", "dir-img-cosign-valid-2"] {
        let e = vouched(verify_dir(&v, dir, HOST, SINGLE));
        assert!(e.signer.starts_with("cosign.pub (sha256:"), "{}", e.signer);
        assert_eq!(e.format, "cosign legacy");
        assert_eq!(e.signed_at, None, "no log, no signing time");
    }
    vouched(verify_dir(
        &v,
        "dir-img-cosign-valid-with-tag",
        HOST,
        "skopeo-signed",
    ));
}

#[test]
fn key_only_is_refused_when_the_log_is_required() {
    let v = key_verifier("cosign.pub", TransparencyLog::Required);
    let why = refused(verify_dir(&v, "dir-img-cosign-valid", HOST, SINGLE));
    assert!(why.contains("no dev.sigstore.cosign/bundle"), "{why}");
}

#[test]
fn key_with_rekor_set_vouches_with_cosign2_pub_only() {
    let dir = "dir-img-cosign-key-rekor-valid";
    let repo = "cosign-signed/key-1";
    let v = key_verifier("cosign2.pub", TransparencyLog::Required);
    let e = vouched(verify_dir(&v, dir, HOST, repo));
    let at = e.signed_at.expect("SET time");
    // The SET's integratedTime: 2023-01-20T21:57:39Z, when containers/image made the fixture.
    assert_eq!(
        at.duration_since(UNIX_EPOCH).unwrap().as_secs(),
        1_674_251_859
    );
    let why = refused(verify_dir(
        &key_verifier("cosign.pub", TransparencyLog::Required),
        dir,
        HOST,
        repo,
    ));
    assert!(
        why.contains("does not verify with any configured key"),
        "{why}"
    );
}

#[test]
fn keyless_legacy_vouches_for_its_identity_only() {
    let dir = "dir-img-cosign-fulcio-rekor-valid";
    let repo = "cosign-signed/fulcio-rekor-1";
    let v = keyless_verifier("https://github.com/login/oauth", "mitr@redhat.com");
    let e = vouched(verify_dir(&v, dir, HOST, repo));
    assert_eq!(
        e.signer,
        "mitr@redhat.com (issuer https://github.com/login/oauth)"
    );
    assert!(e.signed_at.is_some());
    let why = refused(verify_dir(
        &keyless_verifier("https://github.com/login/oauth", "someone@redhat.com"),
        dir,
        HOST,
        repo,
    ));
    assert!(why.contains("does not match"), "{why}");
    let why = refused(verify_dir(
        &keyless_verifier("https://accounts.google.com", "mitr@redhat.com"),
        dir,
        HOST,
        repo,
    ));
    assert!(why.contains("issuer"), "{why}");
    // The key source does not take a certificate signature for a key signature.
    let v = key_verifier("cosign.pub", TransparencyLog::NotRequired);
    let why = refused(verify_dir(&v, dir, HOST, repo));
    assert!(why.contains("certificate"), "{why}");
}

#[test]
fn private_pki_signature_without_signing_time_is_refused() {
    // containers/image accepts it against the PKI files at the current time; a keyless source
    // here requires signing-time evidence (a Rekor entry), which this signature lacks.
    let v = keyless_verifier("https://github.com/login/oauth", "mitr@redhat.com");
    let why = refused(verify_dir(
        &v,
        "dir-img-cosign-pki-valid",
        "localhost:5000",
        "test",
    ));
    assert!(why.contains("no dev.sigstore.cosign/bundle"), "{why}");
}

#[test]
fn payload_naming_another_digest_is_refused() {
    let v = key_verifier("cosign.pub", TransparencyLog::NotRequired);
    for dir in [
        "dir-img-cosign-manifest-digest-error",
        "dir-img-cosign-modified-manifest",
        "dir-img-cosign-no-manifest",
    ] {
        let why = refused(verify_dir(&v, dir, HOST, SINGLE));
        assert!(
            why.contains("signed for sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00, not for"),
            "{dir}: {why}"
        );
    }
}

#[test]
fn other_attachment_is_not_a_signature() {
    let v = key_verifier("cosign.pub", TransparencyLog::NotRequired);
    let why = refused(verify_dir(
        &v,
        "dir-img-cosign-other-attachment",
        HOST,
        SINGLE,
    ));
    assert!(why.contains("no cosign signature found"), "{why}");
}

#[test]
fn unknown_key_is_refused_and_mixed_vouches_by_its_valid_signature() {
    let v = key_verifier("cosign.pub", TransparencyLog::NotRequired);
    let sig = std::fs::read(ci("unknown-cosign-key.signature")).unwrap();
    let layer = support::cosign::dir::layer_from_signature_file(&sig);
    let candidate = support::cosign::dir::candidate_from_layers(vec![layer]);
    let digest: Digest = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"
        .parse()
        .unwrap();
    let why = refused(verify(&v, &[candidate], HOST, SINGLE, &digest));
    assert!(
        why.contains("does not verify with any configured key"),
        "{why}"
    );
    vouched(verify_dir(&v, "dir-img-cosign-mixed", HOST, SINGLE));
}

#[test]
fn v03_bundle_vouches_for_its_digest_and_identity_only() {
    let digest: Digest = BUNDLE_DIGEST.parse().unwrap();
    let c = bundle_candidate(&bundle_bytes(), &digest);
    let v = keyless_verifier(GITHUB, KUBEWARDEN);
    let e = vouched(verify(
        &v,
        std::slice::from_ref(&c),
        "ghcr.io",
        "kubewarden/kubewarden-controller",
        &digest,
    ));
    assert_eq!(e.format, "cosign bundle v0.3");
    assert!(e.signer.starts_with(KUBEWARDEN), "{}", e.signer);
    let other: Digest = format!("sha256:{}", "1".repeat(64)).parse().unwrap();
    let mut c2 = c.clone();
    c2.subject = Some(other.clone());
    let why = refused(verify(
        &v,
        &[c2],
        "ghcr.io",
        "kubewarden/kubewarden-controller",
        &other,
    ));
    assert!(why.contains("statement's subject is not"), "{why}");
    let why = refused(verify(
        &keyless_verifier(
            GITHUB,
            "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main",
        ),
        &[c],
        "ghcr.io",
        "kubewarden/kubewarden-controller",
        &digest,
    ));
    assert!(why.contains("does not match"), "{why}");
}

#[test]
fn test_signer_artifacts_vouch_under_their_key_and_repository() {
    use support::cosign::signer::CosignTestKey;
    let key = CosignTestKey::generate();
    let dir = tempfile::tempdir().unwrap();
    let pub_path = dir.path().join("ci.pub");
    key.write_public_key(&pub_path);
    let digest = Digest::sha256_of(b"an image manifest");
    let sig = key.sign_image("127.0.0.1:5000/team/app:v1", &digest.to_string());
    assert_eq!(sig.tag, format!("sha256-{}.sig", digest.hex()));
    let config = CosignKeyConfig {
        keys: vec![pub_path],
        transparency_log: TransparencyLog::NotRequired,
        trusted_root: None,
        sigstore_tuf: None,
        signed_identity: SignedIdentity::MatchRepository,
    };
    let v = CosignKeyVerifier::new(&config, &std::env::temp_dir()).unwrap();
    let c = sig.candidate();
    vouched(verify(
        &v,
        std::slice::from_ref(&c),
        "127.0.0.1:5000",
        "team/app",
        &digest,
    ));
    let why = refused(verify(&v, &[c], "127.0.0.1:5000", "team/other", &digest));
    assert!(
        why.contains("signed for repository 127.0.0.1:5000/team/app"),
        "{why}"
    );
}
