//! The notary server is down. With verified, unexpired metadata in the cache the check
//! answers from it and says so; with no cache it refuses (fail closed).

mod support;

use support::evil_notary::{Behaviour, Env, EvilNotary, fixtures, honest_control};

const UNAVAILABLE: &[&str] = &[
    "unavailable",
    "unreachable",
    "connect",
    "could not reach",
    "cannot reach",
    "down",
    "refused",
];

#[tokio::test]
async fn down_with_a_cache_is_served_from_the_cache() {
    let f = fixtures::honest();
    let mut c = honest_control(&f).await;
    c.server.stop();
    c.env.let_refresh_pass().await;
    let out = c.env.check(f.tag).await;
    out.assert_trusted(&f.target.digest(), "targets");
    assert!(
        out.text().contains("cache"),
        "does not say it used the cache: {out:#?}"
    );
}

#[tokio::test]
async fn server_errors_with_a_cache_are_served_from_the_cache() {
    let f = fixtures::honest();
    let c = honest_control(&f).await;
    c.server.set_all(Some(Behaviour::Status(503)));
    let out = c.recheck(f.tag).await;
    out.assert_trusted(&f.target.digest(), "targets");
    assert!(
        out.text().contains("cache"),
        "does not say it used the cache: {out:#?}"
    );
}

#[tokio::test]
async fn down_without_a_cache_is_refused() {
    let f = fixtures::honest();
    let mut server = EvilNotary::serving(&f.publication).await;
    let env = Env::new(&server.url());
    server.stop();
    let out = env.check(f.tag).await;
    out.assert_refused(UNAVAILABLE, None);
    out.assert_no_digest(&f.target.digest());
}

#[tokio::test]
async fn server_errors_without_a_cache_are_refused() {
    let f = fixtures::honest();
    let server = EvilNotary::serving(&f.publication).await;
    server.set_all(Some(Behaviour::Status(503)));
    let out = Env::new(&server.url()).check(f.tag).await;
    out.assert_refused(&[UNAVAILABLE, &["503", "service"]].concat(), None);
    out.assert_no_digest(&f.target.digest());
}

/// A cache does not outlive the metadata in it: once the cached timestamp has expired, a
/// down server means refusal, not stale trust.
#[tokio::test]
async fn down_with_an_expired_cache_is_refused() {
    let (mut repo, v1) = fixtures::honest_repo();
    repo.role(support::evil_notary::Role::Timestamp).expires =
        support::evil_notary::Expiry::in_(time::Duration::seconds(3));
    let mut c = honest_control(&fixtures::control(repo.publish(), &v1)).await;
    c.server.stop();
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let out = c.env.check("v1").await;
    assert_eq!(out.code, Some(1), "{out:#?}");
    out.assert_no_digest(&v1.digest());
}
