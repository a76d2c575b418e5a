//! Air-gap bundles for a plain TUF trust source, with the real parts: a Distribution registry,
//! a TUF repository made with python-tuf and served over HTTP, skopeo and containerd.
//!
//! A connected Portcullis exports; the bundle carries the TUF metadata as exact bytes (root
//! chain, timestamp, snapshot, targets and the delegated role that signs a tag). An air-gapped
//! node, whose registry and TUF repository addresses point nowhere, imports it while `serve`
//! runs and serves the signed tags without a restart; an unsigned tag is still refused. A
//! newer bundle imported into a node that already trusts an older one is served at once too.
//! An older bundle (a rollback) and a bundle with a tampered TUF role are refused, and the
//! node's state stays byte-for-byte as it was.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::real::bundle::{
    alter_length, assert_node_serves, export, import, read_tar, tree, write_tar,
};
use support::real::images::{self, ImageSpec};
use support::real::tuf::{TufOpts, target, wait_manifest};
use support::real::*;

/// The exporting side: registry, python-tuf repository, Portcullis enforcing it.
struct Connected {
    reg: Registry,
    repo: TufRepo,
    proxy: Portcullis,
}

/// `demo/app:*` signed in `targets`, `demo/tool:*` by the ECDSA role `releases`.
fn spec(signed: &[(&str, &ImageInfo)]) -> Value {
    let (mut top, mut released) = (serde_json::Map::new(), serde_json::Map::new());
    for (name, img) in signed {
        let m = if name.starts_with("demo/tool:") {
            &mut released
        } else {
            &mut top
        };
        m.insert((*name).to_owned(), target(img));
    }
    json!({
        "keys": {"releases": "ecdsa"},
        "targets": top,
        "delegations": [{"name": "releases", "keys": ["releases"], "paths": ["demo/tool:*"],
                         "targets": released}]
    })
}

impl Connected {
    fn start(signed: &[(&str, &ImageInfo)], reg: Registry) -> Connected {
        let repo = TufRepo::new(&spec(signed));
        let proxy = repo.start_portcullis(&reg, "enforce", &TufOpts::default());
        Connected { reg, repo, proxy }
    }

    fn export(&self, out: &Path, images: &[&str]) -> String {
        let refs: Vec<String> = images
            .iter()
            .map(|i| format!("{}/{i}", self.reg.addr()))
            .collect();
        export(&self.proxy, out, &refs)
    }

    /// The air-gapped node's config: registry and TUF repository on ports nothing listens on.
    fn offline_config(&self) -> String {
        self.repo
            .portcullis_config(&self.reg, "enforce")
            .replace(
                &self.repo.metadata_url(),
                &format!("http://127.0.0.1:{}/metadata/", dead_port()),
            )
            .replace(
                &self.reg.url(),
                &format!("http://127.0.0.1:{}", dead_port()),
            )
    }
}

fn push(reg: &Registry, repo: &str, tag: &str) -> ImageInfo {
    let spec = ImageSpec::single(&format!("tuf bundle: {repo}:{tag}"));
    images::push(reg, repo, tag, &spec, images::Format::Oci)
}

#[test]
fn a_tuf_bundle_carries_signed_images_to_a_running_node_without_network() {
    let reg = Registry::start(RegistryAuth::None);
    let app = push(&reg, "demo/app", "v1");
    let tool = push(&reg, "demo/tool", "v1");
    push(&reg, "demo/app", "unsigned");
    let mut c = Connected::start(&[("demo/app:v1", &app), ("demo/tool:v1", &tool)], reg);
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("images.tar");
    let t = Instant::now();
    let summary = c.export(&file, &["demo/app:v1", "demo/tool:v1"]);
    eprintln!("export: {:?}", t.elapsed());
    assert!(
        summary.contains("trust metadata of 0 GUN(s) and 1 TUF repository(ies)"),
        "{summary}"
    );
    // The bundle carries the delegated role that signs demo/tool:v1, as exact bytes.
    let bj: Value = serde_json::from_slice(&read_tar(&file)["portcullis/bundle.json"]).unwrap();
    let files = bj["tuf"][0]["files"].as_object().unwrap();
    for name in [
        "root_history/1.root.json",
        "timestamp.json",
        "snapshot.json",
        "targets.json",
        "releases.json",
    ] {
        assert!(files.contains_key(name), "{name} not in {:?}", files.keys());
    }
    // The repository goes away; the node's addresses point nowhere anyway.
    c.repo.stop();

    let node = Portcullis::start(&c.offline_config());
    let app_ref = format!("{}/demo/app:v1", c.reg.addr());
    skopeo_pull(&node.addr(), &app_ref, None).assert_refused("nothing imported yet", "unreachable");
    let t = Instant::now();
    let i = import(&node, &file);
    eprintln!("import: {:?}", t.elapsed());
    assert!(i.ok, "import failed:\n{}", i.combined());
    assert!(
        i.stdout
            .contains("imported 2 image(s): trust metadata of 0 GUN(s) and 1 TUF repository(ies)"),
        "{}",
        i.stdout
    );

    // The running node re-verifies the imported state from its store: no restart.
    let t = Instant::now();
    let mut last = None;
    let picked_up = proc::wait_until(Duration::from_secs(30), || {
        let p = skopeo_pull(&node.addr(), &app_ref, None);
        let ok = p.ok;
        last = Some(p);
        ok
    });
    let p = last.unwrap();
    assert!(
        picked_up,
        "never served after the import:\n{p:?}\n{}",
        node.log()
    );
    eprintln!("first pull served after the import: {:?}", t.elapsed());
    // A delegated role (`releases`) signs demo/tool:v1.
    assert_node_serves(&node, &c.reg.addr(), &app, &tool, "not a target");
}

