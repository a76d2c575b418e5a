//! Rollback attack (TUF 5.3.5, 5.4.3, 5.5.5, 5.6.5): after a check has seen version N of a
//! role, the server serves version N-1, correctly signed. The second check (a new process
//! with the same cache dir, so this is also "across a restart") must refuse it.

mod support;

use support::evil_notary::{
    Outcome, Pinning, Publication, Role, Target, fixtures, honest_control, honest_control_with,
};

const ROLLBACK: &[&str] = &[
    "rollback",
    "roll back",
    "rolled back",
    "downgrade",
    "older",
    "lower",
    "version",
];

/// Serves `first` (the honest control: trusted, `v1` = `first_target`), serves `second`,
/// checks again.
async fn check_twice(first: &Publication, first_target: &Target, second: &Publication) -> Outcome {
    let c = honest_control(&fixtures::control(first.clone(), first_target)).await;
    let before: usize = c.server.counts().values().sum();
    let out = c.serve_and_check(std::slice::from_ref(second), "v1").await;
    let after: usize = c.server.counts().values().sum();
    assert!(
        after > before,
        "the second check did not ask the server: {out:#?}"
    );
    out
}

#[tokio::test]
async fn newer_publication_is_trusted() {
    let (mut repo, v1) = fixtures::honest_repo();
    let first = repo.publish();
    let v1b = Target::manifest("v1", 2);
    repo.sign_tag("v1", v1b.clone()).bump_all();
    let second = repo.publish();
    let out = check_twice(&first, &v1, &second).await;
    out.assert_trusted(&v1b.digest(), "targets");
}

/// timestamp v2, then timestamp v1 over the very same snapshot.
#[tokio::test]
async fn timestamp_rollback_is_refused() {
    let (mut repo, v1) = fixtures::honest_repo();
    let old = repo.publish();
    repo.role(Role::Timestamp).version = 2;
    let new = repo.publish_over(&old, &[Role::Root, Role::Targets, Role::Snapshot]);
    let out = check_twice(&new, &v1, &old).await;
    out.assert_refused(ROLLBACK, Some("timestamp"));
}

/// snapshot v2, then a fresh, valid timestamp v3 that points at snapshot v1.
#[tokio::test]
async fn snapshot_rollback_is_refused() {
    let (mut repo, v1) = fixtures::honest_repo();
    let old = repo.publish();
    repo.role(Role::Snapshot).version = 2;
    repo.role(Role::Timestamp).version = 2;
    let new = repo.publish_over(&old, &[Role::Root, Role::Targets]);
    repo.role(Role::Timestamp).version = 3;
    let replay = repo.publish_over(&old, &[Role::Root, Role::Targets, Role::Snapshot]);
    let out = check_twice(&new, &v1, &replay).await;
    out.assert_refused(ROLLBACK, Some("snapshot"));
}

/// targets v2 (v1 -> new content), then a fresh snapshot v3 and timestamp v3 that list the
/// old targets v1 (v1 -> old content): the old tag must not come back.
#[tokio::test]
async fn targets_rollback_is_refused() {
    let (mut repo, old_v1) = fixtures::honest_repo();
    let old = repo.publish();
    let new_v1 = Target::manifest("v1", 2);
    repo.sign_tag("v1", new_v1.clone()).bump_all();
    let new = repo.publish();
    repo.role(Role::Snapshot).version = 3;
    repo.role(Role::Timestamp).version = 3;
    let replay = repo.publish_mixed(&[(Role::Root, &new), (Role::Targets, &old)]);
    let out = check_twice(&new, &new_v1, &replay).await;
    out.assert_refused(ROLLBACK, Some("targets"));
    out.assert_no_digest(&old_v1.digest());
}

/// root v2, then root v1 (same keys, valid signatures) under a fresh snapshot and timestamp.
#[tokio::test]
async fn root_rollback_is_refused() {
    let (mut repo, v1) = fixtures::honest_repo();
    let old = repo.publish();
    repo.bump_all();
    let new = repo.publish();
    repo.bump_all();
    let replay = repo.publish_over(&old, &[Role::Root]);
    let out = check_twice(&new, &v1, &replay).await;
    out.assert_refused(ROLLBACK, Some("root"));
}

/// A delegation rolled back under a newer snapshot.
#[tokio::test]
async fn delegation_rollback_is_refused() {
    let mut repo = support::evil_notary::Repo::new(&support::evil_notary::gun());
    let old_v1 = Target::manifest("v1", 1);
    repo.with_releases(&[""]).sign_release("v1", old_v1.clone());
    let old = repo.publish();
    let new_v1 = Target::manifest("v1", 2);
    repo.sign_release("v1", new_v1.clone()).bump_all();
    let new = repo.publish();
    repo.role(Role::Snapshot).version = 3;
    repo.role(Role::Timestamp).version = 3;
    let replay = repo.publish_mixed(&[
        (Role::Root, &new),
        (Role::Targets, &new),
        (Role::Releases, &old),
    ]);
    let control = fixtures::control(new, &new_v1);
    let c = honest_control_with(&control, Pinning::Tofu, "targets/releases").await;
    let out = c.serve_and_check(&[replay], "v1").await;
    out.assert_refused(ROLLBACK, Some("targets/releases"));
    out.assert_no_digest(&old_v1.digest());
}
