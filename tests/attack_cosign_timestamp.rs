//! Attack: an RFC 3161 timestamp standing in for the Rekor entry of a keyless signature (the
//! only proof that the short-lived certificate was valid when it signed) that is not what it
//! claims: over another signature, by a TSA the trusted root does not name, at a time the
//! certificate was not valid, or by a TSA outside the window the root trusts it for. Each is
//! refused for its own reason. Tokens are made by OpenSSL (tests/support/tsa.rs).

mod support;

use portcullis::refs::Digest;
use portcullis::trust::signature::{Candidate, Verdict};
use support::cosign::dir::bundle_candidate;
use support::cosign::fixtures::*;
use support::cosign::keyless_signer::{Timing, stamp_bundle, tsa_authority};
use support::cosign_tsa::{SINCE_2000, StampedSigstore, stamped_signature};
use support::tsa::TestTsa;

fn check(root: &str, c: Candidate, digest: &Digest) -> Verdict {
    let v = test_keyless_verifier(root, EMAIL, ISSUER);
    verify_local(&v, c, "team/app", digest)
}

#[test]
fn timestamp_over_another_signature_is_refused() {
    let s = StampedSigstore::new();
    let digest = Digest::sha256_of(b"image");
    let t = Timing::recent();
    // A genuine token of this TSA, for other bytes (another signature, or the payload).
    let c = stamped_signature(&s.sigstore, &digest, t, false, |_| {
        s.tsa.stamp(b"another signature")
    });
    assert_refused(
        check(&s.root, c, &digest),
        "Timestamp message hash mismatch",
    );

    // A genuine v0.3 timestamp moved onto another bundle's signature.
    let manifest = b"an image manifest";
    let digest = Digest::sha256_of(manifest);
    let other = s
        .sigstore
        .sign_bundle(EMAIL, ISSUER, b"another manifest", t);
    let other: serde_json::Value =
        serde_json::from_slice(&stamp_bundle(&other, |sig| s.tsa.stamp(sig), false)).unwrap();
    let mut bundle: serde_json::Value =
        serde_json::from_slice(&s.sigstore.sign_bundle(EMAIL, ISSUER, manifest, t)).unwrap();
    let m = &mut bundle["verificationMaterial"];
    m["timestampVerificationData"] =
        other["verificationMaterial"]["timestampVerificationData"].clone();
    m["tlogEntries"] = serde_json::json!([]);
    let bytes = serde_json::to_vec(&bundle).unwrap();
    assert_refused(
        check(&s.root, bundle_candidate(&bytes, &digest), &digest),
        "Timestamp message hash mismatch",
    );
}

#[test]
fn timestamp_by_a_tsa_not_in_the_trusted_root_is_refused() {
    let s = StampedSigstore::new();
    let dir = tempfile::tempdir().unwrap();
    let rogue = TestTsa::new(dir.path());
    let digest = Digest::sha256_of(b"image");
    let t = Timing::recent();
    let c = stamped_signature(&s.sigstore, &digest, t, false, |sig| rogue.stamp(sig));
    // The root names another TSA: the token's signer is not its pinned leaf.
    assert_refused(
        check(&s.root, c.clone(), &digest),
        "CMS signer does not match any trusted TSA certificate",
    );
    // The root names no TSA at all.
    assert_refused(
        check(&s.sigstore.trusted_root_json(), c, &digest),
        "no timestamp authorities configured in trusted root",
    );
}

#[test]
fn certificate_not_valid_at_the_stamped_time_is_refused() {
    let s = StampedSigstore::new();
    let digest = Digest::sha256_of(b"image");
    let t = Timing::recent();
    // A 10-minute certificate that expired two hours ago, its key signing and stamped now: a
    // leaked key signing late. (Refused by the chain check at the stamped time.)
    let expired = Timing {
        not_before: t.integrated_time - 7_800,
        not_after: t.integrated_time - 7_200,
        ..t
    };
    let c = stamped_signature(&s.sigstore, &digest, expired, false, |sig| s.tsa.stamp(sig));
    assert_refused(check(&s.root, c, &digest), "CertExpired");
    // Stamped an hour before the certificate's validity began.
    let c = stamped_signature(&s.sigstore, &digest, t, false, |sig| {
        s.tsa.stamp_at(sig, t.not_before - 3_600)
    });
    assert_refused(check(&s.root, c, &digest), "CertNotValidYet");
}

#[test]
fn tsa_outside_its_trusted_window_is_refused() {
    let s = StampedSigstore::new();
    let digest = Digest::sha256_of(b"image");
    let t = Timing::recent();
    let c = stamped_signature(&s.sigstore, &digest, t, false, |sig| s.tsa.stamp(sig));
    // The root trusted this TSA until a day ago (its key retired): a fresh token is refused.
    let retired = s.sigstore.trusted_root_json_with_tsas(&[tsa_authority(
        s.tsa.chain_der(),
        SINCE_2000,
        Some(&rfc3339(t.integrated_time - 86_400)),
    )]);
    assert_refused(
        check(&retired, c, &digest),
        "is outside the validity period of the authority that signed it",
    );

    // The TSA's own certificate had expired when it stamped.
    let dir = tempfile::tempdir().unwrap();
    let expired = TestTsa::with_leaf_validity(dir.path(), 946_684_800, t.integrated_time - 86_400);
    let root = s.sigstore.trusted_root_json_with_tsas(&[tsa_authority(
        expired.chain_der(),
        SINCE_2000,
        None,
    )]);
    let c = stamped_signature(&s.sigstore, &digest, t, false, |sig| expired.stamp(sig));
    assert_refused(
        check(&root, c, &digest),
        "TSA certificate chain validation failed",
    );
}

fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}
