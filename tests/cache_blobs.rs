//! The verified blob cache against a registry that misbehaves on purpose (which a real one
//! cannot): only bytes that verified become an entry; a hit makes no upstream request and is
//! still gated by trust; a full or broken disk never fails a pull; eviction keeps the size.

mod fake;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use fake::blobs::{
    blob_path, cache_dir, cache_toml, data, entry, get, head, ranged, settled, stats, tmp_files,
};
use fake::{Behaviour, FakeRegistry, TableTrust, client, config, start_proxy_arc};
use portcullis::api::Proxy;
use portcullis::refs::Digest;

/// One blob of `size` bytes in a fake registry, and a proxy (skip mode) with its own cache dir,
/// which `prepare` may arrange before the proxy opens it.
struct OneBlob {
    fake: FakeRegistry,
    blob: Vec<u8>,
    d: String,
    dir: PathBuf,
    url: String,
    proxy: Arc<Proxy>,
}

async fn one_blob(size: usize, extra: &str, prepare: impl FnOnce(&Path)) -> OneBlob {
    let fake = FakeRegistry::default();
    let blob = data(size, size as u8);
    let d = fake.blob("demo/app", &blob);
    let addr = fake.start().await;
    let dir = cache_dir();
    prepare(&dir);
    let toml = config(
        addr,
        "skip",
        false,
        &format!("{extra}\n{}", cache_toml(&dir, "")),
    );
    let (url, proxy) = start_proxy_arc(&toml, None).await;
    OneBlob {
        fake,
        blob,
        d,
        dir,
        url,
        proxy,
    }
}

#[tokio::test]
async fn a_verified_blob_is_served_from_disk_with_range_and_head_and_no_upstream_request() {
    let OneBlob {
        fake,
        blob,
        d,
        dir,
        url,
        proxy,
    } = one_blob(300_000, "", |_| {}).await;
    let c = client();

    let (status, body) = get(&c, &url, &d).await;
    assert_eq!((status, body.unwrap()), (200, blob.clone()));
    let s = settled(&proxy).await;
    assert_eq!(
        (s.entries, s.size_bytes, s.misses),
        (1, 300_000, 1),
        "{s:?}"
    );
    assert_eq!(std::fs::read(entry(&dir, &d)).unwrap(), blob);
    assert!(tmp_files(&dir).is_empty());
    let mode = std::fs::metadata(dir.join("blobs"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "blobs dir must be private");

    // Whole blob again: from disk.
    let (status, body) = get(&c, &url, &d).await;
    assert_eq!((status, body.unwrap()), (200, blob.clone()));
    // A window: 206 with exactly those bytes.
    let resp = ranged(&c, &url, &d, "bytes=100000-100099").await;
    assert_eq!(resp.status(), 206);
    assert_eq!(
        resp.headers()["content-range"],
        "bytes 100000-100099/300000"
    );
    assert_eq!(resp.bytes().await.unwrap(), blob[100_000..100_100]);
    // Past the end: 416, still without asking upstream.
    assert_eq!(ranged(&c, &url, &d, "bytes=300000-").await.status(), 416);
    // HEAD: length and digest from the file.
    let resp = head(&c, &url, &d).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], "300000");
    assert_eq!(resp.headers()["docker-content-digest"], d.as_str());

    let path = blob_path(&d);
    assert_eq!(fake.hits(&path), 1, "only the first GET may reach upstream");
    assert_eq!(fake.method_hits("HEAD", &path), 0);
    let s = stats(&proxy);
    assert_eq!((s.hits, s.misses), (4, 1), "{s:?}");
    let metrics = portcullis::metrics::render();
    assert!(metrics.contains("portcullis_cache_hits_total"), "{metrics}");
    assert!(metrics.contains("portcullis_cache_bytes_served_total{source=\"cache\"}"));
}

