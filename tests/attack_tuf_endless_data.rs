//! Endless-data attack on a plain TUF repository (TUF 5.2: every metadata download is bounded
//! by a length; `[registries.tuf.max_bytes]`): a mirror that answers timestamp, snapshot or
//! targets with a body that never ends. The refresh is refused at the role's size limit,
//! having read little more than it; the refusal names the role; and the proxy keeps
//! answering and recovers when the mirror serves honest metadata again.

mod support;

use std::time::{Duration, Instant};

use support::evil_notary::Behaviour;
use support::real::tuf::TufOpts;
use support::real::tuf_attack::AttackBed;
use support::real::tuf_mirror::TufMirror;

/// What an endless answer may hand out before the client gives up: the limit plus what fits
/// in socket buffers and one 64 KiB chunk.
const SLACK: u64 = 8 << 20;

#[test]
fn endless_timestamp_snapshot_and_targets_are_refused_at_their_size_limits() {
    let mut mirror = None;
    let mut bed = AttackBed::start_via(serde_json::json!({}), |repo| {
        let m = TufMirror::start(repo.metadata_dir());
        let o = TufOpts {
            metadata_url: Some(m.url()),
            ..TufOpts::default()
        };
        mirror = Some(m);
        o
    });
    let mirror = mirror.unwrap();
    // python-tuf's default limits, the proxy's too.
    for (role, limit) in [
        ("timestamp", 16_384u64),
        ("snapshot", 2_000_000),
        ("targets", 5_000_000),
    ] {
        mirror.set(role, Some(Behaviour::Endless { cap: 1 << 30 }));
        let sent = mirror.streamed_bytes();
        // A new version of every role: the proxy must download `role` again.
        let spec = bed.honest(&[]);
        bed.repo.publish(&spec);
        let t = Instant::now();
        let body = bed.wait_refused("v1", &format!("more than {limit} bytes"));
        let took = t.elapsed();
        assert!(
            body.contains(&format!("{role}.json")),
            "names the role: {body}"
        );
        let read = mirror.streamed_bytes() - sent;
        eprintln!("endless {role}: refused {took:?} after publishing, {read} bytes sent");
        assert!(
            read < limit + SLACK,
            "{role}: {read} bytes read of an endless body"
        );
        // Still answering: the pull is refused at once, not held.
        let t = Instant::now();
        bed.wait_refused("v1", role);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        mirror.set(role, None);
        bed.wait_served("v1");
    }
    // And it learns what the repository signs next.
    bed.advance();
}
