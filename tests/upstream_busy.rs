//! `upstream.max_concurrent` bounds the requests in flight to the registries; a request that
//! finds no slot waits at most `upstream.first_byte_timeout_secs`, then gets 503
//! `TOOMANYREQUESTS` with `Retry-After` and a message naming the setting, counted as an upstream
//! fault of kind `busy`. When the slot frees, requests are served again. The real binary, in
//! front of the harness's fake registry (a real one cannot be made to hold a stream open).

mod fake;
mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use fake::{Behaviour, FakeRegistry};
use support::real::Portcullis;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_max_concurrent_waits_the_first_byte_deadline_then_gets_503() {
    fake::install_crypto();
    let fake = FakeRegistry::default();
    let good = fake.blob("demo/app", b"good bytes");
    let held = "sha256:".to_string() + &"ab".repeat(32);
    fake.set(
        &format!("/v2/demo/app/blobs/{held}"),
        Behaviour::Stall {
            head: Bytes::from_static(b"first bytes"),
            len: 1 << 20,
        },
    );
    let addr = fake.start().await;
    let config = format!(
        r#"[upstream]
max_concurrent = 1
first_byte_timeout_secs = 2
idle_timeout_secs = 8
[[registries]]
name = "fake.test"
upstream = "http://{addr}"
default = true
mode = "skip"
"#
    );
    let p = tokio::task::block_in_place(|| Portcullis::start(&config));
    let client = reqwest::Client::new();

    // One request holds the only slot: its body stalls after the first bytes (which the proxy
    // holds back: the last bytes seen go out only after the next, or the digest check).
    let holder = client
        .get(format!("{}/v2/demo/app/blobs/{held}", p.url()))
        .send()
        .await
        .expect("headers of the held blob");
    assert_eq!(holder.status(), 200);

    let started = Instant::now();
    let resp = client
        .get(format!("{}/v2/demo/app/blobs/{good}", p.url()))
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(resp.status(), 503);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body = resp.text().await.unwrap();
    assert!(body.contains("TOOMANYREQUESTS"), "{body}");
    assert!(body.contains("upstream.max_concurrent"), "{body}");
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(20),
        "waited for a slot up to the first-byte deadline (2 s): {waited:?}"
    );
    let metrics = support::real::proc::http_get(&format!("{}/metrics", p.admin_url()));
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("portcullis_upstream_faults_total")
                && l.contains("kind=\"busy\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );

    // The slot frees when the stalled stream ends: at the idle deadline (8 s). The proxy does
    // not notice a client that left while nothing is being written, so that deadline, not the
    // client's going, bounds how long a stalled registry holds a slot.
    drop(holder);
    let mut served = false;
    for _ in 0..100 {
        let r = client
            .get(format!("{}/v2/demo/app/blobs/{good}", p.url()))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            assert_eq!(r.bytes().await.unwrap().as_ref(), b"good bytes");
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(served, "the freed slot serves the next request");
}
