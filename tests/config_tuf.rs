//! Mistakes in `[registries.tuf]` stop `portcullis` at start with one message naming the key
//! (README "Trust source: plain TUF"); none gets as far as a port or a network request.

use std::path::Path;
use std::process::{Command, Output};

const REGISTRY: &str =
    "[[registries]]\nname = \"127.0.0.1:5000\"\nupstream = \"http://127.0.0.1:5000\"\n";

/// `portcullis check -c portcullis.toml IMAGE` in `dir` (loads and validates like `serve`).
fn check(dir: &Path, image: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cmd.args(["check", "-c", "portcullis.toml", image])
        .current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("PORTCULLIS_") {
            cmd.env_remove(k);
        }
    }
    cmd.output().expect("run the portcullis binary")
}

fn config(tuf: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    // A root file that exists: preflight checks that root_file can be read.
    std::fs::write(dir.path().join("root.json"), b"{}").unwrap();
    let text = format!(
        "[cache]\ndir = {:?}\n{REGISTRY}[registries.tuf]\nroot_file = {:?}\n{tuf}",
        cache.display().to_string(),
        dir.path().join("root.json").display().to_string()
    );
    std::fs::write(dir.path().join("portcullis.toml"), text).unwrap();
    dir
}

fn refused(tuf: &str, needles: &[&str]) {
    let dir = config(tuf);
    let out = check(dir.path(), "127.0.0.1:5000/demo/app:v1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_ne!(
        out.status.code(),
        Some(0),
        "{tuf}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for n in needles {
        assert!(
            stderr.contains(n) || stdout.contains(n),
            "{tuf}: {n:?} not in\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
    }
}

#[test]
fn each_bad_key_is_named() {
    refused(
        "metadata_url = \"ftp://x/metadata/\"\n",
        &["registries[0].tuf.metadata_url", "ftp"],
    );
    refused(
        "metadata_url = \"http://127.0.0.1:9/m/\"\ntarget_name = \"{repository}/{tag}\"\n",
        &["registries[0].tuf.target_name"],
    );
    refused(
        "metadata_url = \"http://127.0.0.1:9/m/\"\ntarget_name = \"{tag}\"\n",
        &[
            "registries[0].tuf.target_name",
            "one TUF repository per image repository",
        ],
    );
    refused(
        "metadata_url = \"http://127.0.0.1:9/m/\"\nrefresh_interval = \"soon\"\n",
        &["registries[0].tuf.refresh_interval"],
    );
    refused(
        "metadata_url = \"http://127.0.0.1:9/m/\"\nroot_sha256 = \"abc\"\n",
        &["registries[0].tuf.root_sha256", "64 hex"],
    );
    refused(
        "metadata_url = \"http://127.0.0.1:9/m/\"\n[registries.tuf.max_bytes]\ntimestamp = 0\n",
        &["registries[0].tuf.max_bytes.timestamp"],
    );
}

#[test]
fn notary_and_tuf_on_one_registry_is_an_error_not_a_fallback() {
    refused(
        "metadata_url = \"http://127.0.0.1:9/m/\"\n[registries.notary]\nserver = \"https://127.0.0.1:4443\"\n",
        &["registries[0].tuf", "both notary and tuf"],
    );
}

#[test]
fn a_root_file_that_is_not_a_tuf_root_or_not_the_pinned_one_is_refused() {
    // `{}` is no TUF root: refused when the source is built, naming the file.
    refused(
        "metadata_url = \"http://127.0.0.1:9/m/\"\n",
        &["root_file", "not a valid, self-signed TUF root"],
    );
    refused(
        &format!(
            "metadata_url = \"http://127.0.0.1:9/m/\"\nroot_sha256 = \"{}\"\n",
            "0".repeat(64)
        ),
        &["root_sha256 pins"],
    );
}
