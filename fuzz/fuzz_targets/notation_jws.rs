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
    // serde_json validates strings it skips less strictly than ones it keeps (an invalid
    // `\u` escape in an ignored unprotected header passes the struct parse but not a `Value`
    // parse: fuzz/artifacts-kept/notation_jws), so the oracle reads only what parses.
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let expected = format!(
            "{}.{}",
            v["protected"].as_str().unwrap(),
            v["payload"].as_str().unwrap()
        );
        assert_eq!(env.signed_bytes, expected.into_bytes());
    }
});
