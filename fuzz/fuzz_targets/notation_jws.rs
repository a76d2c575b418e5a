//! `trust::notation::jws::parse` on arbitrary bytes (seeds: real notation JWS envelopes).
//! Invariants: no panic; an accepted envelope has a chain, a signature, a scheme whose time
//! attribute is present, and signs exactly `protected.payload` as the input spells them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::trust::notation::envelope::SigningScheme;
use portcullis::trust::notation::jws;

fuzz_target!(|data: &[u8]| {
    let Ok(env) = jws::parse(data) else {
        return;
    };
    assert!(!env.chain.is_empty());
    match env.scheme {
        SigningScheme::X509 => assert!(env.times.signing.is_some()),
        SigningScheme::X509SigningAuthority => assert!(env.times.authentic_signing.is_some()),
    }
    let v: serde_json::Value = serde_json::from_slice(data).unwrap();
    let expected = format!(
        "{}.{}",
        v["protected"].as_str().unwrap(),
        v["payload"].as_str().unwrap()
    );
    assert_eq!(env.signed_bytes, expected.into_bytes());
});
