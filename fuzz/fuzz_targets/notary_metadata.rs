//! `trust::notary::metadata::parse` for every role type (Root, Targets, Snapshot, Timestamp),
//! `metadata::parse_time`, `FileMeta::sha256_hex`, and `verify::trusted_root` / `verify::load_root`
//! (TOFU, fixed clock) on arbitrary bytes as a served metadata file.
//! Invariants: no panic; at most one role type accepts a given input (by `_type`); an accepted
//! envelope keeps the raw bytes, its `signed` value has `_type` = the role; when `signed` has a
//! canonical form (no floats), that form re-parses to an equal value, is idempotent, and an
//! envelope rebuilt around it parses as the same role with the same version and expiry;
//! `sha256_hex` is 64 hex characters when present.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::trust::notary::canonical::to_canonical;
use portcullis::trust::notary::metadata::{
    Envelope, Role, Root, Snapshot, Targets, Timestamp, parse, parse_time,
};
use portcullis::trust::notary::verify::{RootAnchor, load_root, trusted_root};
use serde_json::Value;

const GUN: &str = "docker.io/library/alpine";

fn check<T: Role>(data: &[u8]) -> bool {
    let name = T::TYPE;
    let Ok(env): Result<Envelope<T>, String> = parse(data) else {
        return false;
    };
    assert_eq!(env.raw, data);
    assert_eq!(env.signed_value.get("_type").and_then(Value::as_str), Some(name));
    for s in &env.signatures {
        let _ = (&s.keyid, &s.method, s.sig.len());
    }
    let Ok(canon) = to_canonical(&env.signed_value) else {
        return true; // a float somewhere in `signed`: refused, not a panic
    };
    let reparsed: Value = serde_json::from_slice(&canon).expect("canonical signed does not re-parse");
    assert_eq!(reparsed, env.signed_value, "canonical signed re-parses to another value");
    assert_eq!(to_canonical(&reparsed).unwrap(), canon, "canonical signed not idempotent");
    // The same `signed`, served canonically with no signatures, is the same document.
    let mut rebuilt = b"{\"signed\":".to_vec();
    rebuilt.extend_from_slice(&canon);
    rebuilt.extend_from_slice(b",\"signatures\":[]}");
    let env2: Envelope<T> = parse(&rebuilt)
        .unwrap_or_else(|e| panic!("canonical re-serialisation of an accepted {name} refused: {e}"));
    assert_eq!(env2.signed.version(), env.signed.version());
    assert_eq!(env2.signed.expires(), env.signed.expires());
    assert!(env2.signatures.is_empty());
    true
}

fn meta_hex<'a>(metas: impl Iterator<Item = &'a portcullis::trust::notary::metadata::FileMeta>) {
    for m in metas {
        if let Some(h) = m.sha256_hex() {
            assert!(h.len() % 2 == 0 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let accepted = [
        check::<Root>(data),
        check::<Targets>(data),
        check::<Snapshot>(data),
        check::<Timestamp>(data),
    ];
    assert!(accepted.iter().filter(|a| **a).count() <= 1, "two role types accepted one file");
    if accepted[2] {
        let env: Envelope<Snapshot> = parse(data).unwrap();
        meta_hex(env.signed.meta.values());
    }
    if accepted[3] {
        let env: Envelope<Timestamp> = parse(data).unwrap();
        meta_hex(env.signed.meta.values());
    }
    if accepted[0] {
        // Key parsing and ID checks of every root key, then the full root checks (TOFU).
        let _ = trusted_root(GUN, data);
        let now = time::OffsetDateTime::from_unix_timestamp(1_717_200_000).unwrap();
        let _ = load_root(GUN, data, None, &RootAnchor::Tofu, now);
    }
    if data.len() <= 64 {
        if let Ok(s) = std::str::from_utf8(data) {
            if parse_time(s).is_ok() {
                assert_eq!(s.as_bytes().get(10), Some(&b'T'));
            }
        }
    }
});
