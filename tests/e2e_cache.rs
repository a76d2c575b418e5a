//! The blob cache with the real parts: Distribution registry, notary-server + notary-signer,
//! a tag signed with `notary addhash`, Portcullis in enforce mode, skopeo. After one pull the
//! registry process is stopped, and the same signed image pulls again through Portcullis (with
//! skopeo, and with containerd, which asks HEAD first):
//! blobs from the disk cache, manifests from the proxy's in-memory verified-manifest cache,
//! trust from the warm notary metadata (notary-server is still up; it is not the registry).

mod support;

use std::net::TcpStream;
use std::time::Duration;

use support::real::images::{self, ImageSpec};
use support::real::*;

#[test]
fn a_signed_image_pulls_again_from_the_cache_while_the_registry_is_down() {
    let mut reg = Registry::start(RegistryAuth::None);
    let notary = Notary::start(TrustService::Remote);
    let img = images::push(
        &reg,
        "demo/app",
        "v1",
        &ImageSpec::single("portcullis blob cache"),
        images::Format::Oci,
    );
    Signer::new(&notary).sign(&reg.gun("demo/app"), "v1", &img, &Role::Targets);
    let proxy = Portcullis::start_for(&reg, &notary, "enforce");
    let reference = format!("{}/demo/app:v1", reg.addr());

    let first = skopeo_pull(&proxy.addr(), &reference, None);
    first.assert_ok("skopeo through the proxy, registry up");
    assert_eq!(first.digest.as_deref(), Some(img.digest.as_str()));
    let blobs = cached_blobs(&proxy);
    assert!(blobs >= 2, "config and layer cached, found {blobs}");

    reg.stop();
    assert!(
        TcpStream::connect_timeout(&reg.socket_addr(), Duration::from_secs(2)).is_err(),
        "the registry must really be down"
    );
    let second = skopeo_pull(&proxy.addr(), &reference, None);
    second.assert_ok("skopeo through the proxy, registry down");
    assert_eq!(second.digest.as_deref(), Some(img.digest.as_str()));

    // containerd (HEAD before GET, as CRI pulls go): a fresh store, so it fetches everything.
    let ctr = Containerd::start();
    let p = ctr.pull(&proxy.addr(), &reference, None);
    p.assert_ok("ctr through the proxy, registry down");
    assert_eq!(p.digest.as_deref(), Some(img.digest.as_str()));

    let metrics = http_get(&format!("{}/metrics", proxy.admin_url()));
    let hits = metric(&metrics, "portcullis_cache_hits_total");
    assert!(hits >= 2.0, "second pull's blobs came from disk: {metrics}");
    let unsigned = format!("{}/demo/app:unsigned", reg.addr());
    skopeo_pull(&proxy.addr(), &unsigned, None)
        .assert_refused("an unsigned tag is still refused", "not signed");
}

/// Files under the proxy's `blobs/sha256/` (the harness puts `cache.dir` in its tempdir).
fn cached_blobs(proxy: &Portcullis) -> usize {
    // The writer commits just after the response ends: give it a moment.
    for _ in 0..50 {
        let n = std::fs::read_dir(proxy.dir().join("cache/blobs/sha256"))
            .map(|d| d.count())
            .unwrap_or(0);
        if n >= 2 {
            return n;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    0
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}
