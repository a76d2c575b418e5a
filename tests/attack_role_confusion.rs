//! Role confusion (TUF: `_type` is part of what is signed): root.json may give the snapshot
//! and timestamp roles one key. A server then serves the (validly signed) snapshot as
//! timestamp.json: the signature verifies under the timestamp role's key, and only the
//! `_type` check tells them apart.

mod support;

use support::evil_notary::{Env, EvilNotary, Role, fixtures, honest_control};

const WRONG_TYPE: &[&str] = &["_type", "type", "snapshot", "timestamp"];

/// Control: one key for snapshot and timestamp is a legitimate setup.
#[tokio::test]
async fn shared_snapshot_and_timestamp_key_is_trusted() {
    let (mut repo, v1) = fixtures::honest_repo();
    repo.shared_key.insert(Role::Timestamp, Role::Snapshot);
    honest_control(&fixtures::control(repo.publish(), &v1)).await;
}

#[tokio::test]
async fn snapshot_served_as_timestamp_is_refused() {
    let (mut repo, v1) = fixtures::honest_repo();
    repo.shared_key.insert(Role::Timestamp, Role::Snapshot);
    let p = repo.publish();
    let confused = p.clone().with(Role::Timestamp, p.get(Role::Snapshot));
    let server = EvilNotary::serving(&confused).await;
    let out = Env::new(&server.url()).check("v1").await;
    out.assert_refused(WRONG_TYPE, Some("timestamp"));
    out.assert_no_digest(&v1.digest());
}

/// The other way round: the timestamp served as snapshot.json (the timestamp's hash of the
/// snapshot cannot match, and its `_type` is wrong).
#[tokio::test]
async fn timestamp_served_as_snapshot_is_refused() {
    let (mut repo, v1) = fixtures::honest_repo();
    repo.shared_key.insert(Role::Timestamp, Role::Snapshot);
    let p = repo.publish();
    let confused = p.clone().with(Role::Snapshot, p.get(Role::Timestamp));
    let server = EvilNotary::serving(&confused).await;
    let out = Env::new(&server.url()).check("v1").await;
    assert_eq!(out.code, Some(1), "{out:#?}");
    out.assert_no_digest(&v1.digest());
}
