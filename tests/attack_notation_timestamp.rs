//! Attacks on a Notation signature's RFC 3161 countersignature, with tokens made by OpenSSL's
//! own TSA (tests/support/tsa.rs) over envelopes made by the test signer. The certificate
//! signing them expired in 2021, so only a verified timestamp inside 2020 can make them vouch:
//! - a TSA whose own certificate was not valid at the time it stamped;
//! - a token taken from another signature (it stamps other bytes);
//! - a TSA token signed with the older signing-certificate (v1, SHA-1) attribute only, which
//!   Notation's spec refuses ("When missing [v2], fail");
//! - the roles swapped: the signer's CA placed in the `tsa` store does not anchor a TSA.

mod support;

use std::time::SystemTime;

use portcullis::refs::Digest;
use portcullis::trust::signature::{ArtifactKind, Verdict};
use support::notation_signer::*;
use support::tsa::{TestTsa, at, der_to_pem as pem, unix, with_jws_timestamp};

/// A JWS signature of `digest` by a certificate valid only in 2020, with `token(signature)`
/// in its unsigned header.
fn stamped(
    signer: &NotationSigner,
    digest: &Digest,
    token: impl Fn(&[u8]) -> Vec<u8>,
) -> portcullis::trust::signature::Candidate {
    let o = SignOptions {
        signing_time: at("2020-06-01T00:00:00Z"),
        ..SignOptions::default()
    };
    let envelope = with_jws_timestamp(&signer.jws(digest, &o), token);
    candidate_of(
        signer.manifest(digest, o.size, &envelope, "application/jose+json", None),
        envelope,
    )
}

fn signer() -> NotationSigner {
    NotationSigner::with_validity(
        LeafKey::EcP256,
        "ci",
        at("2020-01-01T00:00:00Z"),
        at("2021-01-01T00:00:00Z"),
    )
}

/// Strict, `ca:test` = the signer's root, `tsa:test` = `tsa_root_pem`; verified now.
fn verdict(
    signer: &NotationSigner,
    tsa_root_pem: &str,
    digest: &Digest,
    c: portcullis::trust::signature::Candidate,
) -> Verdict {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_trust_policy(
        dir.path(),
        &serde_json::json!({"version": "1.0", "trustPolicies": [{
            "name": "test", "registryScopes": [SCOPE],
            "signatureVerification": {"level": "strict"},
            "trustStores": ["ca:test", "tsa:test"], "trustedIdentities": ["*"]}]}),
        &[
            ("ca", "test", &signer.root_pem),
            ("tsa", "test", tsa_root_pem),
        ],
    );
    verify_in_scope(&cfg, digest, &[c], SystemTime::now())
}

const IN_2020: &str = "2020-06-01T00:00:00Z";

#[test]
fn the_baseline_vouches() {
    // The attacks below differ from this in one thing each.
    let dir = tempfile::tempdir().unwrap();
    let tsa = TestTsa::new(dir.path());
    let s = signer();
    let d = Digest::sha256_of(b"image");
    let c = stamped(&s, &d, |sig| tsa.stamp_at(sig, unix(IN_2020)));
    match verdict(&s, &pem(tsa.root_der()), &d, c) {
        Verdict::Vouched(e) => assert!(
            e.details
                .iter()
                .any(|(k, v)| k == "authentic timestamp" && v.starts_with("2020-06-01T")),
            "{:?}",
            e.details
        ),
        Verdict::No(why) => panic!("{why}"),
    }
}

#[test]
fn a_tsa_whose_certificate_was_not_valid_when_it_stamped_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // The TSA's own certificate: 2000 to 2010; it stamps "2020".
    let tsa = TestTsa::with_leaf_validity(
        dir.path(),
        unix("2000-01-01T00:00:00Z"),
        unix("2010-01-01T00:00:00Z"),
    );
    let s = signer();
    let d = Digest::sha256_of(b"image");
    let c = stamped(&s, &d, |sig| tsa.stamp_at(sig, unix(IN_2020)));
    let why = refusal(verdict(&s, &pem(tsa.root_der()), &d, c));
    assert!(why.contains("was not valid at the stamped time"), "{why}");
}

#[test]
fn a_token_from_another_signature_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tsa = TestTsa::new(dir.path());
    let s = signer();
    let d = Digest::sha256_of(b"image");
    let c = stamped(&s, &d, |_| {
        tsa.stamp_at(b"another signature", unix(IN_2020))
    });
    let why = refusal(verdict(&s, &pem(tsa.root_der()), &d, c));
    assert!(why.contains("message imprint mismatch"), "{why}");
}

#[test]
fn a_token_without_signing_certificate_v2_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tsa = TestTsa::new(dir.path());
    // The same TSA told to identify its certificate the old way (ESSCertID, SHA-1).
    let cnf = dir.path().join("tsa.cnf");
    let text = std::fs::read_to_string(&cnf).unwrap();
    assert!(text.contains("ess_cert_id_alg = sha256"), "{text}");
    std::fs::write(
        &cnf,
        text.replace("ess_cert_id_alg = sha256", "ess_cert_id_alg = sha1"),
    )
    .unwrap();
    let s = signer();
    let d = Digest::sha256_of(b"image");
    let c = stamped(&s, &d, |sig| tsa.stamp_at(sig, unix(IN_2020)));
    let why = refusal(verdict(&s, &pem(tsa.root_der()), &d, c));
    assert!(why.contains("lack signing-certificate-v2"), "{why}");
}

#[test]
fn the_signing_ca_does_not_anchor_a_tsa() {
    let dir = tempfile::tempdir().unwrap();
    let tsa = TestTsa::new(dir.path());
    let s = signer();
    let d = Digest::sha256_of(b"image");
    let c = stamped(&s, &d, |sig| tsa.stamp_at(sig, unix(IN_2020)));
    let why = refusal(verdict(&s, &s.root_pem, &d, c));
    assert!(
        why.contains("does not lead to a certificate of the tsa stores"),
        "{why}"
    );
    // And a candidate built the usual way (no timestamp at all) is refused for the expired
    // certificate's sake, not accepted.
    let plain = s.candidate(&d, &SignOptions::default(), ArtifactKind::NotationJws, None);
    let why = refusal(verdict(&s, &pem(tsa.root_der()), &d, plain));
    assert!(why.contains("no timestamp countersignature"), "{why}");
}
