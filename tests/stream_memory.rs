//! What one blob stream costs the Portcullis process in memory, with the binary as a real
//! process (its own allocator and options) in front of the fake registry: the peak RSS a cold
//! fill of a 96 MiB blob adds, and that the memory it used leaves the process once it is idle.
//!
//! Why: a stream reading with 512 KiB buffers (the wide slots) once held 115-139 MiB under
//! mimalloc, because each read's chunk pinned a fresh buffer until another thread's free was
//! collected, and idle processes kept 10-16 MiB per stream; nothing in the tests measured one
//! stream then (bench/PROFILE.md sections 6 and 7).

mod fake;
mod support;

use std::process::Command;
use std::time::Duration;

use fake::FakeRegistry;
use fake::blobs::{blob_path, data, entry};
use support::real::proc::wait_until;
use support::real::*;

/// Peak RSS one stream may add: its read buffers, chunks in flight to the client and the
/// hashing thread, and the cache writer's blocks (at most 4 MiB). Measured in the debug build
/// the tests run: 1.7 MiB with jemalloc, 47 MiB with mimalloc (wide reads, section 7).
const PEAK_GROWTH_KIB: u64 = 16 * 1024;
/// Anonymous memory one finished stream may leave behind once the allocator purged.
const LEFT_KIB: u64 = 6 * 1024;

fn status_kib(pid: u32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

/// The whole blob through curl into /dev/null (the client reads as fast as it can).
fn pull(url: &str, n: usize) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-m",
            "120",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
        ])
        .arg(url)
        .output()
        .expect("curl runs");
    let got = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(got, format!("200 {n}"), "pull of {url}: {out:?}");
}

#[test]
fn one_cold_fill_adds_little_to_the_peak_rss_and_leaves_nothing_behind() {
    require_tool("curl", "curl");
    let rt = fake::background_runtime();
    const WARM: usize = 16 * 1024 * 1024;
    const N: usize = 96 * 1024 * 1024;
    let fake = FakeRegistry::default();
    let first = fake.blob("demo/app", &data(WARM, 1));
    let measured = fake.blob("demo/app", &data(N, 2));
    let addr = rt.block_on(fake.start());
    let config = fake::config(addr, "skip", false, fake::NO_CLIENT_AUTH);
    let proxy = Portcullis::start(&config);
    let pid = proxy.pid().expect("running");
    let cache = proxy.dir().join("cache");

    // A first pull runs the code of the path once, so that the binary's pages it maps do not
    // count as the measured stream's.
    pull(&format!("{}{}", proxy.url(), blob_path(&first)), WARM);
    assert!(
        wait_until(Duration::from_secs(10), || entry(&cache, &first).exists()),
        "the first blob was cached: {}",
        proxy.log()
    );
    let rss_before = status_kib(pid, "VmRSS");
    let anon_before = status_kib(pid, "RssAnon");
    // Resets VmHWM to the current RSS: the peak read afterwards is this stream's.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset VmHWM");

    pull(&format!("{}{}", proxy.url(), blob_path(&measured)), N);
    let growth = status_kib(pid, "VmHWM").saturating_sub(rss_before);
    assert!(
        wait_until(Duration::from_secs(10), || entry(&cache, &measured)
            .exists()),
        "the measured blob was cached: {}",
        proxy.log()
    );
    assert!(
        growth < PEAK_GROWTH_KIB,
        "one cold fill of {N} bytes raised the peak RSS by {growth} KiB (limit {PEAK_GROWTH_KIB})"
    );
    // The allocator returns what the stream freed on its own (jemalloc's background thread,
    // `.cargo/config.toml`), without another request to make it purge.
    let mut anon_after = 0;
    let settled = wait_until(Duration::from_secs(10), || {
        anon_after = status_kib(pid, "RssAnon");
        anon_after < anon_before + LEFT_KIB
    });
    eprintln!(
        "one cold fill of {N} bytes: peak RSS +{growth} KiB; anonymous RSS {anon_before} KiB \
         before, {anon_after} KiB after"
    );
    assert!(
        settled,
        "anonymous RSS {anon_after} KiB after the stream, {anon_before} KiB before it: more than \
         {LEFT_KIB} KiB stayed"
    );
}
