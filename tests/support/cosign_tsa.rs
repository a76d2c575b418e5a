//! cosign signatures with RFC 3161 timestamps: the keyless test instance (`cosign::
//! keyless_signer`) with a test TSA (`tsa`) in its trusted root, and legacy signatures stamped
//! by it. Shared by cosign_timestamp.rs and attack_cosign_timestamp.rs; apart from `cosign`
//! because `benches/cosign.rs` includes that module alone.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use portcullis::refs::Digest;
use portcullis::trust::cosign::{
    BUNDLE_ANNOTATION, CosignKeylessVerifier, RFC3161_TIMESTAMP_ANNOTATION, SIGNATURE_ANNOTATION,
};
use portcullis::trust::signature::Candidate;

use super::cosign::fixtures::{EMAIL, ISSUER, annotation, set_annotation, test_keyless_verifier};
use super::cosign::keyless_signer::{TestSigstore, Timing, timestamp_annotation, tsa_authority};
use super::tsa::TestTsa;

/// The start of the test TSA's window in trusted roots.
pub const SINCE_2000: &str = "2000-01-01T00:00:00Z";

/// A test Sigstore instance whose trusted root (`root`) names `tsa`, valid since 2000.
pub struct StampedSigstore {
    pub sigstore: TestSigstore,
    pub tsa: TestTsa,
    pub root: String,
    _dir: tempfile::TempDir,
}

impl StampedSigstore {
    pub fn new() -> StampedSigstore {
        let dir = tempfile::tempdir().expect("tempdir");
        let tsa = TestTsa::new(dir.path());
        let sigstore = TestSigstore::new();
        let root = sigstore.trusted_root_json_with_tsas(&[tsa_authority(
            tsa.chain_der(),
            SINCE_2000,
            None,
        )]);
        StampedSigstore {
            sigstore,
            tsa,
            root,
            _dir: dir,
        }
    }

    /// A keyless verifier of this root trusting `EMAIL` from `ISSUER`.
    pub fn verifier(&self) -> CosignKeylessVerifier {
        test_keyless_verifier(&self.root, EMAIL, ISSUER)
    }
}

/// The raw signature bytes of a legacy candidate (what cosign's timestamp is over).
pub fn signature_bytes(c: &Candidate) -> Vec<u8> {
    STANDARD
        .decode(annotation(c, SIGNATURE_ANNOTATION))
        .expect("base64")
}

/// Sets cosign's timestamp annotation to this DER token.
pub fn set_timestamp(c: &mut Candidate, token: &[u8]) {
    set_annotation(
        c,
        RFC3161_TIMESTAMP_ANNOTATION,
        Some(&timestamp_annotation(token)),
    );
}

/// A legacy keyless signature of `digest` by `EMAIL` (certificate valid per `t`), with the
/// timestamp `stamp` makes over its signature bytes; its Rekor entry kept only with
/// `keep_log` (else as `cosign sign --tlog-upload=false --timestamp-server-url` makes).
pub fn stamped_signature(
    sigstore: &TestSigstore,
    digest: &Digest,
    t: Timing,
    keep_log: bool,
    stamp: impl FnOnce(&[u8]) -> Vec<u8>,
) -> Candidate {
    let sig = sigstore.sign_image(
        EMAIL,
        ISSUER,
        "127.0.0.1:5000/team/app",
        &digest.to_string(),
        t,
    );
    let mut c = sig.candidate();
    if !keep_log {
        set_annotation(&mut c, BUNDLE_ANNOTATION, None);
    }
    let token = stamp(&signature_bytes(&c));
    set_timestamp(&mut c, &token);
    c
}