#[tokio::test]
async fn bytes_that_do_not_match_their_digest_are_never_cached() {
    let fake = FakeRegistry::default();
    let good = data(200_000, 2);
    let d = Digest::sha256_of(&good).to_string();
    let mut evil = good.clone();
    evil[199_999] ^= 1;
    fake.set(
        &blob_path(&d),
        Behaviour::Serve {
            body: Bytes::from(evil),
            content_type: "application/octet-stream".into(),
        },
    );
    let addr = fake.start().await;
    let dir = cache_dir();
    let (url, proxy) =
        start_proxy_arc(&config(addr, "skip", false, &cache_toml(&dir, "")), None).await;
    let c = client();
    for attempt in 1..=2 {
        let (_, body) = get(&c, &url, &d).await;
        assert!(body.is_err(), "a mismatching blob must not end cleanly");
        let s = settled(&proxy).await;
        assert_eq!((s.entries, s.write_failures), (0, 0), "{s:?}");
        assert!(!entry(&dir, &d).exists());
        assert!(tmp_files(&dir).is_empty(), "temp file left behind");
        assert_eq!(fake.hits(&blob_path(&d)), attempt, "each GET goes upstream");
    }
}

#[tokio::test]
async fn truncated_and_stalled_downloads_leave_no_entry_and_no_temp_file() {
    let fake = FakeRegistry::default();
    let full = data(100_000, 3);
    let d = Digest::sha256_of(&full).to_string();
    fake.set(
        &blob_path(&d),
        Behaviour::Truncate {
            body: Bytes::from(full[..50_000].to_vec()),
            len: 100_000,
        },
    );
    let d2 = Digest::sha256_of(b"stalled").to_string();
    fake.set(
        &blob_path(&d2),
        Behaviour::Stall {
            head: Bytes::from_static(b"stal"),
            len: 7,
        },
    );
    let addr = fake.start().await;
    let dir = cache_dir();
    let toml = cache_toml(&dir, "[upstream]\nidle_timeout_secs = 1\n");
    let (url, proxy) = start_proxy_arc(&config(addr, "skip", false, &toml), None).await;
    let c = client();
    for digest in [&d, &d2] {
        let (status, body) = get(&c, &url, digest).await;
        assert_eq!(status, 200, "headers go out before the end is known");
        assert!(body.is_err(), "{digest}: a cut-off body must fail");
        let s = settled(&proxy).await;
        assert_eq!(s.entries, 0, "{s:?}");
        assert!(!entry(&dir, digest).exists());
        assert!(tmp_files(&dir).is_empty(), "temp file left behind");
    }
}

#[tokio::test]
async fn a_small_max_size_evicts_the_least_recently_used_blob() {
    let fake = FakeRegistry::default();
    let (a, b) = (data(100_000, 4), data(100_000, 5));
    let (da, db) = (fake.blob("demo/app", &a), fake.blob("demo/app", &b));
    let addr = fake.start().await;
    let dir = cache_dir();
    let toml = cache_toml(&dir, "max_size = 150000");
    let (url, proxy) = start_proxy_arc(&config(addr, "skip", false, &toml), None).await;
    let c = client();
    assert_eq!(get(&c, &url, &da).await.1.unwrap(), a);
    settled(&proxy).await;
    assert_eq!(get(&c, &url, &db).await.1.unwrap(), b);
    let s = settled(&proxy).await;
    assert_eq!(
        (s.entries, s.size_bytes, s.evictions),
        (1, 100_000, 1),
        "{s:?}"
    );
    assert!(!entry(&dir, &da).exists(), "the older blob is evicted");
    assert!(entry(&dir, &db).exists());
    // The kept one comes from disk; the evicted one from upstream again (read in this order:
    // caching `a` again evicts `b`).
    assert_eq!(get(&c, &url, &db).await.1.unwrap(), b);
    assert_eq!(get(&c, &url, &da).await.1.unwrap(), a);
    assert_eq!(fake.hits(&blob_path(&da)), 2);
    assert_eq!(fake.hits(&blob_path(&db)), 1);
}

