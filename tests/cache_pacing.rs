//! While many cached blobs are being sent, each body hands hyper one chunk at a time
//! (`body::one_chunk_in_flight`): the next is read only once hyper dropped the last, which it
//! does when the socket took it. These
//! pin that nothing stalls or reorders on the way: followers of a download and hits, over
//! HTTP/2 (hyper cuts each chunk into frames and holds them for flow-control windows) and over
//! HTTP/1.1 to clients that read slowly (the socket fills, hyper holds a chunk half written).

mod fake;

use std::time::Duration;

use fake::blobs::{blob_path, cache_dir, cache_toml, dripped, entry, settled};
use fake::{FakeRegistry, config, install_crypto, start_proxy_arc};
use futures_util::future::join_all;

/// 4 MiB dripped in 64 KiB pieces every 5 ms: concurrent GETs overlap the download.
const N: usize = 4 * 1024 * 1024;

fn clients() -> (reqwest::Client, reqwest::Client) {
    install_crypto();
    let build = |h2: bool| {
        let b = reqwest::Client::builder().timeout(Duration::from_secs(60));
        if h2 {
            b.http2_prior_knowledge()
        } else {
            b.http1_only()
        }
        .build()
        .unwrap()
    };
    (build(false), build(true))
}

/// The body of a GET, read `pause` apart per chunk; the HTTP version the server answered.
async fn read(
    c: &reqwest::Client,
    url: &str,
    d: &str,
    pause: Duration,
) -> (reqwest::Version, Vec<u8>) {
    let mut resp = c
        .get(format!("{url}{}", blob_path(d)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let version = resp.version();
    let mut got = Vec::new();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        got.extend_from_slice(&chunk);
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    (version, got)
}

/// More concurrent GETs than `body::one_chunk_in_flight` lets go unpaced (32), so that each
/// holds one chunk at a time.
const CLIENTS: usize = 40;

/// `CLIENTS` concurrent GETs: even ones on HTTP/1.1, odd ones on HTTP/2; the first four read
/// slowly.
async fn many(
    h1: &reqwest::Client,
    h2: &reqwest::Client,
    url: &str,
    d: &str,
) -> Vec<(reqwest::Version, Vec<u8>)> {
    join_all((0..CLIENTS).map(|i| {
        let c = if i % 2 == 0 { h1 } else { h2 };
        let pause = Duration::from_millis(if i < 4 { 2 } else { 0 });
        read(c, url, d, pause)
    }))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn followers_and_hits_arrive_whole_over_http2_and_to_slow_http1_readers() {
    let fake = FakeRegistry::default();
    let (blob, d) = dripped(&fake, N, 3, Duration::from_millis(5), <[u8]>::to_vec);
    let addr = fake.start().await;
    let dir = cache_dir();
    let (url, proxy) =
        start_proxy_arc(&config(addr, "skip", false, &cache_toml(&dir, "")), None).await;
    let (h1, h2) = clients();

    // Cold: one leader and followers. Then warm: hits.
    let cold = many(&h1, &h2, &url, &d).await;
    settled(&proxy).await;
    assert!(entry(&dir, &d).exists(), "the download became an entry");
    assert_eq!(
        fake.hits(&blob_path(&d)),
        1,
        "one upstream GET for all of them"
    );
    let warm = many(&h1, &h2, &url, &d).await;
    assert_eq!(
        fake.hits(&blob_path(&d)),
        1,
        "hits make no upstream request"
    );

    for (i, (version, got)) in cold.iter().chain(warm.iter()).enumerate() {
        let want = if i % 2 == 0 {
            reqwest::Version::HTTP_11
        } else {
            reqwest::Version::HTTP_2
        };
        assert_eq!(*version, want, "response {i}");
        assert_eq!(got.len(), N, "response {i}: every byte");
        assert!(*got == blob, "response {i}: the blob's bytes, in order");
    }
}
