//! `upstream::auth::parse_challenge`: the upstream's `WWW-Authenticate` header.
//! Invariants: no panic on any string; a Bearer challenge always has a realm; a parsed challenge,
//! written back out with every parameter quoted, parses to the same challenge.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::upstream::auth::{Challenge, parse_challenge};

fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn write(c: &Challenge) -> String {
    match c {
        Challenge::Basic { realm: None } => "Basic".to_owned(),
        Challenge::Basic { realm: Some(r) } => format!("Basic realm={}", quoted(r)),
        Challenge::Bearer {
            realm,
            service,
            scope,
        } => {
            let mut s = format!("Bearer realm={}", quoted(realm));
            if let Some(v) = service {
                s += &format!(",service={}", quoted(v));
            }
            if let Some(v) = scope {
                s += &format!(", scope={}", quoted(v));
            }
            s
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Some(c) = parse_challenge(s) else {
        return;
    };
    let again = write(&c);
    assert_eq!(
        parse_challenge(&again).as_ref(),
        Some(&c),
        "round trip through {again:?}"
    );
});
