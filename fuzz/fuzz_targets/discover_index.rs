//! Discovery's pure steps on a registry's answers: `discover::parse::index` (a referrers index,
//! from the API or the tag schema), `parse::select` (which hints are fetched, and the bound),
//! and `parse::check_candidate` (a fetched candidate manifest: content addressing, subject).
//!
//! Input: a header line `<max_candidates> <sig> <via> <asked digest> [bad]`, then the index
//! bytes, `\n--\n`, and one candidate manifest's bytes (seeds: the referrers indexes and
//! signature manifests of notation's e2e OCI layouts, with their subject as `asked`). `<sig>` is
//! `-` (no `.sig` tag), `m` (the `.sig` tag served the candidate) or a number n (it served the
//! n-th hint's digest); `<via>` is `r`, `t` or `c` (referrers API, tag schema, `.sig`); `bad`
//! fetches the candidate under a digest its bytes do not hash to. An unreadable header falls
//! back to defaults, so the fuzzer may mutate it freely.
//!
//! Invariants: no panic; an accepted index is a `schemaVersion` 2 document (mediaType absent or
//! the OCI index type) whose hints are its `manifests`, in order, each digest re-serialising
//! and re-parsing to itself; at most `max_candidates` manifests are fetched in all (hints kept
//! plus the `.sig` manifest when it is not one of them), no digest twice, the kept hints are the
//! first of each digest in index order, and nothing is cut unless the total was over the
//! bound; an accepted candidate hashes to the digest it was fetched by, and its subject is the
//! asked digest (or, for the `.sig` manifest only, absent), and a wrong digest is always refused.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use portcullis::refs::Digest;
use portcullis::trust::discover::parse::{self, OCI_INDEX};
use portcullis::trust::signature::{ArtifactKind, FoundVia};

struct Header {
    max: usize,
    sig: String,
    via: FoundVia,
    asked: Digest,
    bad: bool,
}

fn header(line: &str) -> Header {
    let mut it = line.split(' ');
    let max = it
        .next()
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(3)
        .clamp(1, 1000);
    let sig = it.next().unwrap_or("-").to_owned();
    let via = match it.next() {
        Some("t") => FoundVia::TagSchema,
        Some("c") => FoundVia::CosignTag,
        _ => FoundVia::Referrers,
    };
    let asked = it
        .next()
        .and_then(|s| s.parse::<Digest>().ok())
        .unwrap_or_else(|| Digest::sha256_of(b"asked"));
    let bad = it.next() == Some("bad");
    Header {
        max,
        sig,
        via,
        asked,
        bad,
    }
}

fuzz_target!(|data: &[u8]| {
    let (head, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let h = header(&String::from_utf8_lossy(head));
    let sep = b"\n--\n";
    let (index_bytes, manifest_bytes) = match rest.windows(sep.len()).position(|w| w == sep) {
        Some(i) => (&rest[..i], &rest[i + sep.len()..]),
        None => (rest, &rest[..0]),
    };

    // 1. The index.
    let hints = match parse::index(index_bytes) {
        Ok(hints) => {
            // serde_json skips unknown members without validating them fully (fuzz/README.md,
            // `manifest_children`), so the oracle reads only what a `Value` parse accepts.
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(index_bytes) {
                assert_eq!(v["schemaVersion"], 2);
                assert!(v["mediaType"].is_null() || v["mediaType"] == OCI_INDEX);
                let entries = v["manifests"].as_array().expect("manifests is an array");
                assert_eq!(entries.len(), hints.len());
                for (e, hint) in entries.iter().zip(&hints) {
                    assert_eq!(e["digest"].as_str(), Some(hint.digest.to_string().as_str()));
                    assert_eq!(e["size"].as_u64(), Some(hint.size));
                }
            }
            for hint in &hints {
                let again: Digest = hint.digest.to_string().parse().expect("re-parses");
                assert_eq!(again, hint.digest);
            }
            hints
        }
        Err(_) => Vec::new(),
    };

    // 2. Which hints are fetched.
    let sig: Option<Digest> = match h.sig.as_str() {
        "-" => None,
        "m" => Some(Digest::sha256_of(manifest_bytes)),
        n => n
            .parse::<usize>()
            .ok()
            .and_then(|i| hints.get(i))
            .map(|hint| hint.digest.clone()),
    };
    let tagged: Vec<_> = hints.iter().cloned().map(|hint| (hint, h.via)).collect();
    let (kept, sig_is_a_hint, note) = parse::select(tagged, sig.as_ref(), h.max);
    let mut first = Vec::new();
    let mut seen = HashSet::new();
    for hint in &hints {
        if seen.insert(hint.digest.clone()) {
            first.push(hint.digest.clone());
        }
    }
    let kept_digests: Vec<Digest> = kept.iter().map(|(hint, _)| hint.digest.clone()).collect();
    assert!(
        first.starts_with(&kept_digests),
        "kept hints are the first of each digest, in order"
    );
    assert_eq!(
        sig_is_a_hint,
        sig.as_ref().is_some_and(|d| kept_digests.contains(d))
    );
    let fetched = kept.len() + usize::from(sig.is_some() && !sig_is_a_hint);
    assert!(fetched <= h.max, "{fetched} fetched, bound {}", h.max);
    let total = first.len() + usize::from(sig.as_ref().is_some_and(|d| !seen.contains(d)));
    match note {
        None => {
            assert_eq!(kept_digests, first, "nothing cut without a note");
            assert!(total <= h.max);
        }
        Some(_) => assert!(total > h.max),
    }

    // 3. A fetched candidate.
    let right = Digest::sha256_of(manifest_bytes);
    let d = if h.bad {
        Digest::sha256_of(&[manifest_bytes, b"x"].concat())
    } else {
        right.clone()
    };
    match parse::check_candidate(&d, manifest_bytes, &h.asked, h.via) {
        Ok(m) => {
            assert!(!h.bad, "a candidate under the wrong digest was accepted");
            assert_eq!(d, right);
            match &m.subject {
                Some(s) => assert_eq!(s, &h.asked),
                None => assert_eq!(h.via, FoundVia::CosignTag),
            }
            if matches!(
                m.kind,
                ArtifactKind::NotationJws | ArtifactKind::NotationCose
            ) {
                assert_eq!(m.layers.len(), 1);
            }
            for l in &m.layers {
                let again: Digest = l.digest.to_string().parse().expect("re-parses");
                assert_eq!(again, l.digest);
            }
        }
        Err(_) => {}
    }
    // The manifest parser alone: a subject it reads is a digest that re-parses.
    if let Ok(m) = parse::manifest(manifest_bytes)
        && let Some(s) = m.subject
    {
        assert_eq!(s.to_string().parse::<Digest>().expect("re-parses"), s);
    }
});
