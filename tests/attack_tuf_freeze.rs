//! Freeze attack on a plain TUF repository (TUF 5.4.4): the repository keeps serving a
//! timestamp past its expiry, so that clients never learn of newer metadata. Once it expires
//! the proxy refuses, naming the role; a timestamp that arrives already expired is refused too.

mod support;

use serde_json::json;
use support::real::tuf_attack::AttackBed;

/// Generation 1's timestamp expires 12 s after it is signed and is never replaced.
#[test]
fn timestamp_served_past_its_expiry_is_refused() {
    let bed = AttackBed::start_with(json!({"expires": {"timestamp": "+12s"}}));
    // v1 pulled while the timestamp was valid; the same metadata is served after it expired.
    let body = bed.wait_refused("v1", "expired");
    assert!(body.contains("timestamp"), "{body}");
    bed.wait_refused("v2", "expired");
}

/// A new generation whose timestamp expired an hour ago, signing `evil`.
#[test]
fn timestamp_already_expired_is_refused() {
    let mut bed = AttackBed::start();
    let spec = bed.attacked(&["evil"], json!({"expires": {"timestamp": "-1h"}}));
    bed.repo.publish(&spec);
    bed.wait_refused("evil", "timestamp metadata expired at");
}
