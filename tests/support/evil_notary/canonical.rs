//! JSON the way notary writes it.
//!
//! What is signed is the canonical form of `signed`: keys sorted, no whitespace, non-ASCII as
//! raw UTF-8 and no HTML escaping. What is served is Go's `json.Marshal` of the envelope, which
//! HTML-escapes `<`, `>`, `&` (and U+2028/U+2029) inside the embedded `signed` bytes, so served
//! bytes and signed bytes differ for such target names (testbed `samples/escaping/`).

use serde_json::Value;

/// Canonical JSON of `v`: what a notary signature covers.
pub fn canonical(v: &Value) -> Vec<u8> {
    let mut out = String::new();
    write(v, &mut out);
    out.into_bytes()
}

fn write(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&string(k));
                out.push(':');
                write(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        Value::String(s) => out.push_str(&string(s)),
        // null, booleans and integers print the same in every JSON writer.
        other => out.push_str(&other.to_string()),
    }
}

/// A JSON string literal: serde_json escapes only `"`, `\` and control characters, like
/// notary's canonical encoder.
fn string(s: &str) -> String {
    serde_json::to_string(s).expect("a string always serialises")
}

/// Go's HTML escaping, applied to JSON bytes. The replaced characters can only occur inside
/// string literals, so a plain textual replacement is exact.
pub fn go_html_escape(json: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(json).expect("JSON is UTF-8");
    text.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
        .into_bytes()
}
