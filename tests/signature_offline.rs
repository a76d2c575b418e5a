//! A cosign-key-signed image on a node whose registry is gone, with the real parts: the
//! Distribution registry 2.8, a cosign `.sig` made by the project's test signer and pushed
//! byte for byte, the Portcullis binary enforcing a `[[policy]]` with only that cosign source,
//! and skopeo.
//!
//! The image is pulled once (the verdict's evidence is stored under
//! `<cache.dir>/signatures/`), then the registry is stopped and Portcullis restarted: the
//! signed image pulls by digest from the cache, vouched by the stored evidence re-verified
//! with the configured key (logged, counted as `offline_evidence`). An unsigned image whose
//! manifest is on disk is refused; a corrupt evidence file is ignored and the pull refused,
//! saying so; and after the configured key changes, the same evidence no longer vouches.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::cosign::signer::CosignTestKey;
use support::real::cosign::KeySigned;
use support::real::images::{self, ImageSpec};
use support::real::proc::{http_get, metric_sum, port_open};
use support::real::tuf::check;
use support::real::*;

const REPO: &str = "team/app";

fn config(reg: &Registry, key: &Path) -> String {
    support::real::cosign::ci_key_config(reg, key)
}

#[test]
fn stored_signature_evidence_vouches_offline_only_while_it_verifies() {
    // Bound first: the fields not taken (the key's directory) live as long as it.
    let signed_repo = KeySigned::start(REPO, "signed", "sig offline signed");
    let KeySigned {
        mut reg,
        img: signed,
        reference,
        key,
        ..
    } = signed_repo;
    let unsigned = images::push(
        &reg,
        REPO,
        "unsigned",
        &ImageSpec::single("sig offline unsigned"),
        Format::Oci,
    );
    let mut proxy = Portcullis::start_with(&config(&reg, &key), Portcullis::opts_for(&reg));

    let by_tag = format!("{reference}:signed");
    let by_digest = format!("{reference}@{}", signed.digest);
    skopeo_pull(&proxy.addr(), &by_tag, None).assert_ok("warm-up pull, registry up");
    let evidence = evidence_files(&proxy);
    assert_eq!(evidence.len(), 1, "one evidence file: {evidence:?}");
    let stored = std::fs::read(&evidence[0]).unwrap();
    assert!(
        String::from_utf8_lossy(&stored).contains(&signed.digest),
        "the evidence names its digest"
    );
    // The unsigned image's manifest on disk, as if it had been cached: bytes alone never vouch.
    plant_manifest(&proxy, &unsigned.media_type, &unsigned.manifest);

    // Memory gone, registry gone.
    proxy.stop(Duration::from_secs(10));
    reg.stop();
    assert!(!port_open(reg.socket_addr()), "the registry must be down");
    proxy.restart();

    let again = skopeo_pull(&proxy.addr(), &by_digest, None);
    again.assert_ok("skopeo by digest after a restart, registry down");
    assert_eq!(again.digest.as_deref(), Some(signed.digest.as_str()));
    let log = proxy.log();
    assert!(
        log.contains("signature vouched OFFLINE from stored evidence"),
        "{log}"
    );
    let metrics = http_get(&format!("{}/metrics", proxy.admin_url()));
    let offline = metric_sum(
        &metrics,
        "portcullis_signature_verdicts_total",
        &["reason=\"offline_evidence\"", "verdict=\"yes\""],
    );
    assert!(offline >= 1.0, "{metrics}");

    // `portcullis check` by digest reads the node's evidence (without changing it) and says so.
    let checked = check(&proxy, &by_digest, &proxy.dir().join("cache"));
    assert!(checked.ok, "{}", checked.combined());
    assert!(
        checked.stdout.contains("OFFLINE registry unreachable")
            && checked.stdout.contains("TRUSTED by any_of: ci-key"),
        "{}",
        checked.stdout
    );

    let (status, body) = get(&proxy, &format!("/v2/{REPO}/manifests/{}", unsigned.digest));
    assert_eq!(status, 403, "unsigned, bytes on disk: {body}");
    assert!(body.contains("no stored evidence"), "{body}");

    // A truncated evidence file: ignored with a log line, the pull refused saying why.
    proxy.stop(Duration::from_secs(10));
    std::fs::write(&evidence[0], &stored[..stored.len() / 2]).unwrap();
    proxy.restart();
    let (status, body) = get(&proxy, &format!("/v2/{REPO}/manifests/{}", signed.digest));
    assert_eq!(status, 403, "corrupt evidence: {body}");
    assert!(body.contains("stored evidence ignored: corrupt"), "{body}");
    assert!(
        proxy
            .log()
            .contains("signature evidence: stored file is corrupt"),
        "{}",
        proxy.log()
    );

    // The evidence intact again, but the configured key is another one: it no longer vouches.
    proxy.stop(Duration::from_secs(10));
    std::fs::write(&evidence[0], &stored).unwrap();
    CosignTestKey::generate().write_public_key(&key);
    proxy.restart();
    let (status, body) = get(&proxy, &format!("/v2/{REPO}/manifests/{}", signed.digest));
    assert_eq!(status, 403, "key changed: {body}");
    assert!(
        body.contains("does not vouch now") && body.contains("ci-key"),
        "{body}"
    );
    skopeo_pull(&proxy.addr(), &by_digest, None)
        .assert_refused("skopeo after the key changed", "does not vouch now");
    let checked = check(&proxy, &by_digest, &proxy.dir().join("cache"));
    assert!(!checked.ok, "{}", checked.combined());
    assert!(
        checked.stdout.contains("does not vouch now"),
        "{}",
        checked.stdout
    );
}

