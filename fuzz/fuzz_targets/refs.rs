//! `refs`: repository names, tags, digests and references (the grammars every client name and
//! every upstream digest go through). Invariants: what parses re-serialises to the same string
//! and re-parses equal; accepted names satisfy the documented character rules; `from_raw` takes
//! exactly the algorithm's length.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use portcullis::refs::{Algorithm, Digest, Reference, RepoName, Tag};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    s: &'a str,
    raw: &'a [u8],
    sha512: bool,
}

fuzz_target!(|inp: Input<'_>| {
    let s = inp.s;
    if let Ok(r) = s.parse::<RepoName>() {
        assert_eq!(r.as_str(), s);
        assert_eq!(r.to_string(), s);
        assert!(!s.is_empty() && s.len() <= portcullis::refs::MAX_NAME_LEN);
        assert!(s.bytes().all(|c| c.is_ascii_lowercase()
            || c.is_ascii_digit()
            || matches!(c, b'.' | b'_' | b'-' | b'/')));
        for comp in s.split('/') {
            let b = comp.as_bytes();
            assert!(!b.is_empty(), "empty component in {s:?}");
            assert!(b[0].is_ascii_alphanumeric() && b[b.len() - 1].is_ascii_alphanumeric());
            assert!(!comp.contains("..") && !comp.contains("___") && !comp.contains("._"));
        }
    }
    if let Ok(t) = s.parse::<Tag>() {
        assert_eq!(t.as_str(), s);
        assert!(!s.is_empty() && s.len() <= 128 && !s.starts_with(['.', '-']));
        assert_eq!(t.to_string().parse::<Tag>().as_ref(), Ok(&t));
    }
    match s.parse::<Digest>() {
        Ok(d) => {
            assert_eq!(d.to_string(), s);
            let want = match d.algorithm() {
                Algorithm::Sha256 => 64,
                Algorithm::Sha512 => 128,
            };
            assert_eq!(d.hex().len(), want);
            assert!(d.hex().bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')));
            let raw = hex::decode(d.hex()).unwrap();
            assert_eq!(Digest::from_raw(d.algorithm(), &raw).as_ref(), Ok(&d));
        }
        Err(_) => {}
    }
    match s.parse::<Reference>() {
        Ok(r) => {
            assert_eq!(r.to_string(), s);
            match &r {
                Reference::Tag(t) => assert_eq!(s.parse::<Tag>().as_ref(), Ok(t)),
                Reference::Digest(d) => assert_eq!(s.parse::<Digest>().as_ref(), Ok(d)),
            }
        }
        Err(_) => assert!(s.parse::<Tag>().is_err() && s.parse::<Digest>().is_err()),
    }
    let alg = if inp.sha512 { Algorithm::Sha512 } else { Algorithm::Sha256 };
    match Digest::from_raw(alg, inp.raw) {
        Ok(d) => {
            assert_eq!(inp.raw.len(), if inp.sha512 { 64 } else { 32 });
            assert_eq!(d.to_string().parse::<Digest>().as_ref(), Ok(&d));
        }
        Err(_) => assert_ne!(inp.raw.len(), if inp.sha512 { 64 } else { 32 }),
    }
    let d = Digest::sha256_of(inp.raw);
    assert_eq!(d.of_same_algorithm(inp.raw), d);
});
