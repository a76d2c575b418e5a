//! The test signer's Notation signatures (JWS and COSE, RSA-PSS and ECDSA, a CA chain of
//! three) verify through the Notation verifier: the signer that `sigpolicy`'s end-to-end
//! tests push to a registry makes signatures Portcullis accepts.

mod support;

use std::time::SystemTime;

use portcullis::refs::{Digest, RepoName};
use portcullis::trust::notation::NotationVerifier;
use portcullis::trust::signature::{ArtifactKind, DigestVerifier, Subject, Verdict};
use support::notation_signer::{LeafKey, NotationSigner, SignOptions, write_trust};

#[test]
fn jws_and_cose_with_rsa_and_ecdsa_verify() {
    let digest = Digest::sha256_of(b"an image manifest");
    let repo: RepoName = "team/app".parse().unwrap();
    let subject = Subject {
        registry: "registry.example.com",
        repository: &repo,
        digest: &digest,
    };
    for key in [LeafKey::Rsa2048, LeafKey::EcP256] {
        let signer = NotationSigner::new(key, "ci");
        let dir = tempfile::tempdir().unwrap();
        let cfg = write_trust(
            dir.path(),
            "strict",
            "registry.example.com/team/app",
            "ca",
            &signer.root_pem,
        );
        let v = NotationVerifier::new(&cfg).unwrap();
        for kind in [ArtifactKind::NotationJws, ArtifactKind::NotationCose] {
            let cand = signer.candidate(&digest, &SignOptions::default(), kind, None);
            match v.verify(subject, std::slice::from_ref(&cand), SystemTime::now()) {
                Verdict::Vouched(e) => {
                    assert!(e.signer.contains("CN=ci"), "{}", e.signer);
                    assert_eq!(e.candidate, cand.manifest_digest);
                }
                Verdict::No(why) => panic!("{key:?} {kind:?}: {why}"),
            }
            // The same signature does not vouch in another repository: the statement's
            // scope names this one only.
            let other: RepoName = "team/other".parse().unwrap();
            let elsewhere = Subject {
                repository: &other,
                ..subject
            };
            let Verdict::No(why) = v.verify(elsewhere, &[cand], SystemTime::now()) else {
                panic!("vouched outside its scope");
            };
            assert!(
                why.contains("no Notation trust policy statement covers"),
                "{why}"
            );
        }
    }
}
