//! Stray targets (TUF 5.6.7: a target is trusted only through delegations whose paths match
//! it, and a delegated role only as pinned by snapshot, 5.6.1/5.6.4): the attacker holds the
//! key of a role and lists `evil` there, but the role is not delegated that name, or it is
//! not in snapshot, or nobody delegates to it at all. None of these is trusted, by the proxy
//! or by python-tuf; the honest tags stay served.

mod support;

use serde_json::{Value, json};
use support::real::tuf::target;
use support::real::tuf_attack::{AttackBed, REPO};

fn refused_everywhere(bed: &mut AttackBed, what: &str, spec: Value) {
    bed.repo.publish(&spec);
    let evil = format!("{REPO}:evil");
    // The attacked generation signs `new` honestly: once it is served, the proxy trusts it.
    bed.wait_served("new");
    bed.wait_served("v2");
    bed.wait_refused("evil", "is not a target");
    let verdict = bed.repo.reference(&[&evil]);
    assert!(verdict.refresh.is_none(), "{what}: {verdict:?}");
    // python-tuf finds nothing, or (for a delegated role missing from snapshot) stops the
    // search with an error; either way it names no digest.
    assert!(
        verdict.sha256(&evil).is_none(),
        "{what}: python-tuf trusts it: {verdict:?}"
    );
}

/// `releases` is delegated only `demo/app:v2*` and lists `demo/app:evil`.
#[test]
fn a_target_outside_the_delegated_paths_is_not_trusted() {
    let mut bed = AttackBed::start();
    let evil = target(&bed.imgs["evil"]);
    let spec = bed.attacked(
        &["new"],
        json!({"delegations": [{"name": "releases", "keys": ["releases"], "paths": ["demo/app:v2*"],
               "targets": {"demo/app:v2": target(&bed.imgs["v2"]), "demo/app:evil": evil}}]}),
    );
    refused_everywhere(&mut bed, "outside its paths", spec);
}

/// A role delegated `demo/app:evil` that lists it, signed and served, but not in snapshot.
/// The crate skips such a role (and goes on with its siblings); python-tuf ends the search
/// with "Role stray was delegated but is not part of snapshot". Neither trusts `evil`.
#[test]
fn a_delegated_role_missing_from_snapshot_is_not_trusted() {
    let mut bed = AttackBed::start();
    let evil = target(&bed.imgs["evil"]);
    let spec = bed.attacked(
        &["new"],
        json!({
            "delegations": [
                {"name": "stray", "keys": ["stray"], "paths": ["demo/app:evil"],
                 "targets": {"demo/app:evil": evil}},
                {"name": "releases", "keys": ["releases"], "paths": ["demo/*"],
                 "targets": {"demo/app:v2": target(&bed.imgs["v2"])}}],
            "unlisted": ["stray"]}),
    );
    refused_everywhere(&mut bed, "not in snapshot", spec);
    // Served all the same: the proxy never had to ask for it.
    assert!(bed.repo.metadata_dir().join("1.stray.json").exists());
}

/// A role in snapshot, signed and served, that no role delegates to.
#[test]
fn a_role_nobody_delegates_to_is_not_trusted() {
    let mut bed = AttackBed::start();
    let evil = target(&bed.imgs["evil"]);
    let spec = bed.attacked(
        &["new"],
        json!({"orphans": [{"name": "orphan", "keys": ["orphan"],
                            "targets": {"demo/app:evil": evil}}]}),
    );
    refused_everywhere(&mut bed, "delegated by nobody", spec);
}
