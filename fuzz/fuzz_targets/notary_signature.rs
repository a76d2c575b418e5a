//! `trust::notary::keys`: `PublicKey::from_json` (ecdsa, ecdsa-x509, rsa, rsa-x509, ed25519; PEM
//! certificate chains through x509-parser), `key_id`, `canonical_id`, `PublicKey::verify`, and
//! `issued_by` on the parsed chain. The input is split (arbitrary) into a key (raw JSON text, or a
//! key object whose `keyval.public` is fuzz base64 / base64 of fuzz DER / a PEM of fuzz DER / a
//! P-256 SPKI header + fuzz point / a real fixture key with fuzz byte flips), a method, a signature
//! (raw bytes or fuzz base64 text) and a message.
//! Invariants: no panic; an accepted key's `id` is `key_id(keytype, public)` (64 hex) and its
//! `canonical_id` is 64 hex; x509 keys carry certificate facts, others none; RSA keys are
//! >= 2048 bits; verification of fuzz input is always an error (also against the real keys).
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use libfuzzer_sys::fuzz_target;
use portcullis::trust::notary::keys::{KeyError, KeyType, PublicKey, issued_by, key_id};
use serde_json::{Value, json};

const FIXTURES: [&[u8]; 3] = [
    include_bytes!("../../tests/fixtures/notary/local-ed25519/root.json"),
    include_bytes!("../../tests/fixtures/notary/real/moby-alpine/root.json"),
    include_bytes!("../../tests/fixtures/notary/signer-ecdsa/targets.json"),
];

/// (keytype, decoded public bytes) of every key in the fixtures: ed25519, ecdsa, ecdsa-x509,
/// rsa-x509.
fn real_keys() -> &'static Vec<(String, Vec<u8>)> {
    static KEYS: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut out = Vec::new();
        for f in FIXTURES {
            let doc: Value = serde_json::from_slice(f).unwrap();
            let signed = &doc["signed"];
            for map in [&signed["keys"], &signed["delegations"]["keys"]] {
                for k in map.as_object().into_iter().flat_map(|m| m.values()) {
                    let kt = k["keytype"].as_str().unwrap().to_string();
                    let public = B64.decode(k["keyval"]["public"].as_str().unwrap()).unwrap();
                    out.push((kt, public));
                }
            }
        }
        out
    })
}

fn real_parsed() -> &'static Vec<PublicKey> {
    static KEYS: OnceLock<Vec<PublicKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        real_keys()
            .iter()
            .map(|(kt, public)| {
                let v = json!({"keytype": kt, "keyval": {"private": null, "public": B64.encode(public)}});
                PublicKey::from_json(&v).expect("fixture key does not parse")
            })
            .collect()
    })
}

#[derive(Arbitrary, Debug)]
enum Public {
    Base64Text(String),
    Bytes(Vec<u8>),
    PemOf(Vec<u8>),
    P256Spki(Vec<u8>),
    Real { index: u8, flips: Vec<(u16, u8)> },
}

#[derive(Arbitrary, Debug)]
enum KeyIn {
    Json(String),
    Object { keytype: u8, other_type: String, public: Public, private: Option<String> },
}

#[derive(Arbitrary, Debug)]
enum SigIn {
    Raw(Vec<u8>),
    Base64Text(String),
}

#[derive(Arbitrary, Debug)]
struct Input {
    key: KeyIn,
    method: u8,
    other_method: String,
    sig: SigIn,
    msg: Vec<u8>,
}

const TYPES: [&str; 5] = ["ecdsa", "ecdsa-x509", "rsa", "rsa-x509", "ed25519"];
const METHODS: [&str; 4] = ["ecdsa", "eddsa", "rsapss", "rsapkcs1v15"];

