//! Threshold (TUF 5.3.2): a root that requires two signatures is refused with one, even when
//! that one is valid.

mod support;

use support::evil_notary::{Env, EvilNotary, fixtures, honest_control};

/// Control: the same root, signed by both keys, is trusted.
#[tokio::test]
async fn root_with_threshold_two_signed_by_both_keys_is_trusted() {
    honest_control(&fixtures::root_threshold_two(&[0, 1])).await;
}

#[tokio::test]
async fn root_with_threshold_two_signed_by_one_key_is_refused() {
    let f = fixtures::root_threshold_two(&[1]);
    let server = EvilNotary::serving(&f.publication).await;
    let out = Env::new(&server.url()).check(f.tag).await;
    out.assert_refused(&["threshold", "signature"], Some("root"));
    out.assert_no_digest(&f.target.digest());
}

/// Two signatures by the same key count once.
#[tokio::test]
async fn root_signed_twice_by_the_same_key_is_refused() {
    let (mut repo, v1) = fixtures::honest_repo();
    repo.root_keys.push(support::evil_notary::Key::root_for(
        &support::evil_notary::gun(),
    ));
    repo.root_threshold = 2;
    repo.root_signers = Some(vec![0, 0]);
    let server = EvilNotary::serving(&repo.publish()).await;
    let out = Env::new(&server.url()).check("v1").await;
    out.assert_refused(&["threshold", "signature"], Some("root"));
    out.assert_no_digest(&v1.digest());
}
