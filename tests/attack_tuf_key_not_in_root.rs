//! Targets signed by a key root does not list (TUF 5.6.3): a well-formed, valid signature by
//! the wrong key adds `evil`. Refused, naming the role and the count of valid signatures.

mod support;

use serde_json::json;
use support::real::tuf_attack::AttackBed;

#[test]
fn targets_signed_by_a_key_not_in_root_are_refused() {
    let mut bed = AttackBed::start();
    let spec = bed.attacked(&["evil"], json!({"sign_with": {"targets": ["rogue"]}}));
    bed.repo.publish(&spec);
    bed.wait_refused("evil", "signature threshold not met for role targets: 0/1");
}

/// A delegated role signed by a key its delegator does not name (here: the targets key).
#[test]
fn delegated_role_signed_by_another_key_is_refused() {
    let mut bed = AttackBed::start();
    let mut spec = bed.attacked(&[], json!({"sign_with": {"releases": ["targets"]}}));
    spec["delegations"][0]["targets"]["demo/app:evil"] =
        support::real::tuf::target(&bed.imgs["evil"]);
    bed.repo.publish(&spec);
    bed.wait_refused("evil", "signature threshold not met for role releases: 0/1");
}