fn pem(der: &[u8]) -> Vec<u8> {
    let mut s = b"-----BEGIN CERTIFICATE-----\n".to_vec();
    for line in B64.encode(der).as_bytes().chunks(64) {
        s.extend_from_slice(line);
        s.push(b'\n');
    }
    s.extend_from_slice(b"-----END CERTIFICATE-----\n");
    s
}

fn key_json(k: KeyIn) -> Option<Value> {
    match k {
        KeyIn::Json(s) => serde_json::from_str(&s).ok(),
        KeyIn::Object { keytype, other_type, public, private } => {
            let mut kt = TYPES
                .get(keytype as usize % 8)
                .map(|s| s.to_string())
                .unwrap_or(other_type);
            let public = match public {
                Public::Base64Text(s) => s,
                Public::Bytes(b) => B64.encode(b),
                Public::PemOf(der) => B64.encode(pem(&der)),
                Public::P256Spki(point) => {
                    let mut spki =
                        hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
                    spki.extend_from_slice(&point);
                    B64.encode(spki)
                }
                Public::Real { index, flips } => {
                    let keys = real_keys();
                    let (rkt, bytes) = &keys[index as usize % keys.len()];
                    let mut bytes = bytes.clone();
                    for (pos, x) in flips {
                        if !bytes.is_empty() {
                            let i = pos as usize % bytes.len();
                            bytes[i] ^= x;
                        }
                    }
                    if keytype & 8 == 0 {
                        kt = rkt.clone();
                    }
                    B64.encode(bytes)
                }
            };
            Some(json!({"keytype": kt, "keyval": {"private": private, "public": public}}))
        }
    }
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn check_verify(key: &PublicKey, method: &str, msg: &[u8], sig: &[u8]) {
    match key.verify(method, msg, sig) {
        Ok(()) => panic!(
            "fuzz signature verified: keytype {:?} method {method:?} msg {msg:?} sig {sig:?}",
            key.keytype
        ),
        Err(KeyError::BadSignature | KeyError::MethodMismatch { .. }) => {}
        Err(e) => panic!("verify returned a non-verification error: {e:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = Input::arbitrary(&mut arbitrary::Unstructured::new(data)) else {
        return;
    };
    let method = METHODS
        .get(input.method as usize % 6)
        .map(|s| s.to_string())
        .unwrap_or(input.other_method);
    let sig = match input.sig {
        SigIn::Raw(b) => Some(b),
        SigIn::Base64Text(s) => B64.decode(s).ok(),
    };

    if let Some(v) = key_json(input.key) {
        if let Ok(key) = PublicKey::from_json(&v) {
            let kt = v["keytype"].as_str().unwrap();
            assert_eq!(kt, key.keytype.as_str());
            assert_eq!(key.id, key_id(kt, v["keyval"]["public"].as_str().unwrap()));
            assert!(is_hex64(&key.id));
            assert!(is_hex64(&key.canonical_id()));
            let x509 = matches!(key.keytype, KeyType::EcdsaX509 | KeyType::RsaX509);
            assert_eq!(key.cert.is_some(), x509);
            if !x509 {
                assert_eq!(key.canonical_id(), key.id);
            }
            if let Some(bits) = key.rsa_bits {
                assert!(bits >= 2048);
            }
            assert_eq!(
                key.rsa_bits.is_some(),
                matches!(key.keytype, KeyType::Rsa | KeyType::RsaX509)
            );
            if let Some(c) = &key.cert {
                assert!(!c.der_chain.is_empty());
                let now = time::OffsetDateTime::from_unix_timestamp(1_717_200_000).unwrap();
                let _ = issued_by(&c.der_chain, &c.der_chain, now);
            }
            if let Some(sig) = &sig {
                check_verify(&key, &method, &input.msg, sig);
            }
        }
    }
    // The same fuzz signature against every real key, with the method that fits it.
    if let Some(sig) = &sig {
        if input.msg.len() % 4 == 0 {
            for key in real_parsed() {
                for m in METHODS {
                    check_verify(key, m, &input.msg, sig);
                }
            }
        }
    }
});
