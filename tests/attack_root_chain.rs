//! Root chains (TUF 1.0 §5.3 "Update the root role"; notary `tufClient.updateRoot`): a node
//! that last trusted root version N reaches the current root through every
//! `<version>.root.json` in between, each signed by a threshold of its predecessor's root keys
//! and of its own, versions strictly consecutive, at most 32 new versions per refresh, each
//! verified step persisted at once. A chain with a missing, forged or out-of-order link is
//! refused, naming the version that broke it.

mod support;

use std::path::Path;

use support::evil_notary::{
    Behaviour, Control, Env, Expiry, Key, Publication, Repo, Role, Target, fixtures, gun,
    honest_control,
};

/// The repository trusted once at root version 1 (the shared honest control), ready to
/// rotate.
async fn trusted_at_v1() -> (Repo, Target, Control) {
    let (repo, v1) = fixtures::honest_repo();
    let control = honest_control(&fixtures::control(repo.publish(), &v1)).await;
    assert_eq!(stored_root_version(&control.env), 1);
    (repo, v1, control)
}

/// The root version the persisted state records for the GUN (`state.json` `versions.root`),
/// checked against the version of the stored `root.json` itself.
fn stored_root_version(env: &Env) -> u64 {
    let dirs: Vec<_> = std::fs::read_dir(env.cache_dir().join("notary"))
        .expect("state dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("state.json").exists())
        .collect();
    assert_eq!(dirs.len(), 1, "one GUN: {dirs:?}");
    let json = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).expect("read")).expect("json")
    };
    let state = json(&dirs[0].join("state.json"));
    let root = json(&dirs[0].join("root.json"));
    let version = state["versions"]["root"].as_u64().expect("versions.root");
    assert_eq!(root["signed"]["version"].as_u64(), Some(version), "{state}");
    version
}

/// A new root key at root version 3 (no version 2 anywhere), signed by it and by version 1's,
/// with `v1` signed as new content: the publication and that content.
fn jump_to_v3_signed_by_v1(repo: &mut Repo) -> (Publication, Target) {
    let k1 = std::mem::replace(&mut repo.root_keys, vec![Key::root_for(&gun())]);
    repo.old_root_keys = k1;
    let v1b = Target::manifest("v1", 3);
    repo.sign_tag("v1", v1b.clone()).bump_all().bump_all();
    (repo.publish(), v1b)
}

#[tokio::test]
async fn honest_chain_of_three_rotations_is_followed() {
    let (mut repo, v1, c) = trusted_at_v1().await;
    let rotations = fixtures::root_rotations(&mut repo, 3);
    c.serve_and_check(&rotations, "v1")
        .await
        .assert_trusted(&v1.digest(), "targets");
    // v4 is signed by v3's key and its own only: v1's key reaches it through 2 and 3.
    assert_eq!(c.server.file_requests("2.root"), 1);
    assert_eq!(c.server.file_requests("3.root"), 1);
    assert_eq!(c.server.file_requests("4.root"), 0, "root.json is the last");
    assert_eq!(stored_root_version(&c.env), 4);
    // Trusted at v4 now: the next refresh needs no chain.
    c.recheck("v1")
        .await
        .assert_trusted(&v1.digest(), "targets");
    assert_eq!(c.server.file_requests("2.root"), 1);
}

/// Root jumps from 1 to 3 and the server has no 2.root.json. Version 3 is even signed by the
/// trusted key (notary's client would take it directly): still refused, since the rotation
/// that version 2 carried cannot be verified.
#[tokio::test]
async fn skipped_version_missing_on_the_server_is_refused() {
    let (mut repo, _, c) = trusted_at_v1().await;
    let (p3, v1b) = jump_to_v3_signed_by_v1(&mut repo);
    c.server.set_file("2.root", Behaviour::Status(404));
    let out = c.serve_and_check(&[p3], "v1").await;
    out.assert_refused(&["404"], Some("root version 2 of"));
    out.assert_no_digest(&v1b.digest());
    assert_eq!(stored_root_version(&c.env), 1);
}

/// The same jump, with a server that answers 2.root.json with the version 3 root.
#[tokio::test]
async fn skipped_version_served_under_its_name_is_refused() {
    let (mut repo, _, c) = trusted_at_v1().await;
    let (p3, v1b) = jump_to_v3_signed_by_v1(&mut repo);
    let root3 = p3.files["root"].clone();
    c.server.set_file("2.root", Behaviour::Bytes(root3.into()));
    let out = c.serve_and_check(&[p3], "v1").await;
    out.assert_refused(&["consecutive"], Some("root version 2 of"));
    out.assert_no_digest(&v1b.digest());
}