#[tokio::test]
async fn a_cache_that_cannot_be_written_still_serves_the_pull_and_counts_the_failure() {
    // A regular file where the temp directory should be: every write fails (as root, too).
    let one = one_blob(150_000, "", |dir| {
        std::fs::create_dir_all(dir.join("blobs")).unwrap();
        std::fs::write(dir.join("blobs/tmp"), b"not a directory").unwrap();
    })
    .await;
    let (fake, blob, d, url, proxy) = (one.fake, one.blob, one.d, one.url, one.proxy);
    let c = client();
    for attempt in 1..=2 {
        let (status, body) = get(&c, &url, &d).await;
        assert_eq!((status, body.unwrap()), (200, blob.clone()));
        let s = settled(&proxy).await;
        assert_eq!((s.entries, s.write_failures), (0, attempt), "{s:?}");
    }
    assert_eq!(fake.hits(&blob_path(&d)), 2);
    let metrics = portcullis::metrics::render();
    assert!(
        metrics.contains("portcullis_cache_write_failures_total{reason=\"io\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_cached_blob_is_refused_once_its_digest_is_no_longer_trusted() {
    let fake = FakeRegistry::default();
    let layer = data(120_000, 7);
    let ld = fake.blob("demo/app", &layer);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{ld}","size":{}}},"layers":[]}}"#,
        layer.len()
    );
    let mt = "application/vnd.oci.image.manifest.v1+json";
    let md = fake.manifest("demo/app", Some("v1"), manifest.as_bytes(), mt);
    let trust = Arc::new(TableTrust::default());
    trust.sign("v1", manifest.as_bytes());
    let addr = fake.start().await;
    let dir = cache_dir();
    let toml = config(addr, "enforce", true, &cache_toml(&dir, ""));
    let (url, proxy) = start_proxy_arc(&toml, Some(trust.clone())).await;
    let c = client();
    // The manifest by tag records the layer in the closure of trusted content.
    let by_tag = c.get(format!("{url}/v2/demo/app/manifests/v1")).send();
    let m = by_tag.await.unwrap();
    assert_eq!(m.headers()["docker-content-digest"], md.as_str());
    assert_eq!(get(&c, &url, &ld).await.1.unwrap(), layer);
    assert_eq!(settled(&proxy).await.entries, 1);
    assert_eq!(get(&c, &url, &ld).await.1.unwrap(), layer, "from disk");

    // v1 is re-signed to other content: the cached blob is no longer reachable from any
    // trusted target, and the gate refuses it although its bytes are on disk.
    trust.sign("v1", b"other content");
    let resp = c.get(format!("{url}{}", blob_path(&ld))).send().await;
    let resp = resp.unwrap();
    assert_eq!(resp.status(), 403);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["errors"][0]["code"], "DENIED", "{v}");
    assert!(entry(&dir, &ld).exists(), "the blob is still on disk");
    let h = head(&c, &url, &ld).await;
    assert_eq!(h.status(), 403, "HEAD is gated too");
    assert_eq!(fake.hits(&blob_path(&ld)), 1, "never fetched again");
}

/// Passthrough mode caches too, but a hit is served only after the registry accepted this
/// client's own credentials (a HEAD with its `Authorization`), remembered for a minute per
/// credential and repository; a credential the registry refuses gets the registry's answer.
#[tokio::test]
async fn passthrough_mode_serves_a_hit_only_to_a_client_the_registry_accepts() {
    let passthrough = "[server]\nclient_auth = { mode = \"passthrough\" }";
    let one = one_blob(10_000, passthrough, |_| {}).await;
    let (fake, blob, d, url, proxy) = (one.fake, one.blob, one.d, one.url, one.proxy);
    assert!(proxy.blob_cache().is_some());
    let c = client();
    for _ in 0..3 {
        assert_eq!(get(&c, &url, &d).await.1.unwrap(), blob);
        // The entry is committed just after the response ends.
        settled(&proxy).await;
    }
    assert_eq!(fake.hits(&blob_path(&d)), 1, "one GET fills the cache");
    assert_eq!(
        fake.method_hits("HEAD", &blob_path(&d)),
        1,
        "one check of this client's credentials, remembered"
    );
    assert!(proxy.blob_cache().unwrap().stats().hits >= 1);
    // The registry refuses another credential: the cache does not serve it.
    fake.require_auth("Bearer good");
    let refused = c
        .get(format!("{url}{}", blob_path(&d)))
        .header("Authorization", "Bearer other")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let ok = c
        .get(format!("{url}{}", blob_path(&d)))
        .header("Authorization", "Bearer good")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.bytes().await.unwrap(), blob);
    assert_eq!(fake.hits(&blob_path(&d)), 1, "still never fetched again");
}

/// A cache directory on its own tiny tmpfs (needs root, as the containerd tests do); unmounted
/// on drop.
struct TinyDisk(PathBuf);

