//! RFC 3161 timestamps on cosign signatures, made by a real OpenSSL TSA (tests/support/tsa.rs):
//! cosign's legacy `dev.sigstore.cosign/rfc3161timestamp` annotation and a v0.3 bundle's
//! `timestampVerificationData`, checked against the trusted root's `timestampAuthorities`;
//! what a key-only source does with one. Refusals are in attack_cosign_timestamp.rs.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portcullis::refs::Digest;
use portcullis::trust::cosign::{
    CosignKeyConfig, CosignKeyVerifier, SignedIdentity, TransparencyLog,
};
use portcullis::trust::signature::Evidence;
use support::cosign::dir::bundle_candidate;
use support::cosign::fixtures::*;
use support::cosign::keyless_signer::{Timing, stamp_bundle, tsa_authority};
use support::cosign_tsa::{
    SINCE_2000, StampedSigstore, set_timestamp, signature_bytes, stamped_signature,
};
use support::tsa::TestTsa;

fn at(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs as u64)
}

/// The evidence's detail named `key`.
fn detail<'a>(e: &'a Evidence, key: &str) -> &'a str {
    e.details
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key:?} detail in {e:?}"))
}

/// `signed_at` is the token's genTime for a stamp made at `secs` (faketime may let a second or
/// two pass while OpenSSL starts).
fn assert_stamped_at(e: &Evidence, secs: i64) {
    let signed_at = e.signed_at.expect("signing time");
    assert!(
        signed_at >= at(secs) && signed_at <= at(secs + 5),
        "{signed_at:?} vs {secs}"
    );
}

#[test]
fn legacy_keyless_with_only_a_timestamp_vouches_at_the_stamped_time() {
    let s = StampedSigstore::new();
    let v = s.verifier();
    let digest = Digest::sha256_of(b"image");
    let t = Timing::recent();
    // `cosign sign --timestamp-server-url ... --tlog-upload=false`: no Rekor bundle.
    let mut c = stamped_signature(&s.sigstore, &digest, t, false, |sig| {
        s.tsa.stamp_at(sig, t.integrated_time)
    });
    let e = vouched(verify_local(&v, c.clone(), "team/app", &digest));
    assert_eq!(e.format, "cosign legacy");
    assert_eq!(e.signer, format!("{EMAIL} (issuer {ISSUER})"));
    assert_eq!(detail(&e, "signing time"), "RFC 3161 timestamp");
    assert_stamped_at(&e, t.integrated_time);

    // The TSA's whole TimeStampResp (what a TSA answers over HTTP) reads the same.
    let response = s.tsa.response(&signature_bytes(&c));
    set_timestamp(&mut c, &response);
    vouched(verify_local(&v, c, "team/app", &digest));
}

#[test]
fn legacy_keyless_with_rekor_and_timestamp_checks_both() {
    let s = StampedSigstore::new();
    let v = s.verifier();
    let digest = Digest::sha256_of(b"image");
    let t = Timing::recent();
    let mut c = stamped_signature(&s.sigstore, &digest, t, true, |sig| s.tsa.stamp(sig));
    let e = vouched(verify_local(&v, c.clone(), "team/app", &digest));
    assert_eq!(
        detail(&e, "signing time"),
        "Rekor entry and RFC 3161 timestamp"
    );
    // The log's time is shown when there is one.
    assert_eq!(e.signed_at, Some(at(t.integrated_time)));

    // A valid Rekor entry does not carry a timestamp that fails: both are checked.
    set_timestamp(&mut c, &s.tsa.stamp(b"another signature"));
    assert_refused(
        verify_local(&v, c, "team/app", &digest),
        "Timestamp message hash mismatch",
    );
}

#[test]
fn bundle_v03_with_a_timestamp_vouches_and_names_it() {
    let s = StampedSigstore::new();
    let v = s.verifier();
    let manifest = b"an image manifest";
    let digest = Digest::sha256_of(manifest);
    let t = Timing::recent();
    let bundle = s.sigstore.sign_bundle(EMAIL, ISSUER, manifest, t);
    let check = |bytes: &[u8]| {
        vouched(verify_local(
            &v,
            bundle_candidate(bytes, &digest),
            "team/app",
            &digest,
        ))
    };

    // Timestamp only (no log entry).
    let e = check(&stamp_bundle(
        &bundle,
        |sig| s.tsa.stamp_at(sig, t.integrated_time),
        false,
    ));
    assert_eq!(e.format, "cosign bundle v0.3");
    assert_eq!(detail(&e, "signing time"), "RFC 3161 timestamp");
    assert_stamped_at(&e, t.integrated_time);

    // Timestamp and log entry: both verified, the log's time shown.
    let e = check(&stamp_bundle(&bundle, |sig| s.tsa.stamp(sig), true));
    assert_eq!(
        detail(&e, "signing time"),
        "Rekor entry and RFC 3161 timestamp"
    );
    assert_eq!(e.signed_at, Some(at(t.integrated_time)));

    // The log entry alone, as before.
    let e = check(&bundle);
    assert_eq!(detail(&e, "signing time"), "Rekor entry");
}

