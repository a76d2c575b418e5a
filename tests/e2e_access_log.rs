//! The access log, with the real parts (Distribution registry, notary-server, skopeo) and the
//! JSON log format: one line per request, written when the response ends, with the bytes
//! actually sent, the decision and its reason, and whether the disk cache served it; a client
//! that goes away mid-blob is logged as such with the bytes it got.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::real::proc::wait_until;
use support::real::*;

/// The access lines of the proxy's JSON log, as their `fields` objects.
fn access_lines(proxy: &Portcullis) -> Vec<serde_json::Value> {
    proxy
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "portcullis::access")
        .map(|v| v["fields"].clone())
        .collect()
}

#[test]
fn one_line_per_request_when_the_response_ends() {
    // 32 MiB: more than loopback socket buffers hold, so a slow client cannot have it all.
    let (reg, notary, _) = signed_image(
        RegistryAuth::None,
        "demo/app",
        "v1",
        &ImageSpec::large(32, false),
    );
    let config = format!(
        "{}\n[log]\nformat = \"json\"\n",
        Portcullis::config_for(&reg, &notary, "enforce")
    );
    let proxy = Portcullis::start(&config);
    let reference = format!("{}/demo/app:v1", reg.addr());
    skopeo_pull(&proxy.addr(), &reference, None).assert_ok("first pull");
    skopeo_pull(&proxy.addr(), &reference, None).assert_ok("second pull");
    skopeo_pull(
        &proxy.addr(),
        &format!("{}/demo/app:unsigned", reg.addr()),
        None,
    )
    .assert_refused("unsigned", "not signed");

    let lines = access_lines(&proxy);
    let blobs: Vec<_> = lines.iter().filter(|l| l["route"] == "blob").collect();
    assert!(!blobs.is_empty(), "blob lines: {lines:?}");
    let miss = blobs
        .iter()
        .find(|l| l["cache"] == "miss")
        .expect("a blob fetched upstream");
    let size = miss["bytes"].as_u64().unwrap();
    assert!(
        size > 0 && miss["outcome"] == "complete" && miss["status"] == 200,
        "{blobs:?}"
    );
    assert!(
        blobs
            .iter()
            .any(|l| l["cache"] == "hit" && l["bytes"] == size && l["outcome"] == "complete"),
        "the second pull's blob came from the cache, whole: {blobs:?}"
    );
    assert!(blobs.iter().all(|l| l["decision"] == "allow"), "{blobs:?}");
    let denied = lines
        .iter()
        .find(|l| l["reference"] == "unsigned")
        .expect("a line for the unsigned tag");
    assert_eq!(denied["status"], 403);
    assert_eq!(denied["decision"], "deny");
    assert_eq!(denied["reason"], "not_signed");
    assert_eq!(denied["repository"], "demo/app");

    // A client that leaves mid-blob: logged as gone, with what it got. The largest blob, read
    // at 256 KiB/s and given up after a second.
    let largest = blobs
        .iter()
        .max_by_key(|l| l["bytes"].as_u64().unwrap_or(0))
        .unwrap();
    let digest = largest["reference"].as_str().unwrap().to_string();
    let full = largest["bytes"].as_u64().unwrap();
    assert!(full > 16 << 20, "a blob large enough to interrupt: {full}");
    let _ = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "--limit-rate", "256k", "-m", "1"])
        .arg(format!("{}/v2/demo/app/blobs/{digest}", proxy.url()))
        .stdin(Stdio::null())
        .status()
        .expect("curl runs");
    let gone = || {
        access_lines(&proxy)
            .into_iter()
            .find(|l| l["outcome"] == "client_gone" && l["reference"] == digest.as_str())
    };
    assert!(
        wait_until(Duration::from_secs(10), || gone().is_some()),
        "a client_gone line: {:?}",
        access_lines(&proxy)
    );
    let line = gone().unwrap();
    assert!(line["bytes"].as_u64().unwrap() < full, "{line}");
    assert!(line["duration_ms"].as_f64().unwrap() >= 900.0, "{line}");
}
