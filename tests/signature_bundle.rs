//! Air-gap bundles of cosign-signed images, with the real parts: the Distribution registry 2.8,
//! a cosign `.sig` made by the project's test signer, the Portcullis binary under a
//! `[[policy]]` whose only source is that cosign key, and skopeo.
//!
//! `portcullis bundle export` on a connected node carries the signature evidence its pull
//! verified; `bundle import` on a node whose registry address points nowhere verifies it with
//! that node's own key before storing it; the node then pulls the image by digest with no
//! registry at all. A node configured with another key refuses the bundle, and nothing of it
//! is imported. By tag only a node with `offline_tag_memory` pulls it: the import remembers
//! the bundle's tags as the exporting node's registry named them.

mod support;

use std::path::Path;

use support::cosign::signer::CosignTestKey;
use support::real::bundle::{export, import, read_tar, tree};
use support::real::cosign::KeySigned;
use support::real::*;

const REPO: &str = "team/app";

fn config(reg: &Registry, key: &Path) -> String {
    support::real::cosign::ci_key_config(reg, key)
}

/// The same node config with the registry's address replaced by a port nothing listens on.
fn air_gapped(reg: &Registry, key: &Path) -> String {
    config(reg, key).replace(&reg.url(), &format!("http://127.0.0.1:{}", dead_port()))
}

#[test]
fn a_cosign_signed_image_travels_in_a_bundle_and_pulls_with_no_registry() {
    let KeySigned {
        reg,
        img,
        reference,
        key,
        ..
    } = &KeySigned::start(REPO, "v1", "sig bundle v1");
    let connected = Portcullis::start_with(&config(reg, key), Portcullis::opts_for(reg));

    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("images.tar");
    let summary = export(&connected, &file, &[format!("{reference}:v1")]);
    assert!(
        summary.contains("signature evidence of 1 image(s)"),
        "{summary}"
    );
    let entries = read_tar(&file);
    let bundle_json = String::from_utf8_lossy(&entries["portcullis/bundle.json"]).into_owned();
    assert!(bundle_json.contains("\"signatures\""), "{bundle_json}");

    // A node that trusts another key: refused, nothing written.
    let other_dir = tempfile::tempdir().unwrap();
    let other_key = other_dir.path().join("ci.pub");
    CosignTestKey::generate().write_public_key(&other_key);
    let wrong = Portcullis::start_with(&air_gapped(reg, &other_key), PortcullisOpts::default());
    let before = tree(&wrong.dir().join("cache"));
    let refused = import(&wrong, &file);
    assert!(!refused.ok, "{}", refused.combined());
    assert!(
        refused
            .combined()
            .contains("signature evidence does not satisfy any_of: ci-key"),
        "{}",
        refused.combined()
    );
    assert_eq!(
        tree(&wrong.dir().join("cache")),
        before,
        "a refused bundle leaves the node's cache as it was"
    );

    // The node with the same key, never connected to the registry.
    let node = Portcullis::start_with(&air_gapped(reg, key), PortcullisOpts::default());
    let by_digest = format!("{reference}@{}", img.digest);
    skopeo_pull(&node.addr(), &by_digest, None)
        .assert_refused("before the import: no evidence", "no stored evidence");
    let done = import(&node, &file);
    assert!(done.ok, "{}", done.combined());
    assert!(
        done.stdout.contains("signature evidence of 1 image(s)"),
        "{}",
        done.stdout
    );
    let got = skopeo_pull(&node.addr(), &by_digest, None);
    got.assert_ok("skopeo by digest on the air-gapped node");
    assert_eq!(got.digest.as_deref(), Some(img.digest.as_str()));
    assert!(
        node.log()
            .contains("signature vouched OFFLINE from stored evidence"),
        "{}",
        node.log()
    );
    // By tag, only the registry binds it: without offline_tag_memory the node cannot.
    let by_tag = format!("{reference}:v1");
    skopeo_pull(&node.addr(), &by_tag, None)
        .assert_refused("by tag, no offline_tag_memory", "cannot be asked");

    // A node that sets offline_tag_memory remembers the bundle's tags as the exporting
    // node's registry named them, and pulls by tag with no registry at all.
    let remembering = air_gapped(reg, key).replace(
        "any_of = [\"ci-key\"]",
        "any_of = [\"ci-key\"]\noffline_tag_memory = \"30d\"",
    );
    let tags_node = Portcullis::start_with(&remembering, PortcullisOpts::default());
    skopeo_pull(&tags_node.addr(), &by_tag, None)
        .assert_refused("by tag before the import", "never seen vouched here");
    let done = import(&tags_node, &file);
    assert!(done.ok, "{}", done.combined());
    let got = skopeo_pull(&tags_node.addr(), &by_tag, None);
    got.assert_ok("skopeo by tag on the air-gapped node with offline_tag_memory");
    assert_eq!(got.digest.as_deref(), Some(img.digest.as_str()));
    assert!(
        tags_node
            .log()
            .contains("tag resolved by offline_tag_memory"),
        "{}",
        tags_node.log()
    );
}
