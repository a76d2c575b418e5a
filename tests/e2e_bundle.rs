//! Air-gap bundles with the real parts: Distribution registry, notary-server + notary-signer,
//! tags signed with `notary addhash`, skopeo and containerd.
//!
//! A bundle is exported on a connected Portcullis and imported on a node whose registry and
//! notary addresses point nowhere (nothing listens there); the node then serves the signed
//! images to skopeo and ctr. Bundles that were tampered with (a blob byte, a missing blob,
//! altered metadata) or are older than what the node trusts are refused with the reason, and
//! the node's cache and trust state stay byte-for-byte as they were.

mod support;

use std::path::{Path, PathBuf};

use support::real::bundle::{
    alter_length, assert_node_serves, bundle, export, import, read_tar, tree, write_tar,
};
use support::real::images::{self, ImageSpec};
use support::real::*;

/// A node whose registry and notary server addresses point nowhere: the connected config with
/// both addresses replaced by ports nothing listens on.
fn offline_config(c: &Connected) -> String {
    Portcullis::config_for(&c.reg, &c.notary, "enforce")
        .replace(&c.reg.url(), &format!("http://127.0.0.1:{}", dead_port()))
        .replace(
            &c.notary.url(),
            &format!("https://127.0.0.1:{}", dead_port()),
        )
}

/// An exporting Portcullis (connected) and what it needs.
struct Connected {
    reg: Registry,
    notary: Notary,
    signer: Signer,
    proxy: Portcullis,
}

impl Connected {
    fn start() -> Connected {
        let reg = Registry::start(RegistryAuth::None);
        let notary = Notary::start(TrustService::Remote);
        let signer = Signer::new(&notary);
        let proxy = Portcullis::start_for(&reg, &notary, "enforce");
        Connected {
            reg,
            notary,
            signer,
            proxy,
        }
    }

    fn push_signed(&self, repo: &str, tag: &str, text: &str) -> ImageInfo {
        let img = images::push(
            &self.reg,
            repo,
            tag,
            &ImageSpec::single(text),
            images::Format::Oci,
        );
        self.signer
            .sign(&self.reg.gun(repo), tag, &img, &Role::Targets);
        img
    }

    fn export(&self, out: &Path, images: &[&str]) {
        let refs: Vec<String> = images
            .iter()
            .map(|i| format!("{}/{i}", self.reg.addr()))
            .collect();
        export(&self.proxy, out, &refs);
    }
}

#[test]
fn a_bundle_carries_signed_images_to_a_node_without_network() {
    let c = Connected::start();
    let app = c.push_signed("demo/app", "v1", "bundled app");
    let tool = c.push_signed("demo/tool", "v1", "bundled tool");
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("images.tar");
    c.export(&file, &["demo/app:v1", "demo/tool:v1"]);

    // The air-gapped node runs before the bundle arrives: import into a live node.
    let node = Portcullis::start(&offline_config(&c));
    let app_ref = format!("{}/demo/app:v1", c.reg.addr());
    skopeo_pull(&node.addr(), &app_ref, None).assert_refused("nothing imported yet", "unreachable");
    let i = import(&node, &file);
    assert!(i.ok, "import failed:\n{}", i.combined());
    assert!(
        i.stdout
            .contains("imported 2 image(s): trust metadata of 2 GUN(s)"),
        "{}",
        i.stdout
    );

    assert_node_serves(&node, &c.reg.addr(), &app, &tool, "not signed");
}

#[test]
fn tampered_or_older_bundles_are_refused_whole_and_change_nothing() {
    let c = Connected::start();
    c.push_signed("demo/app", "v1", "first");
    let work = tempfile::tempdir().unwrap();
    let older = work.path().join("older.tar");
    c.export(&older, &["demo/app:v1"]);
    // Signing v2 publishes new targets, snapshot and timestamp versions.
    c.push_signed("demo/app", "v2", "second");
    let newer = work.path().join("newer.tar");
    c.export(&newer, &["demo/app:v1", "demo/app:v2"]);

    let node_dir = tempfile::tempdir().unwrap();
    let config = node_dir.path().join("portcullis.toml");
    std::fs::write(&config, offline_config(&c)).unwrap();
    let cache = node_dir.path().join("cache");
    let import = |f: &Path| bundle(&config, &cache, &["import", f.to_str().unwrap()]);
    let ok = import(&newer);
    assert!(ok.ok, "{}", ok.combined());
    let before = tree(&cache);
    assert!(
        before.keys().any(|p| p.starts_with("notary/")),
        "trust state was stored: {:?}",
        before.keys()
    );

    let entries = read_tar(&newer);
    let blob = entries
        .keys()
        .filter(|n| n.starts_with("blobs/"))
        .max_by_key(|n| entries[*n].len())
        .unwrap()
        .clone();
    let cases: Vec<(&str, PathBuf, &str)> = vec![
        ("an older bundle", older.clone(), "older than version"),
        (
            "a changed blob byte",
            write_tar(work.path(), "flipped", &entries, |e| {
                let b = e.get_mut(&blob).unwrap();
                let mid = b.len() / 2;
                b[mid] ^= 0x01;
            }),
            "does not match its digest",
        ),
        (
            "a removed blob",
            write_tar(work.path(), "removed", &entries, |e| {
                e.remove(&blob);
            }),
            "missing from the bundle",
        ),
        (
            "altered metadata",
            write_tar(work.path(), "altered", &entries, |e| {
                alter_targets(e.get_mut("portcullis/bundle.json").unwrap())
            }),
            "does not verify",
        ),
    ];
    for (what, file, reason) in cases {
        let out = import(&file);
        assert!(!out.ok, "{what}: imported:\n{}", out.combined());
        assert!(
            out.stderr.contains("refused") && out.stderr.contains(reason),
            "{what}: the reason should say {reason:?}:\n{}",
            out.stderr
        );
        assert_eq!(tree(&cache), before, "{what}: the node's state changed");
    }
}

/// Changes one signed byte of the targets role inside bundle.json (a tag's length).
fn alter_targets(bundle_json: &mut Vec<u8>) {
    let mut v: serde_json::Value = serde_json::from_slice(bundle_json).unwrap();
    let files = v["trust"][0]["files"].as_object_mut().unwrap();
    alter_length(files, "targets");
    *bundle_json = serde_json::to_vec(&v).unwrap();
}
