//! Root rotation (TUF 5.3.4; notary `ValidateRoot`): a new root must be signed by a
//! threshold of the trusted root's keys and of its own. A valid rotation is followed; a
//! "rotation" signed only by the new key is a forged root and refused.

mod support;

use support::evil_notary::{Key, Role, Target, fixtures, gun, honest_control};

const FORGED: &[&str] = &["signature", "threshold", "root"];

#[tokio::test]
async fn rotation_signed_by_old_and_new_keys_is_trusted() {
    let (mut repo, v1) = fixtures::honest_repo();
    let c = honest_control(&fixtures::control(repo.publish(), &v1)).await;

    let old = std::mem::replace(&mut repo.root_keys, vec![Key::root_for(&gun())]);
    repo.old_root_keys = old;
    let v1b = Target::manifest("v1", 2);
    repo.sign_tag("v1", v1b.clone()).bump_all();
    c.serve_and_check(&[repo.publish()], "v1")
        .await
        .assert_trusted(&v1b.digest(), "targets");

    // The new root is now the trusted one: a root v3 signed by the new key alone follows.
    repo.old_root_keys.clear();
    let v1c = Target::manifest("v1", 3);
    repo.sign_tag("v1", v1c.clone()).bump_all();
    c.serve_and_check(&[repo.publish()], "v1")
        .await
        .assert_trusted(&v1c.digest(), "targets");
}

#[tokio::test]
async fn rotation_signed_only_by_the_new_key_is_refused() {
    let (mut repo, v1) = fixtures::honest_repo();
    let c = honest_control(&fixtures::control(repo.publish(), &v1)).await;

    // An attacker's complete, self-consistent repository: new root key (CN = GUN), new
    // targets, snapshot and timestamp keys, all signatures valid under the new root.
    repo.root_keys = vec![Key::root_for(&gun())];
    repo.targets_key = Key::ecdsa();
    repo.snapshot_key = Key::ecdsa();
    repo.timestamp_key = Key::ed25519();
    let evil = Target::manifest("v1", 666);
    repo.sign_tag("v1", evil.clone()).bump_all();
    let out = c.serve_and_check(&[repo.publish()], "v1").await;
    out.assert_refused(FORGED, Some(Role::Root.name()));
    out.assert_no_digest(&evil.digest());

    // And it stays refused: the forged root was not persisted by the failed check.
    let again = c.recheck("v1").await;
    again.assert_refused(FORGED, Some("root"));
    again.assert_no_digest(&evil.digest());
}

/// A new root signed by the old key only (not by its own new key) is refused too.
#[tokio::test]
async fn rotation_not_signed_by_the_new_key_is_refused() {
    let (mut repo, v1) = fixtures::honest_repo();
    let c = honest_control(&fixtures::control(repo.publish(), &v1)).await;

    let old = std::mem::replace(&mut repo.root_keys, vec![Key::root_for(&gun())]);
    repo.old_root_keys = old;
    repo.root_signers = Some(vec![]);
    let v1b = Target::manifest("v1", 2);
    repo.sign_tag("v1", v1b.clone()).bump_all();
    let out = c.serve_and_check(&[repo.publish()], "v1").await;
    out.assert_refused(FORGED, Some("root"));
    out.assert_no_digest(&v1b.digest());
}
