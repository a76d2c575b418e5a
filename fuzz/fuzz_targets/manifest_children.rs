//! `closure::children`: manifest / index JSON from the upstream (what the closure of trusted
//! content is built from). Invariants: no panic; whatever it accepts is JSON, if it is UTF-8 (see
//! fuzz/README.md: serde_json does not check UTF-8 inside the string values of fields it skips,
//! so `children` accepts some non-UTF-8 bytes; recorded, not a crash of the proxy); every digest
//! it returns re-serialises and re-parses to itself; `all()` is manifests then blobs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::closure::children;
use portcullis::refs::Digest;

fuzz_target!(|data: &[u8]| {
    let Ok(ch) = children(data) else {
        return;
    };
    if std::str::from_utf8(data).is_ok() {
        assert!(serde_json::from_slice::<serde_json::Value>(data).is_ok());
    }
    let all = ch.all();
    assert_eq!(all.len(), ch.manifests.len() + ch.blobs.len());
    for d in &all {
        let s = d.to_string();
        assert_eq!(s.parse::<Digest>().as_ref(), Ok(d));
        assert_eq!(d.hex().len(), if s.starts_with("sha256:") { 64 } else { 128 });
    }
});
