//! `trust::notation::cose::parse` on arbitrary bytes (seed: a real notation COSE envelope).
//! Invariants: no panic; an accepted envelope has a chain, an embedded payload, a scheme
//! whose time attribute is present, and a Sig_structure that starts as RFC 9052 says
//! (a CBOR array of 4 whose first item is the text "Signature1").
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::trust::notation::cose;
use portcullis::trust::notation::envelope::SigningScheme;

fuzz_target!(|data: &[u8]| {
    let Ok(env) = cose::parse(data) else {
        return;
    };
    assert!(!env.chain.is_empty());
    match env.scheme {
        SigningScheme::X509 => assert!(env.times.signing.is_some()),
        SigningScheme::X509SigningAuthority => assert!(env.times.authentic_signing.is_some()),
    }
    // 0x84: array(4); 0x6a "Signature1".
    assert!(env.signed_bytes.starts_with(b"\x84\x6aSignature1"));
});
