//! Arbitrary-content attack (TUF 5.3.2, 5.4.2, 5.5.2, 5.6.2): a role whose signature does not
//! verify over the canonical form of `signed` is refused.

mod support;

use support::evil_notary::{Env, EvilNotary, Repo, Role, Target, fixtures, gun, honest_control};

const BAD_SIGNATURE: &[&str] = &["signature", "threshold"];

/// Control: the honest repository every attack below starts from is trusted.
#[tokio::test]
async fn honest_repository_is_trusted() {
    honest_control(&fixtures::honest()).await;
}

async fn refused_with_bad_signature(role: Role) {
    let f = fixtures::bad_signature(role);
    let server = EvilNotary::serving(&f.publication).await;
    let out = Env::new(&server.url()).check(f.tag).await;
    out.assert_refused(BAD_SIGNATURE, Some(role.name()));
    out.assert_no_digest(&f.target.digest());
}

#[tokio::test]
async fn bad_root_signature_is_refused() {
    refused_with_bad_signature(Role::Root).await;
}

#[tokio::test]
async fn bad_targets_signature_is_refused() {
    refused_with_bad_signature(Role::Targets).await;
}

#[tokio::test]
async fn bad_snapshot_signature_is_refused() {
    refused_with_bad_signature(Role::Snapshot).await;
}

#[tokio::test]
async fn bad_timestamp_signature_is_refused() {
    refused_with_bad_signature(Role::Timestamp).await;
}

/// A valid delegation signature is still needed when the tag is found there.
#[tokio::test]
async fn bad_delegation_signature_is_refused() {
    let mut repo = Repo::new(&gun());
    let rel = Target::manifest("v1", 7);
    repo.with_releases(&[""]).sign_release("v1", rel.clone());
    repo.corrupt_signature.push(Role::Releases);
    let server = EvilNotary::serving(&repo.publish()).await;
    let out = Env::new(&server.url()).check("v1").await;
    out.assert_refused(
        &["signature", "threshold", "not signed"],
        Some("targets/releases"),
    );
    out.assert_no_digest(&rel.digest());
}