/// 1 -> 2 honest, 3.root.json signed by a new key only (not by version 2's), 4 signed by 3's
/// key and its own: refused at version 3, and the verified step to 2 is kept.
#[tokio::test]
async fn forged_intermediate_is_refused_naming_its_version() {
    let (mut repo, _, c) = trusted_at_v1().await;
    let mut served = fixtures::root_rotations(&mut repo, 1);
    repo.rotate_root();
    repo.old_root_keys.clear();
    served.push(repo.publish());
    served.extend(fixtures::root_rotations(&mut repo, 1));
    let v1b = Target::manifest("v1", 4);
    repo.sign_tag("v1", v1b.clone());
    served.push(repo.publish());
    let out = c.serve_and_check(&served, "v1").await;
    out.assert_refused(
        &["signature threshold of root version 2 not met"],
        Some("root version 3 of"),
    );
    out.assert_no_digest(&v1b.digest());
    assert_eq!(stored_root_version(&c.env), 2, "step 1 -> 2 was verified");
}

/// 2.root.json signed by the trusted key but not by its own (new) key.
#[tokio::test]
async fn intermediate_not_signed_by_its_own_key_is_refused() {
    let (mut repo, v1, c) = trusted_at_v1().await;
    repo.rotate_root();
    repo.root_signers = Some(vec![]);
    let mut served = vec![repo.publish()];
    repo.root_signers = None;
    served.extend(fixtures::root_rotations(&mut repo, 1));
    let out = c.serve_and_check(&served, "v1").await;
    out.assert_refused(&["its own root keys"], Some("root version 2 of"));
    out.assert_no_digest(&v1.digest());
}

/// A root 40 versions ahead: one refresh verifies and keeps 32, refuses naming the current
/// version and the bound; the next refresh walks the rest and trusts it.
#[tokio::test]
async fn chain_longer_than_the_bound_is_refused_then_finished_by_the_next_refresh() {
    let (mut repo, v1, c) = trusted_at_v1().await;
    let rotations = fixtures::root_rotations(&mut repo, 40);
    let out = c.serve_and_check(&rotations, "v1").await;
    out.assert_refused(&["more than the 32"], Some("root version 41 of"));
    assert_eq!(stored_root_version(&c.env), 33);
    assert_eq!(c.server.file_requests("33.root"), 1);
    assert_eq!(c.server.file_requests("34.root"), 0, "bounded walk");

    c.recheck("v1")
        .await
        .assert_trusted(&v1.digest(), "targets");
    assert_eq!(stored_root_version(&c.env), 41);
    assert_eq!(c.server.file_requests("2.root"), 1, "progress was kept");
}

/// A chain link from another repository: a valid rotation for another GUN's root key is not
/// a root certificate for this GUN.
#[tokio::test]
async fn intermediate_with_a_certificate_for_another_gun_is_refused() {
    let (mut repo, _, c) = trusted_at_v1().await;
    let k1 = std::mem::replace(
        &mut repo.root_keys,
        vec![Key::root_for("127.0.0.1:5000/other/app")],
    );
    repo.old_root_keys = k1;
    repo.bump_all();
    let mut served = vec![repo.publish()];
    served.extend(fixtures::root_rotations(&mut repo, 1));
    let out = c.serve_and_check(&served, "v1").await;
    out.assert_refused(&["is not the gun"], Some("root version 2 of"));
    assert_eq!(stored_root_version(&c.env), 1);
}

/// TUF 1.0 §5.3.6: an intermediate root that has expired (root.json `expires` and its root
/// certificate both in the past) still links the chain; only the final root must be current.
#[tokio::test]
async fn expired_intermediate_still_links_but_an_expired_final_root_is_refused() {
    let (mut repo, v1, c) = trusted_at_v1().await;
    let now = time::OffsetDateTime::now_utc();
    let lapsed = Key::root_cert(
        &gun(),
        now - time::Duration::days(3650),
        now - time::Duration::days(1),
    );
    repo.old_root_keys = std::mem::replace(&mut repo.root_keys, vec![lapsed]);
    repo.role(Role::Root).expires = Expiry::in_(-time::Duration::hours(1));
    repo.bump_all();
    let mut served = vec![repo.publish()];
    repo.role(Role::Root).expires = Expiry::in_(time::Duration::days(3650));
    served.extend(fixtures::root_rotations(&mut repo, 1));
    c.serve_and_check(&served, "v1")
        .await
        .assert_trusted(&v1.digest(), "targets");
    assert_eq!(stored_root_version(&c.env), 3);

    // The same walk ending on an expired root: refused, naming it.
    repo.role(Role::Root).expires = Expiry::in_(-time::Duration::hours(1));
    let rotations = fixtures::root_rotations(&mut repo, 2);
    let out = c.serve_and_check(&rotations, "v1").await;
    out.assert_refused(&["expired"], Some("root version 5 of"));
    assert_eq!(
        stored_root_version(&c.env),
        4,
        "the intermediate step was kept"
    );
}
