//! Canonical JSON exactly as notary signs it (`github.com/docker/go/canonical/json`).
//!
//! Owns: turning a parsed `serde_json::Value` back into the bytes a signer signed. It does not
//! parse JSON. Why it exists: the bytes notary-server serves are NOT the signed bytes when a
//! string holds `<`, `>` or `&` (Go's `json.Marshal` of the envelope HTML-escapes the embedded
//! `signed` RawMessage), so signatures are checked over a re-canonicalised `signed` object.
//!
//! The canonical form: object keys sorted by their UTF-8 bytes, no insignificant whitespace,
//! non-ASCII as raw UTF-8, integers only, and strings escaped like Go's encoder with HTML
//! escaping off: `"` and `\` backslash-escaped, `\n` `\r` `\t` short-escaped, the other control
//! characters (including `\b` and `\f`, which the old Go fork writes as `\u0008`, `\u000c`) as
//! `\u00xx` with lower-case hex, and U+2028 / U+2029 always escaped (Go does this even with
//! HTML escaping off, for JSONP safety).

use serde_json::Value;

/// Why a value has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// notary's canonical encoder refuses non-integral numbers; so do we, rather than guess
    /// at Go's float formatting.
    #[error("canonical JSON has no floating-point numbers (found {0})")]
    Float(String),
}

/// The canonical JSON bytes of `value`.
pub fn to_canonical(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    write_value(&mut out, value)?;
    Ok(out)
}

fn write_value(out: &mut Vec<u8>, value: &Value) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                out.extend_from_slice(n.to_string().as_bytes());
            } else {
                return Err(CanonicalError::Float(n.to_string()));
            }
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // Sorted explicitly: serde_json's map order depends on a crate feature
            // (`preserve_order`) that any other dependency could switch on.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(out, k);
                out.push(b':');
                write_value(out, v)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                let b = c as u32 as usize;
                out.extend_from_slice(b"\\u00");
                out.push(HEX[b >> 4]);
                out.push(HEX[b & 0xf]);
            }
            '\u{2028}' => out.extend_from_slice(b"\\u2028"),
            '\u{2029}' => out.extend_from_slice(b"\\u2029"),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(v: &Value) -> String {
        String::from_utf8(to_canonical(v).unwrap()).unwrap()
    }

    #[test]
    fn sorts_keys_and_drops_whitespace() {
        let v: Value =
            serde_json::from_str(r#"{ "b": [1, 2], "a": {"z": null, "y": true} }"#).unwrap();
        assert_eq!(canon(&v), r#"{"a":{"y":true,"z":null},"b":[1,2]}"#);
    }

    #[test]
    fn keys_sort_by_bytes_not_chars() {
        // "Z" (0x5a) < "_" (0x5f) < "a" (0x61) < "é" (0xc3 0xa9)
        let v = json!({"é": 1, "a": 2, "_type": 3, "Z": 4});
        assert_eq!(canon(&v), r#"{"Z":4,"_type":3,"a":2,"é":1}"#);
    }

    #[test]
    fn html_characters_and_non_ascii_stay_raw() {
        let v: Value = serde_json::from_str(r#"{"a\u003cb\u003e\u0026c-\u00e9":1}"#).unwrap();
        assert_eq!(canon(&v), "{\"a<b>&c-é\":1}");
    }

    #[test]
    fn escapes_like_go() {
        let v = json!("q\"b\\n\nr\rt\tb\u{8}f\u{c}x\u{1f}\u{7f}\u{2028}\u{2029}");
        assert_eq!(
            canon(&v),
            "\"q\\\"b\\\\n\\nr\\rt\\tb\\u0008f\\u000cx\\u001f\u{7f}\\u2028\\u2029\""
        );
    }

    #[test]
    fn integers_yes_floats_no() {
        assert_eq!(
            canon(&json!([-1, 0, 18446744073709551615u64])),
            "[-1,0,18446744073709551615]"
        );
        assert!(matches!(
            to_canonical(&json!(1.5)),
            Err(CanonicalError::Float(_))
        ));
    }

    #[test]
    fn escaping_sample_signed_bytes_round_trip() {
        // The served targets.json of samples/escaping: `signed` is served HTML-escaped; the
        // canonical form must differ from the served slice exactly by that escaping.
        let raw = include_bytes!("../../../tests/fixtures/notary/escaping/targets.json");
        let doc: Value = serde_json::from_slice(raw).unwrap();
        let canonical = to_canonical(&doc["signed"]).unwrap();
        let text = std::str::from_utf8(raw).unwrap();
        let start = text.find("{\"signed\":").unwrap() + "{\"signed\":".len();
        let end = text.rfind(",\"signatures\":").unwrap();
        let served = &text[start..end];
        assert!(served.contains("\\u003c"));
        let unescaped = served
            .replace("\\u003c", "<")
            .replace("\\u003e", ">")
            .replace("\\u0026", "&");
        assert_eq!(String::from_utf8(canonical).unwrap(), unescaped);
    }
}
