//! A tag pointing at other content: the server edits `v1`'s hash or length in targets.json
//! after it was signed (and serves a snapshot and timestamp that hash the edited bytes, so
//! only the targets signature can catch it).

mod support;

use support::evil_notary::{Env, EvilNotary, fixtures, honest_control};

/// Control: the honest repository every attack below starts from is trusted.
#[tokio::test]
async fn honest_repository_is_trusted() {
    honest_control(&fixtures::honest()).await;
}

#[tokio::test]
async fn target_hash_changed_after_signing_is_refused() {
    let f = fixtures::target_hash_changed();
    let server = EvilNotary::serving(&f.publication).await;
    let out = Env::new(&server.url()).check(f.tag).await;
    out.assert_refused(&["signature", "threshold"], Some("targets"));
    out.assert_no_digest(&f.target.digest());
}

#[tokio::test]
async fn target_length_changed_after_signing_is_refused() {
    let f = fixtures::target_length_changed();
    let server = EvilNotary::serving(&f.publication).await;
    let out = Env::new(&server.url()).check(f.tag).await;
    out.assert_refused(&["signature", "threshold"], Some("targets"));
}
