//! Air-gap bundles with the real parts: Distribution registry, notary-server + notary-signer,
//! tags signed with `notary addhash`, skopeo and containerd.
//!
//! A bundle is exported on a connected Portcullis and imported on a node whose registry and
//! notary addresses point nowhere (nothing listens there); the node then serves the signed
//! images to skopeo and ctr. Bundles that were tampered with (a blob byte, a missing blob,
//! altered metadata) or are older than what the node trusts are refused with the reason, and
//! the node's cache and trust state stay byte-for-byte as they were.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use support::real::images::{self, ImageSpec};
use support::real::proc::{CmdOutput, run};
use support::real::*;

/// `portcullis bundle ARGS` with `config` and `cache` (the node's `cache.dir`).
fn bundle(config: &Path, cache: &Path, args: &[&str]) -> CmdOutput {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cmd.env("PORTCULLIS_CACHE__DIR", cache)
        .env("RUST_LOG", "warn")
        .arg("bundle")
        .arg(args[0])
        .arg("--config")
        .arg(config)
        .args(&args[1..]);
    run(&mut cmd)
}

/// A node whose registry and notary server addresses point nowhere: the connected config with
/// both addresses replaced by ports nothing listens on.
fn offline_config(c: &Connected) -> String {
    Portcullis::config_for(&c.reg, &c.notary, "enforce")
        .replace(&c.reg.url(), &format!("http://127.0.0.1:{}", free_port()))
        .replace(
            &c.notary.url(),
            &format!("https://127.0.0.1:{}", free_port()),
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
        let mut args = vec!["export", "-o", out.to_str().unwrap()];
        args.extend(refs.iter().map(String::as_str));
        let e = bundle(
            self.proxy.config_path(),
            &self.proxy.dir().join("cache"),
            &args,
        );
        assert!(e.ok, "export failed:\n{}", e.combined());
        assert!(e.stdout.contains("exported"), "{}", e.stdout);
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
    let i = bundle(
        node.config_path(),
        &node.dir().join("cache"),
        &["import", file.to_str().unwrap()],
    );
    assert!(i.ok, "import failed:\n{}", i.combined());
    assert!(
        i.stdout
            .contains("imported 2 image(s): trust metadata of 2 GUN(s)"),
        "{}",
        i.stdout
    );

    let p = skopeo_pull(&node.addr(), &app_ref, None);
    p.assert_ok("skopeo from the bundle");
    assert_eq!(p.digest.as_deref(), Some(app.digest.as_str()));
    let ctr = Containerd::start();
    let tool_ref = format!("{}/demo/tool:v1", c.reg.addr());
    let p = ctr.pull(&node.addr(), &tool_ref, None);
    p.assert_ok("ctr from the bundle");
    assert_eq!(p.digest.as_deref(), Some(tool.digest.as_str()));
    // Still enforcing: a tag the metadata does not sign is refused from the bundle's metadata.
    skopeo_pull(
        &node.addr(),
        &format!("{}/demo/app:unsigned", c.reg.addr()),
        None,
    )
    .assert_refused("unsigned tag on the air-gapped node", "not signed");
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

/// Every file under `dir` (relative path -> bytes).
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn read_tar(file: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut a = tar::Archive::new(std::fs::File::open(file).unwrap());
    let mut out = BTreeMap::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        out.insert(name, data);
    }
    out
}

/// A copy of `entries`, changed by `change`, as a tar under `dir`.
fn write_tar(
    dir: &Path,
    name: &str,
    entries: &BTreeMap<String, Vec<u8>>,
    change: impl FnOnce(&mut BTreeMap<String, Vec<u8>>),
) -> PathBuf {
    let mut entries = entries.clone();
    change(&mut entries);
    let path = dir.join(format!("{name}.tar"));
    let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
    for (n, data) in &entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_cksum();
        b.append_data(&mut h, n, data.as_slice()).unwrap();
    }
    b.finish().unwrap();
    path
}

/// Changes one signed byte of the targets role inside bundle.json (a tag's length).
fn alter_targets(bundle_json: &mut Vec<u8>) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut v: serde_json::Value = serde_json::from_slice(bundle_json).unwrap();
    let files = v["trust"][0]["files"].as_object_mut().unwrap();
    let targets = b64.decode(files["targets"].as_str().unwrap()).unwrap();
    let text = String::from_utf8(targets).unwrap();
    let i = text.find("\"length\":").expect("a target length") + "\"length\":".len();
    let mut bytes = text.into_bytes();
    // A digit of the signed length, changed: the signature no longer matches.
    let pos = (i..bytes.len())
        .find(|&k| bytes[k].is_ascii_digit())
        .unwrap();
    bytes[pos] = if bytes[pos] == b'9' {
        b'8'
    } else {
        bytes[pos] + 1
    };
    files.insert(
        "targets".into(),
        serde_json::Value::String(b64.encode(&bytes)),
    );
    *bundle_json = serde_json::to_vec(&v).unwrap();
}
