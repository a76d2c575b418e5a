//! `api::range::interpret`: the client's `Range` header against a blob length.
//! Invariants: a window is non-empty and lies within the blob; 416 only when the length is
//! known; no header means the whole blob; the window agrees with a simple reference reading of
//! the single forms `bytes=a-b`, `bytes=a-`, `bytes=-n`.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use portcullis::api::range::{RangeOutcome, interpret};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    value: Option<&'a str>,
    total: Option<u64>,
    /// Use a small total most of the time, so edges are hit.
    small_total: Option<u8>,
}

fuzz_target!(|inp: Input<'_>| {
    let total = match inp.small_total {
        Some(t) => Some(t as u64),
        None => inp.total,
    };
    let out = interpret(inp.value, total);
    match out {
        RangeOutcome::Full => {}
        RangeOutcome::Unsatisfiable => {
            assert!(total.is_some(), "416 without a known length");
            assert!(inp.value.is_some());
        }
        RangeOutcome::Partial(w) => {
            let t = total.expect("window without a known length");
            assert!(w.start < w.end, "empty window {w:?}");
            assert!(w.end <= t, "window {w:?} past the end {t}");
            assert!(inp.value.is_some());
        }
    }
    if inp.value.is_none() {
        assert_eq!(out, RangeOutcome::Full);
    }
    // Reference reading of the plain forms (no whitespace, digits only).
    if let (Some(v), Some(t)) = (inp.value, total)
        && let Some(spec) = v.strip_prefix("bytes=")
        && let Some((a, b)) = spec.split_once('-')
        && !spec.contains(',')
        && a.bytes().all(|c| c.is_ascii_digit())
        && b.bytes().all(|c| c.is_ascii_digit())
        && a.len() < 19
        && b.len() < 19
    {
        let (a, b) = (a.parse::<u64>().ok(), b.parse::<u64>().ok());
        let expect = match (a, b) {
            (None, Some(0)) => Some(RangeOutcome::Unsatisfiable),
            (None, Some(n)) if t == 0 => {
                let _ = n;
                Some(RangeOutcome::Unsatisfiable)
            }
            (Some(s), _) if s >= t && b.is_none_or(|e| e >= s) => Some(RangeOutcome::Unsatisfiable),
            _ => None,
        };
        if let Some(e) = expect {
            assert_eq!(out, e, "{v:?} against {t}");
        }
        if let (Some(s), Some(e), RangeOutcome::Partial(w)) = (a, b, out) {
            assert_eq!((w.start, w.end), (s, (e + 1).min(t)), "{v:?} against {t}");
        }
        if let (None, Some(n), RangeOutcome::Partial(w)) = (a, b, out) {
            assert_eq!((w.start, w.end), (t.saturating_sub(n), t), "{v:?} against {t}");
        }
    }
});
