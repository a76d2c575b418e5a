//! `offline_tag_memory`, with the real parts: the Distribution registry 2.8, a cosign `.sig`
//! made by the test signer, the Portcullis binary under a `[[policy]]` whose only source is
//! that cosign key, and skopeo.
//!
//! Without it (the default), a tag that only the registry binds cannot be pulled once the
//! registry is gone (by digest it still can, from stored evidence). With it, the tag resolves
//! to the digest the registry named when it was last pulled and vouched, for as long as the
//! setting says, logged and counted; signatures must still vouch (stored evidence); a tag
//! never pulled, or remembered too long ago, is refused saying so. `portcullis check` by tag
//! answers the same way.

mod support;

use std::time::Duration;

use support::real::cosign::KeySigned;
use support::real::images::{self, ImageSpec};
use support::real::proc::{http_get, metric_sum, port_open};
use support::real::tuf::check;
use support::real::*;

const REPO: &str = "team/app";

fn with_memory(base: &str, setting: Option<&str>) -> String {
    match setting {
        Some(s) => base.replace(
            "any_of = [\"ci-key\"]",
            &format!("any_of = [\"ci-key\"]\noffline_tag_memory = \"{s}\""),
        ),
        None => base.to_owned(),
    }
}

fn memory_files(proxy: &Portcullis) -> usize {
    std::fs::read_dir(proxy.dir().join("cache/signatures/tags"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
        .unwrap_or(0)
}

fn restart_with(proxy: &mut Portcullis, config: &str) {
    proxy.stop(Duration::from_secs(10));
    let text = config.replace("{dir}", &proxy.dir().display().to_string());
    std::fs::write(proxy.config_path(), text).unwrap();
    proxy.restart();
}

#[test]
fn a_tag_only_the_registry_binds_pulls_offline_only_with_offline_tag_memory() {
    let signed_repo = KeySigned::start(REPO, "v1", "offline tag memory, signed");
    let KeySigned {
        mut reg,
        img,
        reference,
        key,
        ..
    } = signed_repo;
    // Another tag of the repository, never pulled through the proxy.
    images::push(
        &reg,
        REPO,
        "v2",
        &ImageSpec::single("offline tag memory, never pulled"),
        Format::Oci,
    );
    let base = support::real::cosign::ci_key_config(&reg, &key);
    let remembering = with_memory(&base, Some("1h"));
    let mut proxy = Portcullis::start_with(&remembering, Portcullis::opts_for(&reg));
    let by_tag = format!("{reference}:v1");

    skopeo_pull(&proxy.addr(), &by_tag, None).assert_ok("by tag, registry up");
    assert_eq!(memory_files(&proxy), 1, "the vouched answer is remembered");

    // The registry goes; a restart forgets everything held in memory.
    reg.stop();
    assert!(!port_open(reg.socket_addr()), "the registry must be down");
    proxy.restart();
    let pulled = skopeo_pull(&proxy.addr(), &by_tag, None);
    pulled.assert_ok("by tag, registry down, offline_tag_memory = 1h");
    assert_eq!(pulled.digest.as_deref(), Some(img.digest.as_str()));
    let log = proxy.log();
    assert!(log.contains("offline_tag_memory is set"), "{log}");
    assert!(
        log.contains("tag resolved by offline_tag_memory"),
        "the use is logged: {log}"
    );
    let metrics = http_get(&format!("{}/metrics", proxy.admin_url()));
    let used = metric_sum(
        &metrics,
        "portcullis_offline_tag_memory_total",
        &["outcome=\"used\""],
    );
    assert!(used >= 1.0, "{metrics}");
    // `portcullis check` resolves as the proxy does, from the same memory, and says so.
    let checked = check(&proxy, &by_tag, &proxy.dir().join("cache"));
    assert!(checked.ok, "{}", checked.combined());
    assert!(
        checked.stdout.contains("REMEMBERED (offline_tag_memory)")
            && checked.stdout.contains(&img.digest)
            && checked.stdout.contains("TRUSTED by any_of: ci-key"),
        "{}",
        checked.stdout
    );
    // A tag never pulled here has nothing remembered.
    let (status, body) = proxy.get_manifest(&format!("/v2/{REPO}/manifests/v2"));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("never seen vouched here"), "{body}");

    // The default: no memory is consulted; by tag is refused, naming the unreachable registry.
    restart_with(&mut proxy, &base);
    skopeo_pull(&proxy.addr(), &by_tag, None).assert_refused(
        "by tag, registry down, no offline_tag_memory",
        "cannot be asked",
    );
    let (status, body) = proxy.get_manifest(&format!("/v2/{REPO}/manifests/v1"));
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("offline_tag_memory"), "{body}");
    let checked = check(&proxy, &by_tag, &proxy.dir().join("cache"));
    assert!(!checked.ok, "{}", checked.combined());
    assert!(
        checked.combined().contains("the registry cannot be asked")
            && !checked.combined().contains("REMEMBERED"),
        "{}",
        checked.combined()
    );

    // Remembered longer ago than the setting allows: refused, saying when it was seen.
    restart_with(&mut proxy, &with_memory(&base, Some("1s")));
    std::thread::sleep(Duration::from_millis(1500));
    let (status, body) = proxy.get_manifest(&format!("/v2/{REPO}/manifests/v1"));
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("offline_tag_memory: last seen") && body.contains("longer ago than 1s"),
        "{body}"
    );
}
