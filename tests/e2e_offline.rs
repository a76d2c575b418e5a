//! A node with its registry AND its notary server gone, with the real parts: Distribution
//! registry, notary-server + notary-signer, tags signed with `notary addhash`, Portcullis in
//! enforce mode, skopeo and containerd.
//!
//! After one pull, Portcullis is restarted (its memory is gone: only the disk cache and the
//! verified Notary metadata on disk are left), the registry and the notary server are stopped,
//! and the signed image pulls again: trust from the cached metadata, manifests and blobs from
//! disk. A signed tag whose image was never pulled gets 503 UNAVAILABLE saying it is not
//! cached; an unsigned tag is still refused. And the other way round: a signature removed
//! upstream makes a cached image unpullable after the next refresh, although every byte of it
//! is still on disk.

mod support;

use std::time::Duration;

use support::real::images::{self, ImageSpec};
use support::real::proc::{port_open, wait_until};
use support::real::*;

#[test]
fn a_restarted_node_pulls_signed_images_with_registry_and_notary_down() {
    let mut reg = Registry::start(RegistryAuth::None);
    let mut notary = Notary::start(TrustService::Remote);
    let gun = reg.gun("demo/app");
    let v1 = images::push(
        &reg,
        "demo/app",
        "v1",
        &ImageSpec::single("offline v1"),
        images::Format::Oci,
    );
    let v2 = images::push(
        &reg,
        "demo/app",
        "v2",
        &ImageSpec::single("offline v2, never pulled"),
        images::Format::DockerV2s2,
    );
    let signer = Signer::new(&notary);
    signer.sign(&gun, "v1", &v1, &Role::Targets);
    signer.sign(&gun, "v2", &v2, &Role::Targets);
    let mut proxy = Portcullis::start_for(&reg, &notary, "enforce");
    let v1_ref = format!("{}/demo/app:v1", reg.addr());

    skopeo_pull(&proxy.addr(), &v1_ref, None).assert_ok("warm-up pull, everything up");

    // Memory gone; then the registry and the notary server.
    proxy.stop(Duration::from_secs(10));
    reg.stop();
    notary.stop();
    assert!(!port_open(reg.socket_addr()), "the registry must be down");
    assert!(!port_open(notary.addr()), "notary-server must be down");
    proxy.restart();

    let again = skopeo_pull(&proxy.addr(), &v1_ref, None);
    again.assert_ok("skopeo after a restart, registry and notary down");
    assert_eq!(again.digest.as_deref(), Some(v1.digest.as_str()));
    // containerd, with a store of its own (so it fetches every blob, HEAD first).
    let ctr = Containerd::start();
    let p = ctr.pull(&proxy.addr(), &v1_ref, None);
    p.assert_ok("ctr after a restart, registry and notary down");
    assert_eq!(p.digest.as_deref(), Some(v1.digest.as_str()));

    // Signed (the cached metadata says so) but never pulled: 503 naming the cache.
    let (status, body) = get(&proxy, "/v2/demo/app/manifests/v2");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("UNAVAILABLE") && body.contains("not in portcullis's cache"),
        "{body}"
    );
    assert!(body.contains(&v2.digest), "names the signed digest: {body}");
    // Unsigned: still refused, from the cached metadata.
    let (status, body) = get(&proxy, "/v2/demo/app/manifests/unsigned");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("not signed"), "{body}");

    let metrics = http_get(&format!("{}/metrics", proxy.admin_url()));
    assert!(
        metric(&metrics, "portcullis_cache_manifest_disk_hits_total") >= 1.0,
        "the manifest came from disk after the restart: {metrics}"
    );
    assert!(
        metric(&metrics, "portcullis_offline_not_cached_total") >= 1.0,
        "{metrics}"
    );
    let log = proxy.log();
    assert!(
        log.contains("notary server unreachable; using cached metadata"),
        "{log}"
    );
}

#[test]
fn a_signature_removed_upstream_makes_the_cached_image_unpullable_after_the_next_refresh() {
    let reg = Registry::start(RegistryAuth::None);
    let notary = Notary::start(TrustService::Remote);
    let gun = reg.gun("demo/app");
    let spec = ImageSpec::single("to be unsigned");
    let img = images::push(&reg, "demo/app", "v1", &spec, images::Format::Oci);
    // The signer that signs must be the one that removes (it holds the targets key).
    let signer = Signer::new(&notary);
    signer.sign(&gun, "v1", &img, &Role::Targets);
    // Refresh the metadata every second, so the removal is seen at once.
    let config = Portcullis::config_for(&reg, &notary, "enforce").replace(
        "[registries.notary]\n",
        "[registries.notary]\nrefresh_interval_secs = 1\n",
    );
    let proxy = Portcullis::start_with(&config, PortcullisOpts::default());
    let reference = format!("{}/demo/app:v1", reg.addr());
    skopeo_pull(&proxy.addr(), &reference, None).assert_ok("signed: pulls, and is cached");
    let blob_files = || {
        std::fs::read_dir(proxy.dir().join("cache/blobs/sha256"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert!(
        wait_until(Duration::from_secs(10), || blob_files() >= 2),
        "config and layer are on disk"
    );

    signer.unsign(&gun, "v1", &Role::Targets);
    std::thread::sleep(Duration::from_secs(2));
    skopeo_pull(&proxy.addr(), &reference, None)
        .assert_refused("the signature was removed", "not signed");
    // By digest too: the content is no longer reachable from a trusted target.
    let (status, body) = get(&proxy, &format!("/v2/demo/app/manifests/{}", img.digest));
    assert_eq!(status, 403, "{body}");
    assert!(
        blob_files() >= 2,
        "the bytes are still on disk, and refused"
    );
}

/// GET through the proxy with every manifest type accepted: (status, body).
fn get(proxy: &Portcullis, path: &str) -> (u16, String) {
    proxy.get_manifest(path)
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}
