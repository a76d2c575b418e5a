//! Attack: a keyless signature whose (10-minute) Fulcio certificate has long expired, without
//! the Rekor entry or timestamp that proves it was made while the certificate was valid. If
//! that vouched, anyone who later got the certificate's key could sign anything.

mod support;

use portcullis::refs::Digest;
use portcullis::trust::cosign::BUNDLE_ANNOTATION;
use support::cosign::dir::bundle_candidate;
use support::cosign::fixtures::*;

#[test]
fn legacy_keyless_without_rekor_entry_is_refused() {
    let (digest, mut c) = dir_fixture(FULCIO_DIR);
    set_annotation(&mut c, BUNDLE_ANNOTATION, None);
    let v = keyless_verifier(GITHUB_OAUTH, MITR);
    let why = refused(verify(&v, &[c], HOST, FULCIO_REPO, &digest));
    assert!(
        why.contains("no dev.sigstore.cosign/bundle (no Rekor entry)"),
        "{why}"
    );
}

#[test]
fn bundle_without_log_entry_or_timestamp_is_refused() {
    let digest: Digest = BUNDLE_DIGEST.parse().unwrap();
    let text = String::from_utf8(bundle_bytes()).unwrap();
    let stripped = edit_json(&text, |b| {
        let m = b["verificationMaterial"].as_object_mut().unwrap();
        m.insert("tlogEntries".into(), serde_json::json!([]));
        m.remove("timestampVerificationData");
    });
    let c = bundle_candidate(stripped.as_bytes(), &digest);
    let v = keyless_verifier(GITHUB, KUBEWARDEN);
    let why = refused(verify(&v, &[c], "ghcr.io", KUBEWARDEN_REPO, &digest));
    assert!(why.contains("must have an inclusion proof"), "{why}");
}
