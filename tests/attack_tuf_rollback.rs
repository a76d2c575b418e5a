//! Rollback attack on a plain TUF repository (TUF 5.4.3, 5.5.5, 5.6.5): after the proxy has
//! trusted generation 2 (which signs `new`), the repository serves older versions again,
//! validly signed. Refused for timestamp, snapshot and targets, by a running proxy and by one
//! restarted on its stored state; the client is told the role and both versions.

mod support;

use serde_json::json;
use support::real::tuf_attack::AttackBed;

/// Generation 3 is generation 1's timestamp.json served again (it names snapshot 1, which
/// does not sign `new`).
#[test]
fn timestamp_replayed_from_an_older_generation_is_refused() {
    let mut bed = AttackBed::start();
    bed.advance();
    let spec = bed.attacked(
        &["new"],
        json!({"replay": [{"generation": 1, "file": "timestamp.json"}]}),
    );
    bed.repo.publish(&spec);
    bed.wait_refused(
        "new",
        "rollback detected for timestamp: trusted version 2 > new version 1",
    );
}

/// A fresh timestamp (version 3) naming snapshot version 1, re-signed.
#[test]
fn snapshot_rolled_back_is_refused() {
    let mut bed = AttackBed::start();
    bed.advance();
    bed.repo
        .publish(&bed.attacked(&["new"], json!({"versions": {"snapshot": 1}})));
    bed.wait_refused("new", "rollback detected for snapshot");
}

/// A fresh timestamp and snapshot naming targets version 1, re-signed, without `new`.
#[test]
fn targets_rolled_back_is_refused() {
    let mut bed = AttackBed::start();
    bed.advance();
    bed.repo
        .publish(&bed.attacked(&[], json!({"versions": {"targets": 1}})));
    bed.wait_refused("new", "rollback detected for targets.json");
}

/// The proxy is stopped after trusting generation 2; the repository goes back to generation
/// 1; the restarted proxy remembers generation 2 from its store and refuses.
#[test]
fn rollback_across_a_restart_is_refused() {
    let mut bed = AttackBed::start();
    bed.advance();
    bed.proxy.stop(std::time::Duration::from_secs(10));
    let spec = bed.attacked(
        &["new"],
        json!({"replay": [{"generation": 1, "file": "timestamp.json"}]}),
    );
    bed.repo.publish(&spec);
    bed.proxy.restart();
    bed.wait_refused(
        "new",
        "rollback detected for timestamp: trusted version 2 > new version 1",
    );
    bed.wait_refused("v1", "rollback detected for timestamp");
}