/// A key verifier for containers/image's `cosign2.pub` (the key + SET fixture's key) with the
/// log required and `root_json` as its trusted root.
fn key_verifier_with_root(root_json: &str, dir: &std::path::Path) -> CosignKeyVerifier {
    let path = dir.join("trusted_root.json");
    std::fs::write(&path, root_json).unwrap();
    let config = CosignKeyConfig {
        keys: vec![ci("cosign2.pub")],
        transparency_log: TransparencyLog::Required,
        trusted_root: Some(path),
        sigstore_tuf: None,
        signed_identity: SignedIdentity::MatchRepository,
    };
    config.validate("trust.test").expect("valid config");
    CosignKeyVerifier::new(&config, dir).expect("verifier")
}

#[test]
fn key_only_timestamp_is_verified_against_the_roots_tsas() {
    let dir = tempfile::tempdir().unwrap();
    let tsa = TestTsa::new(&dir.path().join("tsa"));
    let (digest, mut c) = dir_fixture(KEY_REKOR_DIR);
    let token = tsa.stamp(&signature_bytes(&c));
    set_timestamp(&mut c, &token);
    let public_good = std::fs::read_to_string(trusted_root()).unwrap();
    let check = |root: &str| {
        let v = key_verifier_with_root(root, dir.path());
        verify(&v, std::slice::from_ref(&c), HOST, KEY_REKOR_REPO, &digest)
    };

    // The root names our TSA: the timestamp is verified (and the SET still is).
    let with_tsa = edit_json(&public_good, |r| {
        r["timestampAuthorities"]
            .as_array_mut()
            .unwrap()
            .push(tsa_authority(tsa.chain_der(), SINCE_2000, None));
    });
    let e = vouched(check(&with_tsa));
    assert_eq!(detail(&e, "rfc3161 timestamp"), "verified");
    assert_eq!(detail(&e, "transparency log"), "verified");

    // The root names TSAs, not this one: a timestamp that is used must verify.
    assert_refused(
        check(&public_good),
        "CMS signer does not match any trusted TSA certificate",
    );

    // The root names no TSA: the timestamp is ignored, and the evidence says so.
    let without = edit_json(&public_good, |r| {
        r["timestampAuthorities"] = serde_json::json!([]);
    });
    let e = vouched(check(&without));
    assert_eq!(
        detail(&e, "rfc3161 timestamp"),
        "ignored: the trusted root names no timestamp authority"
    );
}

#[test]
fn key_only_timestamp_is_ignored_without_a_trusted_root() {
    let dir = tempfile::tempdir().unwrap();
    // A TSA nobody trusts: without a trusted root nothing could check it.
    let tsa = TestTsa::new(dir.path());
    let (key, v, _keydir) = trusted_test_key();
    let ignored = "ignored: no trusted root (transparency_log = \"not-required\")";
    let digest = Digest::sha256_of(b"image");
    let mut c = key
        .sign_image("127.0.0.1:5000/team/app", &digest.to_string())
        .candidate();
    let token = tsa.stamp(&signature_bytes(&c));
    set_timestamp(&mut c, &token);
    let e = vouched(verify_local(&v, c, "team/app", &digest));
    assert_eq!(e.signed_at, None);
    assert_eq!(detail(&e, "rfc3161 timestamp"), ignored);

    // A key-only v0.3 bundle with a timestamp: likewise.
    let manifest = b"an image manifest";
    let digest = Digest::sha256_of(manifest);
    let bundle = key.sign_bundle_message(manifest);
    let stamped = stamp_bundle(&bundle, |sig| tsa.stamp(sig), true);
    let c = bundle_candidate(&stamped, &digest);
    let e = vouched(verify_local(&v, c, "team/app", &digest));
    assert_eq!(detail(&e, "rfc3161 timestamp"), ignored);
}
