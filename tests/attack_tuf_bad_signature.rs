//! Arbitrary software attack on a plain TUF repository (TUF 5.6.3): targets signed over other
//! bytes (a well-formed signature by the right key, which does not verify) adds `evil`.
//! Refused, and the reason reaches the client; the next honest generation is trusted again.

mod support;

use serde_json::json;
use support::real::skopeo_pull;
use support::real::tuf_attack::AttackBed;

#[test]
fn targets_with_a_bad_signature_are_refused_until_an_honest_one_is_published() {
    let mut bed = AttackBed::start();
    let spec = bed.attacked(&["evil"], json!({"bad_signature": ["targets"]}));
    bed.repo.publish(&spec);
    let needle = "signature threshold not met for role targets: 0/1";
    bed.wait_refused("evil", needle);
    skopeo_pull(&bed.proxy.addr(), &bed.reference("evil"), None)
        .assert_refused("skopeo evil", needle);
    // Honest again: `new` signed properly is trusted after the next refresh.
    bed.repo.publish(&bed.honest(&["new"]));
    bed.wait_served("new");
    bed.wait_refused("evil", "is not a target");
}

/// The same on a delegated ECDSA role.
#[test]
fn delegated_role_with_a_bad_signature_is_refused() {
    let mut bed = AttackBed::start();
    let mut spec = bed.attacked(&[], json!({"bad_signature": ["releases"]}));
    spec["delegations"][0]["targets"]["demo/app:evil"] =
        support::real::tuf::target(&bed.imgs["evil"]);
    bed.repo.publish(&spec);
    bed.wait_refused("evil", "signature threshold not met for role releases: 0/1");
}