#[test]
fn older_or_tampered_tuf_bundles_are_refused_and_change_nothing() {
    let reg = Registry::start(RegistryAuth::None);
    let v1 = push(&reg, "demo/app", "v1");
    let v2 = push(&reg, "demo/app", "v2");
    let mut c = Connected::start(&[("demo/app:v1", &v1)], reg);
    let work = tempfile::tempdir().unwrap();
    let older = work.path().join("older.tar");
    c.export(&older, &["demo/app:v1"]);
    // Generation 2 signs v2: new targets, snapshot and timestamp versions.
    c.repo
        .publish(&spec(&[("demo/app:v1", &v1), ("demo/app:v2", &v2)]));
    let newer = work.path().join("newer.tar");
    c.export(&newer, &["demo/app:v1", "demo/app:v2"]);
    c.repo.stop();

    // A running node: it must follow each import, and nothing it does may hide a change.
    let node = Portcullis::start(&c.offline_config());
    let cache = node.dir().join("cache");
    let import = |f: &Path| import(&node, f);
    let served = |tag: &str| {
        let t = Instant::now();
        let (status, body) = wait_manifest(&node, "demo/app", tag, |s, _| s == 200);
        assert_eq!(status, 200, "demo/app:{tag} after the import: {body}");
        t.elapsed()
    };
    let refused = |what: &str, f: &Path, reason: &str| {
        let before = tree(&cache);
        let out = import(f);
        assert!(!out.ok, "{what}: imported:\n{}", out.combined());
        assert!(
            out.stderr.contains("refused") && out.stderr.contains(reason),
            "{what}: the reason should say {reason:?}:\n{}",
            out.stderr
        );
        eprintln!("{what}: {}", out.stderr.trim());
        assert_eq!(tree(&cache), before, "{what}: the node's state changed");
    };
    let ok = import(&older);
    assert!(ok.ok, "{}", ok.combined());
    served("v1");
    assert!(
        tree(&cache).keys().any(|p| p.starts_with("tuf/")),
        "TUF state was stored: {:?}",
        tree(&cache).keys()
    );

    // One signed byte of the newer targets role changed: its signature fails.
    let tampered = write_tar(work.path(), "tampered", &read_tar(&newer), |e| {
        let bj = e.get_mut("portcullis/bundle.json").unwrap();
        let mut v: Value = serde_json::from_slice(bj).unwrap();
        alter_length(
            v["tuf"][0]["files"].as_object_mut().unwrap(),
            "targets.json",
        );
        *bj = serde_json::to_vec(&v).unwrap();
    });
    refused("a tampered targets role", &tampered, "does not verify");

    let ok = import(&newer);
    assert!(ok.ok, "{}", ok.combined());
    // The node trusted generation 1 in memory; the store now holds generation 2.
    eprintln!("v2 served {:?} after the newer import", served("v2"));
    // The tampered bundle again: its versions are now the node's, so the verification reuses
    // the node's copies and never reads the altered role; it is refused all the same.
    refused(
        "the tampered bundle, its versions trusted",
        &tampered,
        "targets.json in the bundle (version 2) is not the copy of that version this node verified",
    );
    refused(
        "an older bundle",
        &older,
        "rollback detected for timestamp: trusted version 2 > new version 1",
    );
}
