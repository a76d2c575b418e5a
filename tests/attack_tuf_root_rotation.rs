//! Root rotation (TUF 5.3): a new root signed by the old and the new root keys is adopted (and
//! still after a restart); a root signed only by a new key (a forged rotation) is refused.

mod support;

use serde_json::json;
use support::real::tuf_attack::AttackBed;

#[test]
fn valid_rotation_is_adopted_and_survives_a_restart() {
    let mut bed = AttackBed::start();
    let rotated = bed.attacked(&["new"], json!({"roles": {"root": {"keys": ["root2"]}}}));
    let out = bed.repo.publish(&rotated);
    assert_eq!(out["versions"]["root"], 2, "{out}");
    bed.wait_served("new");
    bed.proxy.restart();
    bed.wait_served("new");
    bed.wait_served("v1");
    // The next generation is signed under the new root only.
    bed.repo.publish(&bed.attacked(
        &["new", "v2"],
        json!({"roles": {"root": {"keys": ["root2"]}}}),
    ));
    bed.wait_served("v2");
}

#[test]
fn forged_rotation_is_refused() {
    let mut bed = AttackBed::start();
    let forged = bed.attacked(
        &["evil"],
        json!({"roles": {"root": {"keys": ["root2"]}}, "sign_with": {"root": ["root2"]}}),
    );
    bed.repo.publish(&forged);
    bed.wait_refused("evil", "signature threshold not met for role root: 0/1");
}
