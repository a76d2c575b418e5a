//! `portcullis bundle` as the air-gap tests drive it (`tests/e2e_bundle.rs`,
//! `tests/e2e_tuf_bundle.rs`): export from a connected proxy's config and cache, import into a
//! node's, and the tools to look inside a bundle, alter it, and compare a node's state
//! byte for byte.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;

use super::clients::{Containerd, skopeo_pull};
use super::images::ImageInfo;
use super::portcullis::Portcullis;
use super::proc::{CmdOutput, run};

/// `portcullis bundle ARGS` with `config` and `cache` (the node's `cache.dir`).
pub fn bundle(config: &Path, cache: &Path, args: &[&str]) -> CmdOutput {
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

/// `portcullis bundle export -o OUT REFS...` with `proxy`'s config and cache; asserts it
/// worked and returns its summary line.
pub fn export(proxy: &Portcullis, out: &Path, refs: &[String]) -> String {
    let mut args = vec!["export", "-o", out.to_str().unwrap()];
    args.extend(refs.iter().map(String::as_str));
    let e = bundle(proxy.config_path(), &proxy.dir().join("cache"), &args);
    assert!(e.ok, "export failed:\n{}", e.combined());
    assert!(e.stdout.contains("exported"), "{}", e.stdout);
    e.stdout
}

/// `portcullis bundle import FILE` into `node`'s config and cache.
pub fn import(node: &Portcullis, file: &Path) -> CmdOutput {
    bundle(
        node.config_path(),
        &node.dir().join("cache"),
        &["import", file.to_str().unwrap()],
    )
}

/// Every file under `dir` (relative path -> bytes).
pub fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
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

/// The entries of a bundle (name -> bytes).
pub fn read_tar(file: &Path) -> BTreeMap<String, Vec<u8>> {
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
pub fn write_tar(
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

/// Changes one digit of the first signed target `"length":` in `role` (base64 in `files`, a
/// JSON object of bundle.json): the role's signature no longer matches its bytes.
pub fn alter_length(files: &mut serde_json::Map<String, serde_json::Value>, role: &str) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let raw = b64
        .decode(files[role].as_str().expect("a base64 string"))
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let i = text.find("\"length\":").expect("a target length") + "\"length\":".len();
    let mut bytes = text.into_bytes();
    let pos = (i..bytes.len())
        .find(|&k| bytes[k].is_ascii_digit())
        .unwrap();
    bytes[pos] = if bytes[pos] == b'9' {
        b'8'
    } else {
        bytes[pos] + 1
    };
    files.insert(role.into(), serde_json::Value::String(b64.encode(&bytes)));
}

/// What an air-gapped node that imported a bundle of `demo/app:v1` (`app`) and `demo/tool:v1`
/// (`tool`) from `registry` must do: serve both, to skopeo and to ctr, with their digests, and
/// still refuse `demo/app:unsigned`, saying `unsigned_reason`.
pub fn assert_node_serves(
    node: &Portcullis,
    registry: &str,
    app: &ImageInfo,
    tool: &ImageInfo,
    unsigned_reason: &str,
) {
    let p = skopeo_pull(&node.addr(), &format!("{registry}/demo/app:v1"), None);
    p.assert_ok("skopeo from the bundle");
    assert_eq!(p.digest.as_deref(), Some(app.digest.as_str()));
    let ctr = Containerd::start();
    let p = ctr.pull(&node.addr(), &format!("{registry}/demo/tool:v1"), None);
    p.assert_ok("ctr from the bundle");
    assert_eq!(p.digest.as_deref(), Some(tool.digest.as_str()));
    // Still enforcing: a tag the metadata does not sign is refused from the bundle's metadata.
    skopeo_pull(&node.addr(), &format!("{registry}/demo/app:unsigned"), None)
        .assert_refused("unsigned tag on the air-gapped node", unsigned_reason);
}
