//! Attack: relying on a statement that does not enforce authenticity. `audit` checks
//! integrity only (anyone's self-signed certificate would pass) and `skip` checks nothing:
//! neither ever vouches, even for a signature that would pass `strict`; an `override` that
//! only logs authenticity does not vouch either. `permissive` does (authenticity enforced).

mod support;

use std::time::SystemTime;

use portcullis::refs::Digest;
use portcullis::trust::signature::{ArtifactKind, Verdict};
use support::notation_signer::*;

#[test]
fn audit_and_skip_statements_never_vouch() {
    let signer = NotationSigner::new(LeafKey::EcP256, "ci");
    let digest = Digest::sha256_of(b"image");
    let cand = signer.candidate(
        &digest,
        &SignOptions::default(),
        ArtifactKind::NotationJws,
        None,
    );
    let now = SystemTime::now();

    let dir = tempfile::tempdir().unwrap();
    let audit = write_trust(dir.path(), "audit", SCOPE, "ca", &signer.root_pem);
    let why = refusal(verify_in_scope(
        &audit,
        &digest,
        std::slice::from_ref(&cand),
        now,
    ));
    assert!(
        why.contains("level audit") && why.contains("never vouches"),
        "{why}"
    );

    let dir = tempfile::tempdir().unwrap();
    let skip = write_trust_policy(
        dir.path(),
        &serde_json::json!({"version": "1.0", "trustPolicies": [{"name": "test",
            "registryScopes": [SCOPE], "signatureVerification": {"level": "skip"}}]}),
        &[],
    );
    let why = refusal(verify_in_scope(
        &skip,
        &digest,
        std::slice::from_ref(&cand),
        now,
    ));
    assert!(
        why.contains("level skip") && why.contains("never vouches"),
        "{why}"
    );

    let dir = tempfile::tempdir().unwrap();
    let logged = write_trust_override(
        dir.path(),
        serde_json::json!({"authenticity": "log"}),
        &signer.root_pem,
    );
    let why = refusal(verify_in_scope(
        &logged,
        &digest,
        std::slice::from_ref(&cand),
        now,
    ));
    assert!(why.contains("overrides authenticity"), "{why}");

    let dir = tempfile::tempdir().unwrap();
    let permissive = write_trust(dir.path(), "permissive", SCOPE, "ca", &signer.root_pem);
    assert!(matches!(
        verify_in_scope(&permissive, &digest, &[cand], now),
        Verdict::Vouched(_)
    ));
}

#[test]
fn trusted_identities_restrict_the_signer() {
    let signer = NotationSigner::new(LeafKey::EcP256, "ci");
    let digest = Digest::sha256_of(b"image");
    let cand = signer.candidate(
        &digest,
        &SignOptions::default(),
        ArtifactKind::NotationCose,
        None,
    );
    let policy = |identity: &str| {
        serde_json::json!({"version": "1.0", "trustPolicies": [{"name": "test",
            "registryScopes": [SCOPE], "signatureVerification": {"level": "strict"},
            "trustStores": ["ca:test"], "trustedIdentities": [identity]}]})
    };
    let dir = tempfile::tempdir().unwrap();
    let ok = write_trust_policy(
        dir.path(),
        &policy("x509.subject: C=US, ST=WA, O=Portcullis Test, CN=ci"),
        &[("ca", "test", &signer.root_pem)],
    );
    assert!(matches!(
        verify_in_scope(&ok, &digest, std::slice::from_ref(&cand), SystemTime::now()),
        Verdict::Vouched(_)
    ));
    let dir = tempfile::tempdir().unwrap();
    let other = write_trust_policy(
        dir.path(),
        &policy("x509.subject: C=US, ST=WA, O=Portcullis Test, CN=release"),
        &[("ca", "test", &signer.root_pem)],
    );
    let why = refusal(verify_in_scope(&other, &digest, &[cand], SystemTime::now()));
    assert!(
        why.contains("is not one of the trusted identities"),
        "{why}"
    );
}