fn evidence_files(proxy: &Portcullis) -> Vec<PathBuf> {
    let dir = proxy.dir().join("cache/signatures");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    out.sort();
    out
}

/// Writes a manifest into the proxy's manifest store as the proxy would (media type line,
/// then the exact bytes), so it is "cached" without ever having passed the trust gate.
fn plant_manifest(proxy: &Portcullis, media_type: &str, bytes: &[u8]) {
    use sha2::Digest as _;
    let hex = hex::encode(sha2::Sha256::digest(bytes));
    let dir = proxy.dir().join("cache/manifests/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    let mut entry = format!("{media_type}\n").into_bytes();
    entry.extend_from_slice(bytes);
    std::fs::write(dir.join(hex), entry).unwrap();
}

/// GET through the proxy with every manifest type accepted: (status, body).
fn get(proxy: &Portcullis, path: &str) -> (u16, String) {
    proxy.get_manifest(path)
}

#[test]
fn a_signature_deleted_upstream_takes_its_stored_evidence_with_it() {
    // Bound first: the fields not taken (the key's directory) live as long as it.
    let signed_repo = KeySigned::start(REPO, "v1", "sig offline, to be unsigned");
    let KeySigned {
        mut reg,
        img,
        sig,
        reference,
        key,
        ..
    } = signed_repo;
    let mut proxy = Portcullis::start_with(&config(&reg, &key), Portcullis::opts_for(&reg));
    let by_digest = format!("{reference}@{}", img.digest);
    skopeo_pull(&proxy.addr(), &by_digest, None).assert_ok("signed, registry up");
    assert_eq!(evidence_files(&proxy).len(), 1, "evidence stored");

    // The signature goes; a restart forgets the verdict, so the next pull asks the registry.
    let status = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "DELETE",
        ])
        .arg(format!(
            "{}/v2/{REPO}/manifests/{}",
            reg.url(),
            sig.manifest_digest
        ))
        .output()
        .expect("curl runs");
    assert_eq!(String::from_utf8_lossy(&status.stdout), "202", "deleted");
    proxy.restart();
    skopeo_pull(&proxy.addr(), &by_digest, None)
        .assert_refused("signature deleted, registry up", "no signature found");
    assert!(
        evidence_files(&proxy).is_empty(),
        "the evidence of a deleted signature is removed"
    );

    // And with the registry gone, the bytes on disk do not vouch.
    reg.stop();
    proxy.restart();
    skopeo_pull(&proxy.addr(), &by_digest, None)
        .assert_refused("signature deleted, registry down", "no stored evidence");
}
