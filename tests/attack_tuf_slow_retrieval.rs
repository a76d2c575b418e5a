//! Slow-retrieval attack on a plain TUF repository (TUF 5.2: a download must not be held open
//! by a server that sends too slowly or not at all; `[registries.tuf.fetch]`): a mirror that
//! trickles the timestamp a byte a second is given up once the average rate stays under
//! `min_bytes_per_sec` past `min_rate_after_secs`; one that never answers a snapshot request
//! is given up at `deadline_secs`. Pulls are answered within those bounds, what was verified
//! before stands in where it can (a stall counts as unreachable), and the proxy recovers
//! when the mirror is honest again.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use support::evil_notary::Behaviour;
use support::real::tuf::{TufOpts, manifest_get};
use support::real::tuf_attack::{AttackBed, REPO};
use support::real::tuf_mirror::TufMirror;

fn bed_behind_mirror(extra: &str) -> (AttackBed, TufMirror) {
    let mut mirror = None;
    let bed = AttackBed::start_via(serde_json::json!({}), |repo| {
        let m = TufMirror::start(repo.metadata_dir());
        let o = TufOpts {
            metadata_url: Some(m.url()),
            extra: extra.to_owned(),
            ..TufOpts::default()
        };
        mirror = Some(m);
        o
    });
    (bed, mirror.unwrap())
}

/// Every pull answered within `bound` for `during`; the slowest answer.
fn answers_within(bed: &AttackBed, tag: &str, bound: Duration, during: Duration) -> Duration {
    let end = Instant::now() + during;
    let mut slowest = Duration::ZERO;
    while Instant::now() < end {
        let t = Instant::now();
        let (status, body) = manifest_get(&bed.proxy, REPO, tag);
        let took = t.elapsed();
        assert!(
            took < bound,
            "{REPO}:{tag} took {took:?} ({status}: {body})"
        );
        slowest = slowest.max(took);
        std::thread::sleep(Duration::from_millis(250));
    }
    slowest
}

/// The default bounds: after 5 s, at least 1024 bytes/s on average.
#[test]
fn trickled_timestamp_is_given_up_at_the_minimum_rate() {
    let (mut bed, mirror) = bed_behind_mirror("");
    let ts = std::fs::read(bed.repo.metadata_dir().join("timestamp.json")).unwrap();
    mirror.set(
        "timestamp",
        Some(Behaviour::Trickle {
            bytes: Bytes::from(ts),
            chunk: 1,
            every: Duration::from_secs(1),
        }),
    );
    // Generation 2 signs `new`; its timestamp would take minutes to arrive.
    let spec = bed.honest(&["new"]);
    bed.repo.publish(&spec);
    let slowest = answers_within(
        &bed,
        "new",
        Duration::from_secs(15),
        Duration::from_secs(15),
    );
    eprintln!("trickled timestamp: slowest answer {slowest:?}");
    // Given up as unreachable: what was verified stands in; `new` is not learned.
    bed.wait_served("v1");
    bed.wait_refused("new", "is not a target");
    let log = bed.proxy.log();
    assert!(log.contains("unreachable"), "{log}");
    mirror.set("timestamp", None);
    bed.wait_served("new");
}

/// A snapshot request accepted and never answered, with `deadline_secs = 3`.
#[test]
fn unanswered_snapshot_is_given_up_at_the_deadline() {
    let (mut bed, mirror) =
        bed_behind_mirror("[registries.tuf.fetch]\ndeadline_secs = 3\nmin_rate_after_secs = 1\n");
    mirror.set("snapshot", Some(Behaviour::Hang));
    let spec = bed.honest(&["new"]);
    bed.repo.publish(&spec);
    let slowest = answers_within(
        &bed,
        "new",
        Duration::from_secs(10),
        Duration::from_secs(12),
    );
    eprintln!("hanging snapshot: slowest answer {slowest:?}");
    // The new timestamp names a snapshot that never came: refused until a refresh completes,
    // saying which file did not come in time.
    let body = bed.wait_refused("v1", "incomplete refresh");
    assert!(
        body.contains("snapshot.json") && body.contains("within 3s"),
        "{body}"
    );
    mirror.set("snapshot", None);
    bed.wait_served("new");
    bed.wait_served("v1");
}
