//! `kill -9` in the middle of a blob download, with the Portcullis binary as a real process
//! (in front of the fake registry, which drips the blob slowly so that the kill lands
//! mid-download): no entry appears for the partial bytes, the restart removes the temp file,
//! and the next pull gets the right content. Then `portcullis cache verify` on that
//! directory: 0 when all is good, 1 after it found and removed a blob with one byte flipped
//! on disk (and a manifest entry that does not hash to its name), 0 again, 2 when it cannot
//! check.

mod fake;
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ::portcullis::refs::Digest;
use bytes::Bytes;
use fake::blobs::{blob_path, dripped, entry, tmp_files};
use fake::{Behaviour, FakeRegistry};
use support::real::proc::wait_until;
use support::real::*;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// GET through the proxy with curl: (status, body); the body is cut short when the transfer
/// fails.
fn curl_get(url: &str, max_secs: u32) -> (u16, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-s", "-m", &max_secs.to_string(), "-w", "%{http_code}"])
        .args(["-o", "-"])
        .arg(url)
        .output()
        .expect("curl runs");
    let mut body = out.stdout;
    let code = body.split_off(body.len().saturating_sub(3));
    let status = String::from_utf8_lossy(&code).parse().unwrap_or(0);
    (status, body)
}

/// `portcullis cache verify` on `cache_dir` (given as the harness gives it to `serve`):
/// (exit code, stdout).
fn verify(config: &Path, cache_dir: &Path) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["cache", "verify", "-c"])
        .arg(config)
        .env("PORTCULLIS_CACHE__DIR", cache_dir)
        .output()
        .expect("portcullis runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

#[test]
fn a_sigkill_mid_download_leaves_no_corrupt_entry_and_cache_verify_drops_a_flipped_byte() {
    require_tool("curl", "curl");
    require_tool("kill", "procps");
    let rt = fake::background_runtime();
    // 8 MiB in 64 KiB pieces every 25 ms: over 3 s for the whole blob.
    const N: usize = 8 * 1024 * 1024;
    let fake = FakeRegistry::default();
    let (blob, d) = dripped(&fake, N, 5, Duration::from_millis(25), <[u8]>::to_vec);
    let addr = rt.block_on(fake.start());
    let config = fake::config(addr, "skip", false, fake::NO_CLIENT_AUTH);
    let mut proxy = Portcullis::start(&config);
    let cache = proxy.dir().join("cache");
    let url = format!("{}{}", proxy.url(), blob_path(&d));

    // A pull starts; once part of the blob is in the temp file, the proxy is killed.
    let pulling = {
        let url = url.clone();
        std::thread::spawn(move || curl_get(&url, 30))
    };
    let partial = || tmp_files(&cache).first().map(|p| size(p)).unwrap_or(0);
    assert!(
        wait_until(Duration::from_secs(20), || partial() >= 512 * 1024),
        "the download started: {}",
        proxy.log()
    );
    let pid = proxy.pid().expect("running").to_string();
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        wait_until(Duration::from_secs(10), || proxy.exited().is_some()),
        "portcullis died"
    );
    let (_, got) = pulling.join().unwrap();
    assert!(got.len() < N, "the client did not get the whole blob");
    let left = tmp_files(&cache);
    assert_eq!(left.len(), 1, "the kill landed mid-download: {left:?}");
    assert!(size(&left[0]) < N as u64, "a partial temp file");
    assert!(
        !entry(&cache, &d).exists(),
        "no entry for a partial download"
    );

    // Restart: the leftover is removed, nothing half-written is visible, and the pull gets
    // the right content (from a registry that answers at full speed now).
    fake.set(
        &blob_path(&d),
        Behaviour::Serve {
            body: Bytes::from(blob.clone()),
            content_type: "application/octet-stream".into(),
        },
    );
    proxy.restart();
    assert!(tmp_files(&cache).is_empty(), "leftovers removed at start");
    assert!(!entry(&cache, &d).exists());
    let (status, body) = curl_get(&url, 30);
    assert_eq!(status, 200);
    assert!(body == blob, "the right bytes after the restart");
    assert!(
        wait_until(Duration::from_secs(10), || entry(&cache, &d).exists()),
        "cached once verified"
    );
    assert_eq!(std::fs::read(entry(&cache, &d)).unwrap(), blob);
    assert_eq!(fake.hits(&blob_path(&d)), 2);

    // cache verify: all good.
    let (code, out) = verify(proxy.config_path(), &cache);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("1 blob(s)") && out.contains("all good"),
        "{out}"
    );

    // One byte flipped on disk, and a manifest entry that is not what its name says.
    let mut bytes = std::fs::read(entry(&cache, &d)).unwrap();
    bytes[N / 2] ^= 0x20;
    std::fs::write(entry(&cache, &d), bytes).unwrap();
    let fake_manifest = Digest::sha256_of(b"{}");
    let manifests = cache.join("manifests/sha256");
    std::fs::create_dir_all(&manifests).unwrap();
    let mpath = manifests.join(fake_manifest.hex());
    std::fs::write(&mpath, b"application/json\n{ }").unwrap();
    let (code, out) = verify(proxy.config_path(), &cache);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("2 bad entry(ies) removed"), "{out}");
    assert!(
        out.contains(&d[7..]) && out.contains(fake_manifest.hex()),
        "{out}"
    );
    assert!(!entry(&cache, &d).exists() && !mpath.exists());
    let (code, out) = verify(proxy.config_path(), &cache);
    assert_eq!(code, 0, "{out}");

    // The running proxy forgets the removed entry: fetched upstream again, the right bytes.
    let (status, body) = curl_get(&url, 30);
    assert_eq!(status, 200);
    assert!(body == blob, "the right bytes after cache verify");
    assert_eq!(fake.hits(&blob_path(&d)), 3);

    // Cannot check: exit 2, not 1.
    let (code, out) = verify(proxy.config_path(), &proxy.dir().join("no-such-dir"));
    assert_eq!(code, 2, "{out}");
    let (code, out) = verify(&proxy.dir().join("missing.toml"), &cache);
    assert_eq!(code, 2, "{out}");
}
