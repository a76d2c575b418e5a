//! Helpers for tests of the blob cache against the fake registry: paths of entries, GETs
//! through the proxy, and waiting for the cache writers.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use portcullis::api::Proxy;
use portcullis::cache::Stats;
use portcullis::refs::Digest;

use super::{Behaviour, FakeRegistry};

pub fn stats(p: &Proxy) -> Stats {
    p.blob_cache().expect("blob cache on").stats()
}

/// Waits until no cache writer is running (they finish after the response ends).
pub async fn settled(p: &Proxy) -> Stats {
    let started = Instant::now();
    loop {
        let s = stats(p);
        if s.writing == 0 {
            return s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "cache writer still running: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A cache dir of our own, so the test can look at the files.
pub fn cache_dir() -> PathBuf {
    tempfile::tempdir().unwrap().keep()
}

pub fn cache_toml(dir: &Path, extra: &str) -> String {
    format!("[cache]\ndir = \"{}\"\n{extra}\n", dir.display())
}

pub fn entry(dir: &Path, d: &str) -> PathBuf {
    let (alg, hex) = d.split_once(':').unwrap();
    dir.join("blobs").join(alg).join(hex)
}

pub fn tmp_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("blobs/tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

pub fn blob_path(d: &str) -> String {
    format!("/v2/demo/app/blobs/{d}")
}

/// GET a blob through the proxy: status and the whole body (Err when the stream failed).
pub async fn get(c: &reqwest::Client, url: &str, d: &str) -> (u16, Result<Vec<u8>, String>) {
    let resp = c
        .get(format!("{url}{}", blob_path(d)))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (
        status,
        resp.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| e.to_string()),
    )
}

/// GET a blob with a `Range` header.
pub async fn ranged(c: &reqwest::Client, url: &str, d: &str, range: &str) -> reqwest::Response {
    let req = c.get(format!("{url}{}", blob_path(d)));
    req.header("range", range).send().await.unwrap()
}

/// HEAD a blob.
pub async fn head(c: &reqwest::Client, url: &str, d: &str) -> reqwest::Response {
    c.head(format!("{url}{}", blob_path(d)))
        .send()
        .await
        .unwrap()
}

pub fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

/// A blob of `n` bytes (`data(n, seed)`) that `fake` drips in 64 KiB pieces every `every`, so
/// that a download lasts and concurrent GETs overlap it. It sends `served(&blob)`: the blob,
/// or bytes that lie about it. Returns the blob and its digest.
pub fn dripped(
    fake: &FakeRegistry,
    n: usize,
    seed: u8,
    every: Duration,
    served: impl FnOnce(&[u8]) -> Vec<u8>,
) -> (Vec<u8>, String) {
    let blob = data(n, seed);
    let d = Digest::sha256_of(&blob).to_string();
    fake.set(
        &blob_path(&d),
        Behaviour::Drip {
            body: Bytes::from(served(&blob)),
            len: n,
            chunk: 64 * 1024,
            every,
        },
    );
    (blob, d)
}
