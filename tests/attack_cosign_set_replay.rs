//! Attack: Rekor evidence that is not this signature's (a SET taken from another signature)
//! or that was edited (the integrated time, the log index), and a Rekor key used outside its
//! `validFor` window.

mod support;

use portcullis::trust::cosign::{BUNDLE_ANNOTATION, KeylessIdentity, TransparencyLog};
use support::cosign::fixtures::*;

#[test]
fn set_from_another_signature_is_refused() {
    // The key + SET fixture's Rekor bundle, attached to the key-only fixture's signature
    // (both made by containers/image's test keys; the SET itself verifies).
    let (_, with_set) = dir_fixture(KEY_REKOR_DIR);
    let stolen = annotation(&with_set, BUNDLE_ANNOTATION);
    let (digest, mut c) = dir_fixture("dir-img-cosign-valid");
    set_annotation(&mut c, BUNDLE_ANNOTATION, Some(&stolen));
    let v = key_verifier("cosign.pub", TransparencyLog::Required);
    let why = refused(verify(&v, &[c], HOST, SINGLE, &digest));
    assert!(why.contains("Rekor entry:"), "{why}");

    // The keyless fixture with the key fixture's SET: the certificate's signing time would be
    // borrowed from an unrelated entry.
    let (digest, mut c) = dir_fixture(FULCIO_DIR);
    set_annotation(&mut c, BUNDLE_ANNOTATION, Some(&stolen));
    let v = keyless_verifier(GITHUB_OAUTH, MITR);
    refused(verify(&v, &[c], HOST, FULCIO_REPO, &digest));
}

#[test]
fn edited_set_time_or_index_is_refused() {
    let v = key_verifier("cosign2.pub", TransparencyLog::Required);
    let (digest, original) = dir_fixture(KEY_REKOR_DIR);
    let bundle = annotation(&original, BUNDLE_ANNOTATION);
    vouched(verify(
        &v,
        std::slice::from_ref(&original),
        HOST,
        KEY_REKOR_REPO,
        &digest,
    ));
    for (field, delta) in [("integratedTime", -86_400), ("logIndex", 1)] {
        let edited = edit_json(&bundle, |b| {
            let n = b["Payload"][field].as_i64().unwrap();
            b["Payload"][field] = (n + delta).into();
        });
        let mut c = original.clone();
        set_annotation(&mut c, BUNDLE_ANNOTATION, Some(&edited));
        let why = refused(verify(&v, &[c], HOST, KEY_REKOR_REPO, &digest));
        assert!(why.contains("SET verification failed"), "{field}: {why}");
    }
}

#[test]
fn rekor_key_outside_its_valid_for_window_is_refused() {
    // The public-good root with its 2021 Rekor key's validity ended before the fixture's
    // signing time (2023-01-20): the SET is genuine, the key no longer counts then.
    let root = std::fs::read_to_string(trusted_root()).unwrap();
    let shortened = edit_json(&root, |r| {
        for log in r["tlogs"].as_array_mut().unwrap() {
            let window = &mut log["publicKey"]["validFor"];
            if window["start"]
                .as_str()
                .is_some_and(|s| s.starts_with("2021"))
            {
                window["end"] = "2022-12-31T00:00:00Z".into();
            }
        }
    });
    let (digest, c) = dir_fixture(FULCIO_DIR);
    let id = KeylessIdentity {
        issuer: GITHUB_OAUTH.into(),
        subject: Some(MITR.into()),
        subject_regex: None,
        claims: Default::default(),
    };
    vouched(verify(
        &keyless_with(vec![id.clone()], Some(&root)).unwrap(),
        std::slice::from_ref(&c),
        HOST,
        FULCIO_REPO,
        &digest,
    ));
    let v = keyless_with(vec![id], Some(&shortened)).unwrap();
    let why = refused(verify(&v, &[c], HOST, FULCIO_REPO, &digest));
    assert!(why.contains("No log key valid at integrated time"), "{why}");
}
