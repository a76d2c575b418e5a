//! An expired delegated role that a lookup does not need: `releases` (which signs `v2`)
//! expired an hour ago. Tags signed in `targets` still pull; `v2` is refused naming the role.

mod support;

use serde_json::json;
use support::real::tuf_attack::AttackBed;

#[test]
fn expired_delegated_role_fails_only_the_lookups_that_need_it() {
    let mut bed = AttackBed::start();
    let spec = bed.attacked(&["new"], json!({"expires": {"releases": "-1h"}}));
    bed.repo.publish(&spec);
    bed.wait_served("new");
    bed.wait_served("v1");
    let body = bed.wait_refused("v2", "expired");
    assert!(body.contains("releases"), "{body}");
}
