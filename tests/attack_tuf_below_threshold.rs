//! Signatures below the threshold (TUF 5.6.3): root asks two of two keys for targets; a
//! generation signed by both is trusted, one signed by one key (adding `evil`) is refused.

mod support;

use serde_json::json;
use support::real::tuf_attack::AttackBed;

#[test]
fn targets_signed_by_one_of_two_required_keys_are_refused() {
    let mut bed = AttackBed::start();
    let two = json!({"targets": {"keys": ["targets", "targets2"], "threshold": 2}});
    bed.repo
        .publish(&bed.attacked(&["new"], json!({"roles": two})));
    bed.wait_served("new");
    let spec = bed.attacked(
        &["new", "evil"],
        json!({"roles": two, "sign_with": {"targets": ["targets"]}}),
    );
    bed.repo.publish(&spec);
    bed.wait_refused("evil", "signature threshold not met for role targets: 1/2");
}
