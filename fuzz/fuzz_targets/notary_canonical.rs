//! `trust::notary::canonical::to_canonical`: arbitrary bytes -> `serde_json::Value` (if they
//! parse) -> canonical JSON. Invariants: no panic; refused (Float) exactly when the value holds a
//! non-integral / out-of-range number; accepted output is UTF-8, re-parses to an equal Value, and
//! encoding the re-parsed value gives identical bytes (idempotence); no raw control character,
//! U+2028 / U+2029 in the output.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::trust::notary::canonical::{CanonicalError, to_canonical};
use serde_json::Value;

fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => !(n.is_i64() || n.is_u64()),
        Value::Array(a) => a.iter().any(has_float),
        Value::Object(m) => m.values().any(has_float),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    match to_canonical(&value) {
        Err(CanonicalError::Float(_)) => {
            assert!(has_float(&value), "refused a value without floats: {value}");
        }
        Ok(bytes) => {
            assert!(!has_float(&value), "accepted a float: {value}");
            let text = std::str::from_utf8(&bytes).expect("canonical output is not UTF-8");
            assert!(
                !text.chars().any(|c| (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}'),
                "unescaped control / line separator in {text:?}"
            );
            let reparsed: Value =
                serde_json::from_slice(&bytes).expect("canonical output does not re-parse");
            assert_eq!(reparsed, value, "canonical output re-parses to another value");
            let again = to_canonical(&reparsed).expect("re-parsed value has no canonical form");
            assert_eq!(again, bytes, "canonical encoding is not idempotent");
        }
    }
});
