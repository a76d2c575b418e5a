//! A chain that names revocation information (CRL distribution points or OCSP) cannot be
//! checked offline: Portcullis fetches neither, so while revocation is enforced (`strict`)
//! the signature does not vouch and the reason says how to opt out; `override.revocation`
//! set to `log` or `skip` is that explicit opt-out.

mod support;

use std::time::SystemTime;

use portcullis::refs::Digest;
use portcullis::trust::signature::{ArtifactKind, Verdict};
use support::notation_signer::*;

#[test]
fn enforced_revocation_with_crl_locations_does_not_vouch() {
    let signer = NotationSigner::with_crl(LeafKey::EcP256, "ci", "http://crl.example.com/ca.crl");
    let digest = Digest::sha256_of(b"image");
    let cand = signer.candidate(
        &digest,
        &SignOptions::default(),
        ArtifactKind::NotationJws,
        None,
    );
    let now = SystemTime::now();
    let dir = tempfile::tempdir().unwrap();
    let strict = write_trust(dir.path(), "strict", SCOPE, "ca", &signer.root_pem);
    let why = refusal(verify_in_scope(
        &strict,
        &digest,
        std::slice::from_ref(&cand),
        now,
    ));
    assert!(
        why.contains("CRL distribution points") && why.contains("override.revocation"),
        "{why}"
    );
    for action in ["log", "skip"] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write_trust_override(
            dir.path(),
            serde_json::json!({"revocation": action}),
            &signer.root_pem,
        );
        let Verdict::Vouched(e) = verify_in_scope(&cfg, &digest, std::slice::from_ref(&cand), now)
        else {
            panic!("override.revocation = {action} must let it vouch");
        };
        // A logged failure is kept in the evidence.
        let logged = e.details.iter().any(|(k, _)| k == "logged failure");
        assert_eq!(logged, action == "log", "{:?}", e.details);
    }
}
