//! Freeze attack (TUF 5.3.3, 5.4.4, 5.5.6, 5.6.6): metadata past its `expires` is refused,
//! whichever role it is, even though every signature is valid.

mod support;

use support::evil_notary::{Env, EvilNotary, Role, fixtures, honest_control};

const EXPIRED: &[&str] = &["expired"];

/// Control: the honest repository every attack below starts from is trusted.
#[tokio::test]
async fn honest_repository_is_trusted() {
    honest_control(&fixtures::honest()).await;
}

async fn refused_when_expired(role: Role) {
    let f = fixtures::expired(role);
    let server = EvilNotary::serving(&f.publication).await;
    let out = Env::new(&server.url()).check(f.tag).await;
    out.assert_refused(EXPIRED, Some(role.name()));
    out.assert_no_digest(&f.target.digest());
}

#[tokio::test]
async fn expired_root_is_refused() {
    refused_when_expired(Role::Root).await;
}

#[tokio::test]
async fn expired_targets_is_refused() {
    refused_when_expired(Role::Targets).await;
}

#[tokio::test]
async fn expired_snapshot_is_refused() {
    refused_when_expired(Role::Snapshot).await;
}

#[tokio::test]
async fn expired_timestamp_is_refused() {
    refused_when_expired(Role::Timestamp).await;
}

/// A timestamp that expires between two checks: the cached copy must not keep the tag
/// trusted once the server serves a stale (but once valid) timestamp.
#[tokio::test]
async fn timestamp_that_expired_since_the_last_check_is_refused() {
    let (mut repo, v1) = fixtures::honest_repo();
    repo.role(Role::Timestamp).expires =
        support::evil_notary::Expiry::in_(time::Duration::seconds(3));
    let c = honest_control(&fixtures::control(repo.publish(), &v1)).await;
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let out = c.env.check("v1").await;
    out.assert_refused(EXPIRED, Some("timestamp"));
    out.assert_no_digest(&v1.digest());
}
