//! `trust::tuf::store`: the versions file and the stored metadata it is checked against.
//! Invariants: arbitrary bytes in `versions.json` either parse to versions that re-serialise
//! and re-parse equal, or are an error (never a fresh start); arbitrary stored `timestamp.json`
//! and `snapshot.json` pass the check only when they carry versions at or above the recorded
//! ones. Runs in a temporary directory per input.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use portcullis::trust::tuf::store::{
    DurableStore, VERSIONS_FILE, Versions, check_against, stored_version,
};
use sigstore_tuf::MetadataStore;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    versions: &'a [u8],
    timestamp: &'a [u8],
    snapshot: &'a [u8],
    root_version: u64,
}

fuzz_target!(|inp: Input<'_>| {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(VERSIONS_FILE), inp.versions).unwrap();
    let store = DurableStore::new(dir.path().join("metadata"));
    store.store("timestamp.json", inp.timestamp).unwrap();
    store.store("snapshot.json", inp.snapshot).unwrap();
    let Ok(Some(v)) = Versions::load(dir.path()) else {
        return;
    };
    v.save(dir.path()).unwrap();
    assert_eq!(Versions::load(dir.path()).unwrap(), Some(v.clone()));
    let ok = check_against(&v, &store, &v.pinned_root_sha256, inp.root_version).is_ok();
    let ts = stored_version(&store, "timestamp.json");
    let sn = stored_version(&store, "snapshot.json");
    let expect = inp.root_version >= v.root
        && ts.is_some_and(|t| t >= v.timestamp)
        && sn.is_some_and(|s| s >= v.snapshot);
    assert_eq!(ok, expect, "{v:?} ts={ts:?} sn={sn:?} root={}", inp.root_version);
});