impl TinyDisk {
    fn mount(bytes: usize) -> TinyDisk {
        let dir = cache_dir();
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes},mode=0700"),
                "tmpfs",
            ])
            .arg(&dir)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill it up, which needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        TinyDisk(dir)
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_mid_stream_never_fails_the_pull() {
    let disk = TinyDisk::mount(128 * 1024);
    let fake = FakeRegistry::default();
    let big = data(600_000, 9);
    let small = data(20_000, 10);
    let (dbig, dsmall) = (fake.blob("demo/app", &big), fake.blob("demo/app", &small));
    let addr = fake.start().await;
    let toml = config(addr, "skip", false, &cache_toml(&disk.0, ""));
    let (url, proxy) = start_proxy_arc(&toml, None).await;
    let c = client();
    // ENOSPC part way through the temp file: the client still gets every byte.
    let (status, body) = get(&c, &url, &dbig).await;
    assert_eq!((status, body.unwrap()), (200, big));
    let s = settled(&proxy).await;
    assert_eq!((s.entries, s.write_failures), (0, 1), "{s:?}");
    assert!(
        tmp_files(&disk.0).is_empty(),
        "the partial temp file is removed"
    );
    // The space came back: a blob that fits is cached.
    assert_eq!(get(&c, &url, &dsmall).await.1.unwrap(), small);
    assert_eq!(settled(&proxy).await.entries, 1);
    assert!(entry(&disk.0, &dsmall).exists());
}

#[tokio::test]
async fn a_restart_reindexes_the_store_and_empties_tmp() {
    let one = one_blob(50_000, "", |_| {}).await;
    let c = client();
    assert_eq!(get(&c, &one.url, &one.d).await.1.unwrap(), one.blob);
    settled(&one.proxy).await;
    // A download cut off by a crash, and a file that is not named by a digest.
    let stray = one.dir.join("blobs/tmp/sha256-partial");
    std::fs::write(&stray, b"half a blob").unwrap();
    std::fs::write(one.dir.join("blobs/sha256/not-a-digest"), b"x").unwrap();

    let addr = one.fake.start().await;
    let toml = config(addr, "skip", false, &cache_toml(&one.dir, ""));
    let (url, proxy) = start_proxy_arc(&toml, None).await;
    assert!(!stray.exists(), "leftovers in tmp/ are removed at start");
    let s = stats(&proxy);
    assert_eq!((s.entries, s.size_bytes), (1, 50_000), "{s:?}");
    assert_eq!(get(&c, &url, &one.d).await.1.unwrap(), one.blob);
    assert_eq!(
        one.fake.hits(&blob_path(&one.d)),
        1,
        "served from the reindexed store"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_being_read_survives_its_eviction() {
    // Large enough that the reader is still reading the file when it is unlinked (more than
    // loopback socket buffers hold).
    const N: usize = 24 * 1024 * 1024;
    let fake = FakeRegistry::default();
    let (a, b) = (data(N, 11), data(N, 12));
    let (da, db) = (fake.blob("demo/app", &a), fake.blob("demo/app", &b));
    let addr = fake.start().await;
    let dir = cache_dir();
    let toml = cache_toml(&dir, &format!("max_size = {}", N + N / 2));
    let (url, proxy) = start_proxy_arc(&config(addr, "skip", false, &toml), None).await;
    let c = client();
    assert_eq!(get(&c, &url, &da).await.1.unwrap(), a);
    settled(&proxy).await;

    let mut reading = c
        .get(format!("{url}{}", blob_path(&da)))
        .send()
        .await
        .unwrap();
    let mut got = reading.chunk().await.unwrap().unwrap().to_vec();
    // Caching b evicts a (unlinks its file) while a is being read from it.
    assert_eq!(get(&c, &url, &db).await.1.unwrap(), b);
    let s = settled(&proxy).await;
    assert_eq!(s.evictions, 1, "{s:?}");
    assert!(!entry(&dir, &da).exists(), "a was unlinked");
    while let Some(chunk) = reading.chunk().await.unwrap() {
        got.extend_from_slice(&chunk);
    }
    assert!(
        got == a,
        "the reader got all of a, intact ({} bytes)",
        got.len()
    );
    assert_eq!(fake.hits(&blob_path(&da)), 1);
}
