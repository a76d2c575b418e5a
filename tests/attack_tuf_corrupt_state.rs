//! A damaged TUF state on the node: the stored timestamp.json is deleted while versions.json
//! remains (what a crash or a careless clean-up leaves). Without the stored timestamp the
//! crate would forget which versions it trusted and accept a rollback; the proxy refuses the
//! source instead, saying how to reset it, and after that reset trusts the repository again.

mod support;

use std::time::Duration;

use support::real::tuf;
use support::real::tuf_attack::AttackBed;

#[test]
fn deleted_stored_timestamp_refuses_the_source_until_it_is_reset() {
    let mut bed = AttackBed::start();
    bed.advance();
    let state = tuf::state_dir(&bed.proxy);
    assert!(state.join("versions.json").exists(), "{}", state.display());
    bed.proxy.stop(Duration::from_secs(10));
    std::fs::remove_file(state.join("metadata/timestamp.json")).expect("stored timestamp.json");
    bed.proxy.restart();
    let body = bed.wait_refused("v1", &state.display().to_string());
    assert!(body.contains("remove"), "{body}");
    // The reset the message names: stop, remove the directory, start.
    bed.proxy.stop(Duration::from_secs(10));
    std::fs::remove_dir_all(&state).unwrap();
    bed.proxy.restart();
    bed.wait_served("new");
}
