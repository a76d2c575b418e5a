//! Fast-forward attack and its recovery (TUF 5.3.11): a compromised key signs metadata whose
//! version jumps far ahead (timestamp, snapshot, or targets as pinned in snapshot). The
//! repository's honest versions after the compromise are then below what clients trust, and
//! refused as a rollback, until a root rotation replaces the keys of the roles that pin the
//! jumped version: a trusted timestamp or snapshot that no longer verifies under the new root
//! is dropped, and the lower versions are accepted (timestamp: its key; snapshot: the
//! snapshot and timestamp keys; targets: the snapshot key, as tuf-conformance's
//! `test_*_fast_forward_recovery` do). A rotation that leaves those keys alone recovers
//! nothing, and rollback stays refused. python-tuf's client (tufcheck.py, keeping its state across the
//! generations) must reach the same verdict at every step.

mod support;

use serde_json::{Value, json};
use support::real::tuf::Verdict;
use support::real::tuf_attack::{AttackBed, REPO};

/// One step of a scenario: the attack spec, and what the proxy and python-tuf must say.
struct Step {
    what: &'static str,
    spec: Value,
    /// `None`: `new` is served; `Some(needle)`: the refresh is refused, saying `needle`.
    refused: Option<&'static str>,
}

fn run(steps: Vec<Step>) {
    let mut bed = AttackBed::start();
    let python = tempfile::tempdir().unwrap();
    let name = format!("{REPO}:new");
    assert!(
        bed.repo
            .reference_in(python.path(), &[&name])
            .refresh
            .is_none()
    );
    for s in steps {
        bed.repo.publish(&bed.attacked(&["new"], s.spec));
        let verdict: Verdict = bed.repo.reference_in(python.path(), &[&name]);
        match s.refused {
            None => {
                bed.wait_served("new");
                assert!(
                    verdict.refresh.is_none(),
                    "{}: python-tuf: {verdict:?}",
                    s.what
                );
                assert_eq!(
                    verdict.sha256(&name),
                    Some(bed.imgs["new"].sha256_hex().to_owned()),
                    "{}",
                    s.what
                );
            }
            Some(needle) => {
                bed.wait_refused("new", needle);
                let err = verdict.refresh.unwrap_or_default();
                assert!(
                    err.contains("BadVersionNumberError") || err.contains("version"),
                    "{}: python-tuf should refuse too: {err:?}",
                    s.what
                );
            }
        }
        eprintln!("{}: as expected", s.what);
    }
}

fn step(what: &'static str, spec: Value, refused: Option<&'static str>) -> Step {
    Step {
        what,
        spec,
        refused,
    }
}

#[test]
fn timestamp_fast_forward_is_recovered_by_rotating_the_timestamp_key() {
    run(vec![
        step(
            "timestamp version 1000",
            json!({"versions": {"timestamp": 1000}}),
            None,
        ),
        step(
            "honest timestamp version 4, no rotation",
            json!({"versions": {"timestamp": 4}}),
            Some("rollback detected for timestamp: trusted version 1000 > new version 4"),
        ),
        step(
            "root rotation that keeps the timestamp key",
            json!({"roles": {"targets": {"keys": ["targets2"]}}, "versions": {"timestamp": 5}}),
            Some("rollback detected for timestamp: trusted version 1000 > new version 5"),
        ),
        step(
            "root rotation replacing the timestamp key",
            json!({"roles": {"targets": {"keys": ["targets2"]}, "timestamp": {"keys": ["timestamp2"]}},
                   "versions": {"timestamp": 6}}),
            None,
        ),
        step(
            "after recovery, an older timestamp is a rollback again",
            json!({"roles": {"targets": {"keys": ["targets2"]}, "timestamp": {"keys": ["timestamp2"]}},
                   "versions": {"timestamp": 3}}),
            Some("rollback detected for timestamp: trusted version 6 > new version 3"),
        ),
    ]);
}

/// The timestamp pins the snapshot version: recovery rotates the snapshot and the timestamp
/// keys (as tuf-conformance's `test_new_snapshot_fast_forward_recovery` does); a new snapshot
/// key alone leaves the trusted timestamp, and its pin, in place.
#[test]
fn snapshot_fast_forward_is_recovered_by_rotating_the_snapshot_and_timestamp_keys() {
    run(vec![
        step(
            "snapshot version 1000",
            json!({"versions": {"snapshot": 1000}}),
            None,
        ),
        step(
            "honest snapshot version 4, no rotation",
            json!({"versions": {"snapshot": 4}}),
            Some("rollback detected for snapshot"),
        ),
        step(
            "root rotation replacing only the snapshot key",
            json!({"roles": {"snapshot": {"keys": ["snapshot2"]}}, "versions": {"snapshot": 5}}),
            Some(
                "rollback detected for snapshot (via timestamp): trusted version 1000 > new version 5",
            ),
        ),
        step(
            "root rotation replacing the snapshot and timestamp keys",
            json!({"roles": {"snapshot": {"keys": ["snapshot2"]}, "timestamp": {"keys": ["timestamp2"]}},
                   "versions": {"snapshot": 6}}),
            None,
        ),
    ]);
}

/// Targets versions live in snapshot: recovering from a fast-forwarded targets version takes
/// a new snapshot key (rotating only the targets key keeps the trusted snapshot's pins).
#[test]
fn targets_fast_forward_is_recovered_by_rotating_the_snapshot_key() {
    run(vec![
        step(
            "targets version 1000",
            json!({"versions": {"targets": 1000}}),
            None,
        ),
        step(
            "root rotation replacing only the targets key",
            json!({"roles": {"targets": {"keys": ["targets2"]}}, "versions": {"targets": 4}}),
            Some("rollback detected for targets.json"),
        ),
        step(
            "root rotation replacing the snapshot key",
            json!({"roles": {"targets": {"keys": ["targets2"]}, "snapshot": {"keys": ["snapshot2"]}},
                   "versions": {"targets": 5}}),
            None,
        ),
    ]);
}
