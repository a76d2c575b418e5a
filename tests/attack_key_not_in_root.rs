//! A role signed by a valid key that root.json does not list for that role (TUF 5.3.2 ...):
//! the signature is correct, but the key is nobody's, so the role has no valid signature.

mod support;

use support::evil_notary::{Env, EvilNotary, Role, fixtures, honest_control};

const UNTRUSTED_KEY: &[&str] = &["signature", "threshold", "key"];

/// Control: the honest repository every attack below starts from is trusted.
#[tokio::test]
async fn honest_repository_is_trusted() {
    honest_control(&fixtures::honest()).await;
}

async fn refused_when_signed_by_unknown_key(role: Role) {
    let f = fixtures::key_not_in_root(role);
    let server = EvilNotary::serving(&f.publication).await;
    let out = Env::new(&server.url()).check(f.tag).await;
    out.assert_refused(UNTRUSTED_KEY, Some(role.name()));
    out.assert_no_digest(&f.target.digest());
}

/// root.json signed by another certificate for the same GUN than the one it lists.
#[tokio::test]
async fn root_signed_by_unlisted_key_is_refused() {
    refused_when_signed_by_unknown_key(Role::Root).await;
}

#[tokio::test]
async fn targets_signed_by_unlisted_key_is_refused() {
    refused_when_signed_by_unknown_key(Role::Targets).await;
}

#[tokio::test]
async fn snapshot_signed_by_unlisted_key_is_refused() {
    refused_when_signed_by_unknown_key(Role::Snapshot).await;
}

#[tokio::test]
async fn timestamp_signed_by_unlisted_key_is_refused() {
    refused_when_signed_by_unknown_key(Role::Timestamp).await;
}

/// targets signed by the snapshot key: a key root lists, but for another role.
#[tokio::test]
async fn targets_signed_by_another_roles_key_is_refused() {
    let (mut repo, v1) = fixtures::honest_repo();
    repo.sign_with_key_of.insert(Role::Targets, Role::Snapshot);
    let server = EvilNotary::serving(&repo.publish()).await;
    let out = Env::new(&server.url()).check("v1").await;
    out.assert_refused(UNTRUSTED_KEY, Some("targets"));
    out.assert_no_digest(&v1.digest());
}
