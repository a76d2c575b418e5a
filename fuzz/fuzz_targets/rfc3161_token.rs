//! `trust::rfc3161::verify` on arbitrary bytes as a `TimeStampToken`, against fixed
//! messages: the signatures that the fixtures' real tokens stamp (seeds: those tokens, from
//! Microsoft's, GlobalSign's and sigstore's TSAs, plus notation-go's broken ones).
//! The first message is the signature of tests/fixtures/signatures/notation/signatures/
//! blob.jws.sig. The message only matters at the message-imprint check, so the target tries
//! the next message only when a token was refused for its imprint: every seed then gets past
//! the imprint, and its mutants reach the CMS, signed-attribute and signature checks.
//! Invariants: no panic; an accepted token is at most `MAX_TOKEN_BYTES`, carries 1-16
//! certificates among them its signer, has `lower <= time <= upper`, a hex serial and a
//! dotted policy OID, and is refused for its imprint once one byte of the message changes.
#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use portcullis::trust::notation::{cose, jws};
use portcullis::trust::rfc3161::{self, MAX_TOKEN_BYTES};

const JWS: &[&[u8]] = &[
    include_bytes!("../../tests/fixtures/signatures/notation/signatures/blob.jws.sig"),
    include_bytes!(
        "../../tests/fixtures/signatures/notation/registry/oci_layout/e2e-with-timestamped-signature/blobs/sha256/603ff134e97a79cd7a15560b76137c2c4a10451daab11327a7c6f86dac250fee"
    ),
    include_bytes!("../../tests/fixtures/signatures/notation-timestamp/jwsWithTimestamp.sig"),
    include_bytes!(
        "../../tests/fixtures/signatures/notation-timestamp/jwsExpiredWithTimestamp.sig"
    ),
    include_bytes!(
        "../../tests/fixtures/signatures/notation-timestamp/timestampBeforeNotBefore.sig"
    ),
];
const COSE: &[&[u8]] = &[
    include_bytes!("../../tests/fixtures/signatures/notation/signatures/blob.cose.sig"),
    include_bytes!("../../tests/fixtures/signatures/notation-timestamp/coseWithTimestamp.sig"),
    include_bytes!(
        "../../tests/fixtures/signatures/notation-timestamp/coseExpiredWithTimestamp.sig"
    ),
    include_bytes!("../../tests/fixtures/signatures/notation-timestamp/timestampAfterNotAfter.sig"),
];
const COSIGN_BUNDLE: &[u8] =
    include_bytes!("../../tests/fixtures/signatures/cosign-bundle/bundle_v03.json");

/// The stamped messages: each envelope's signature bytes, the DSSE signature of the cosign
/// bundle, and `notation` (what notation-go's TimeStampToken.p7s stamps).
fn messages() -> &'static Vec<Vec<u8>> {
    static MESSAGES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    MESSAGES.get_or_init(|| {
        let mut out: Vec<Vec<u8>> = Vec::new();
        for e in JWS {
            out.push(jws::parse(e).expect("fixture JWS").signature);
        }
        for e in COSE {
            out.push(cose::parse(e).expect("fixture COSE").signature);
        }
        let bundle: serde_json::Value = serde_json::from_slice(COSIGN_BUNDLE).unwrap();
        let sig = bundle["dsseEnvelope"]["signatures"][0]["sig"]
            .as_str()
            .unwrap();
        out.push(
            base64::engine::general_purpose::STANDARD
                .decode(sig)
                .unwrap(),
        );
        out.push(b"notation".to_vec());
        out
    })
}

/// `verify`'s errors are `anyhow` chains; `{:#}` prints every context.
fn is_imprint_refusal(e: &impl std::fmt::Display) -> bool {
    format!("{e:#}").contains("message imprint mismatch")
}

fuzz_target!(|data: &[u8]| {
    for message in messages() {
        let stamp = match rfc3161::verify(data, message) {
            Ok(s) => s,
            Err(e) if is_imprint_refusal(&e) => continue,
            Err(_) => return,
        };
        assert!(data.len() <= MAX_TOKEN_BYTES);
        assert!(!stamp.certs.is_empty() && stamp.certs.len() <= 16);
        assert!(stamp.certs.contains(&stamp.signer));
        assert!(stamp.lower <= stamp.time && stamp.time <= stamp.upper);
        assert!(!stamp.serial.is_empty() && hex::decode(&stamp.serial).is_ok());
        assert!(
            stamp
                .policy
                .split('.')
                .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()))
        );
        let mut other = message.clone();
        let last = other.len() - 1;
        other[last] ^= 1;
        let e = rfc3161::verify(data, &other).expect_err("a token verified for two messages");
        assert!(is_imprint_refusal(&e), "{e:#}");
        return;
    }
});
