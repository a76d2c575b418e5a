//! Mix-and-match attack (TUF 5.5.3, 5.6.4): targets.json from an earlier publication (validly
//! signed by the targets key) served under a later snapshot that commits to other bytes.

mod support;

use support::evil_notary::{Env, EvilNotary, fixtures, honest_control};

const MISMATCH: &[&str] = &["hash", "length", "mismatch", "snapshot", "digest"];

#[tokio::test]
async fn consistent_publication_is_trusted() {
    let (_, later) = fixtures::mix_and_match();
    honest_control(&later).await;
}

#[tokio::test]
async fn targets_from_another_publication_are_refused() {
    let (mixed, _) = fixtures::mix_and_match();
    let server = EvilNotary::serving(&mixed.publication).await;
    let out = Env::new(&server.url()).check(mixed.tag).await;
    out.assert_refused(MISMATCH, Some("targets"));
    out.assert_no_digest(&mixed.target.digest());
}

/// The same, after the later publication was seen once: the switch must still be caught.
#[tokio::test]
async fn targets_swapped_after_a_good_check_are_refused() {
    let (mixed, later) = fixtures::mix_and_match();
    let c = honest_control(&later).await;
    let out = c.serve_and_check(&[mixed.publication], "v1").await;
    // Either refused, or still answering from the verified cache: never the old target.
    out.assert_no_digest(&mixed.target.digest());
    if out.code != Some(0) {
        out.assert_refused(MISMATCH, Some("targets"));
    }
}

/// targets.json served one byte longer than the snapshot says (trailing newline).
#[tokio::test]
async fn targets_length_other_than_snapshot_says_is_refused() {
    let f = fixtures::snapshot_length_mismatch();
    let server = EvilNotary::serving(&f.publication).await;
    let out = Env::new(&server.url()).check(f.tag).await;
    out.assert_refused(MISMATCH, Some("targets"));
    out.assert_no_digest(&f.target.digest());
}

/// snapshot.json other than the timestamp says.
#[tokio::test]
async fn snapshot_other_than_timestamp_says_is_refused() {
    let (mut repo, v1) = fixtures::honest_repo();
    let a = repo.publish();
    repo.bump_all();
    let b = repo.publish();
    let mixed = a.with(
        support::evil_notary::Role::Snapshot,
        b.get(support::evil_notary::Role::Snapshot),
    );
    let server = EvilNotary::serving(&mixed).await;
    let out = Env::new(&server.url()).check("v1").await;
    out.assert_refused(MISMATCH, Some("snapshot"));
    out.assert_no_digest(&v1.digest());
}
