//! Slow-retrieval attack (TUF 5.2): a server that trickles a byte a second, or accepts the
//! request and never answers, must not hold a check (or a pull) forever. The check must end
//! within a bounded time.

mod support;

use std::time::Duration;

use bytes::Bytes;
use support::evil_notary::{Behaviour, Env, EvilNotary, Role, fixtures, honest_control};

const SLOW: &[&str] = &[
    "timed out",
    "timeout",
    "time out",
    "deadline",
    "slow",
    "too long",
    "elapsed",
];
const BOUND: Duration = Duration::from_secs(60);

fn trickle(raw: &[u8]) -> Behaviour {
    Behaviour::Trickle {
        bytes: Bytes::from(raw.to_vec()),
        chunk: 1,
        every: Duration::from_secs(1),
    }
}

/// Control: the repository each server below serves, before it stalls, is trusted.
#[tokio::test]
async fn honest_repository_is_trusted() {
    honest_control(&fixtures::honest()).await;
}

async fn refused_in_time(role: Role, behaviour: impl Fn(&[u8]) -> Behaviour) {
    let f = fixtures::honest();
    let server = EvilNotary::serving(&f.publication).await;
    server.set(role.name(), behaviour(f.publication.get(role)));
    let out = Env::new(&server.url())
        .check_within(f.tag, BOUND + Duration::from_secs(30))
        .await;
    assert!(out.elapsed < BOUND, "took {:?}: {out:#?}", out.elapsed);
    out.assert_refused(SLOW, None);
    out.assert_no_digest(&f.target.digest());
}

/// ~500 s to send a timestamp at one byte a second.
#[tokio::test]
async fn trickled_timestamp_is_refused_in_bounded_time() {
    refused_in_time(Role::Timestamp, trickle).await;
}

/// ~2.5 KiB of root at one byte a second, on the very first contact.
#[tokio::test]
async fn trickled_root_is_refused_in_bounded_time() {
    refused_in_time(Role::Root, trickle).await;
}

/// The request is accepted and never answered.
#[tokio::test]
async fn unanswered_request_is_refused_in_bounded_time() {
    refused_in_time(Role::Timestamp, |_| Behaviour::Hang).await;
}

/// With a verified cache, a stalling server still ends the check in bounded time; answering
/// from the cache is fine then, but it must say so.
#[tokio::test]
async fn trickle_after_a_good_check_ends_in_bounded_time() {
    let f = fixtures::honest();
    let c = honest_control(&f).await;
    c.server
        .set("timestamp", trickle(f.publication.get(Role::Timestamp)));
    c.env.let_refresh_pass().await;
    let out = c
        .env
        .check_within(f.tag, BOUND + Duration::from_secs(30))
        .await;
    assert!(out.elapsed < BOUND, "took {:?}: {out:#?}", out.elapsed);
    match out.code {
        Some(0) => assert!(out.text().contains("cache"), "{out:#?}"),
        _ => out.assert_refused(SLOW, None),
    }
}

/// `[registries.notary.fetch]` sets the bound: a hanging server is given up on after the
/// configured deadline, and the refusal says which.
#[tokio::test]
async fn the_configured_fetch_deadline_is_the_bound() {
    let f = fixtures::honest();
    let server = EvilNotary::serving(&f.publication).await;
    server.set(Role::Timestamp.name(), Behaviour::Hang);
    let env = Env::new(&server.url());
    let text = std::fs::read_to_string(&env.config).expect("config");
    let text = text.replace(
        "[registries.notary.trust_pinning]",
        "[registries.notary.fetch]\ndeadline_secs = 2\nmin_rate_after_secs = 1\n\n[registries.notary.trust_pinning]",
    );
    std::fs::write(&env.config, text).expect("config");
    let out = env.check_within(f.tag, BOUND).await;
    out.assert_refused(&["within 2s"], None);
    out.assert_no_digest(&f.target.digest());
}
