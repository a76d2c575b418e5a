//! Attack: the log's integrated time (the only proof of when a keyless signature was made) is
//! outside the certificate's validity: a key whose certificate had expired (or was not yet
//! valid) signed, and the log recorded it.

mod support;

use portcullis::refs::Digest;
use support::cosign::fixtures::*;
use support::cosign::keyless_signer::{TestSigstore, Timing};

#[test]
fn signature_logged_after_the_certificate_expired_is_refused() {
    let sigstore = TestSigstore::new();
    let v = test_keyless_verifier(&sigstore.trusted_root_json(), EMAIL, ISSUER);
    let digest = Digest::sha256_of(b"image");
    let recent = Timing::recent();
    let cases = [
        // Certificate expired an hour before the entry was logged.
        (
            "CertExpired",
            Timing {
                not_before: recent.integrated_time - 4_200,
                not_after: recent.integrated_time - 3_600,
                ..recent
            },
        ),
        // Certificate valid only from an hour after the entry.
        (
            "CertNotValidYet",
            Timing {
                not_before: recent.integrated_time + 3_600,
                not_after: recent.integrated_time + 4_200,
                ..recent
            },
        ),
    ];
    for (expected, t) in cases {
        let sig = sigstore.sign_image(
            EMAIL,
            ISSUER,
            "127.0.0.1:5000/team/app",
            &digest.to_string(),
            t,
        );
        let why = refused(verify_local(&v, sig.candidate(), "team/app", &digest));
        assert!(why.contains(expected), "{t:?}: {why}");
    }
    let sig = sigstore.sign_image(
        EMAIL,
        ISSUER,
        "127.0.0.1:5000/team/app",
        &digest.to_string(),
        recent,
    );
    vouched(verify_local(&v, sig.candidate(), "team/app", &digest));
}
