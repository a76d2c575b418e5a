//! `closure::children`: manifest / index JSON from the upstream (what the closure of trusted
//! content is built from). Invariants: no panic; every digest it returns re-serialises and
//! re-parses to itself; `all()` is manifests then blobs.
//! (Not asserted: "accepted input is valid JSON". serde_json skips unknown fields without full
//! validation, so `children` accepts non-UTF-8 strings and out-of-range numbers in fields that
//! oci-spec's types do not have. Both kept reproducers in fuzz/artifacts-kept/manifest_children/
//! are refused since `children` reads with oci-spec; see fuzz/README.md.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::closure::children;
use portcullis::refs::Digest;

fuzz_target!(|data: &[u8]| {
    let Ok(ch) = children(data) else {
        return;
    };
    let all = ch.all();
    assert_eq!(all.len(), ch.manifests.len() + ch.blobs.len());
    for d in &all {
        let s = d.to_string();
        assert_eq!(s.parse::<Digest>().as_ref(), Ok(d));
        assert_eq!(d.hex().len(), if s.starts_with("sha256:") { 64 } else { 128 });
    }
});
