//! Test images: built offline and deterministically by `tests/harness/mkoci.py` into OCI layouts
//! (cached under the target dir), pushed with skopeo, described by what the registry serves.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::clients::{ClientResult, SkopeoEnv};
use super::proc::{require_tool, run, run_ok, tempdir, unique};
use super::registry::{Registry, sha256_hex};

const MKOCI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/harness/mkoci.py");
const PYTHON: &str = "/usr/bin/python3";

/// What mkoci.py builds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageKind {
    /// One linux/amd64 image: static busybox; its command prints the note (`cat /etc/testbed-note`).
    Single,
    /// OCI index: linux/amd64 (busybox) + linux/arm64 (files only).
    Multi,
    /// linux/amd64 with an extra layer of `mb` MiB of seeded random data (tar, or gzip level 1).
    Large { mb: u32, gzip: bool },
}

/// An image to build: kind + the note it prints when run (makes images with the same kind differ).
#[derive(Clone, Debug)]
pub struct ImageSpec {
    pub kind: ImageKind,
    pub note: String,
}

impl ImageSpec {
    pub fn single(note: &str) -> Self {
        ImageSpec {
            kind: ImageKind::Single,
            note: note.into(),
        }
    }
    pub fn multi(note: &str) -> Self {
        ImageSpec {
            kind: ImageKind::Multi,
            note: note.into(),
        }
    }
    pub fn large(mb: u32, gzip: bool) -> Self {
        ImageSpec {
            kind: ImageKind::Large { mb, gzip },
            note: format!("portcullis large {mb}MiB"),
        }
    }
}

/// Manifest formats for pushing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// As built: OCI manifest / OCI index.
    Oci,
    /// Docker schema2 (`skopeo copy --format v2s2`), as `docker push` stores images.
    DockerV2s2,
}

/// A pushed tag as the registry serves it.
#[derive(Clone, Debug)]
pub struct ImageInfo {
    pub repo: String,
    pub tag: String,
    /// `sha256:...` of the manifest bytes (= Docker-Content-Digest).
    pub digest: String,
    /// Manifest length in bytes (what a DCT target records).
    pub size: u64,
    pub media_type: String,
    /// The manifest bytes.
    pub manifest: Vec<u8>,
    /// For an index: (architecture, child manifest digest).
    pub children: Vec<(String, String)>,
}

impl ImageInfo {
    /// The hex part of the digest.
    pub fn sha256_hex(&self) -> &str {
        self.digest.strip_prefix("sha256:").unwrap_or(&self.digest)
    }
    /// The digest of the linux/`arch` child of an index.
    pub fn child(&self, arch: &str) -> Option<&str> {
        self.children
            .iter()
            .find(|(a, _)| a == arch)
            .map(|(_, d)| d.as_str())
    }
}

/// Builds (or reuses) an OCI layout holding `spec` under the tag `layout-tag`.
/// Layouts are deterministic, so they are cached under `CARGO_TARGET_TMPDIR/portcullis-oci`.
pub fn build(spec: &ImageSpec) -> (PathBuf, &'static str) {
    require_tool(PYTHON, "python3");
    require_tool("/bin/busybox", "busybox-static");
    let script = fs::read(MKOCI).expect("read tests/harness/mkoci.py");
    let (kind, extra): (&str, Vec<String>) = match &spec.kind {
        ImageKind::Single => ("single", vec![]),
        ImageKind::Multi => ("multi", vec![]),
        ImageKind::Large { mb, gzip } => {
            let mut v = vec!["--size-mb".to_string(), mb.to_string()];
            if *gzip {
                v.push("--gzip".into());
            }
            ("large", v)
        }
    };
    let key = format!(
        "{}|{kind}|{}|{}",
        sha256_hex(&script),
        extra.join(" "),
        spec.note
    );
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("portcullis-oci");
    fs::create_dir_all(&cache).expect("mkdir layout cache");
    let dir = cache.join(&sha256_hex(key.as_bytes())[..16]);
    if !dir.join("index.json").exists() {
        let tmp = cache.join(format!(".build-{}-{}", std::process::id(), unique()));
        let _ = fs::remove_dir_all(&tmp);
        run_ok(
            std::process::Command::new(PYTHON)
                .arg(MKOCI)
                .arg(&tmp)
                .arg("img")
                .arg(kind)
                .args(&extra)
                .args(["--note", &spec.note])
                .env("BUSYBOX", "/bin/busybox"),
        );
        // a concurrent builder may have won: its result is the same bytes
        if fs::rename(&tmp, &dir).is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
    }
    (dir, "img")
}

/// Pushes `spec` to `registry` as `repo:tag` with skopeo and returns what the registry serves.
pub fn push(
    registry: &Registry,
    repo: &str,
    tag: &str,
    spec: &ImageSpec,
    format: Format,
) -> ImageInfo {
    let (layout, src_tag) = build(spec);
    if format == Format::Oci && matches!(spec.kind, ImageKind::Large { gzip: false, .. }) {
        // skopeo always gzips uncompressed layers on the way to a registry (containers/image
        // 5.23): upload the layout's bytes as they are instead
        upload_layout(registry, repo, tag, &layout, src_tag);
        return info(registry, repo, tag);
    }
    let env = SkopeoEnv::new(&registry.addr(), &registry.addr(), registry.creds());
    let mut cmd = env.command();
    cmd.args(["copy", "--all", "--quiet", "--dest-tls-verify=false"]);
    if let Some((u, p)) = registry.creds() {
        cmd.arg(format!("--dest-creds={u}:{p}"));
    }
    if format == Format::DockerV2s2 {
        cmd.args(["--format", "v2s2"]);
    }
    cmd.arg(format!("oci:{}:{src_tag}", layout.display()))
        .arg(format!("docker://{}/{repo}:{tag}", registry.addr()));
    run_ok(&mut cmd);
    info(registry, repo, tag)
}

/// Uploads the image tagged `layout_tag` in an OCI layout byte for byte with the registry API
/// (blobs: POST + PUT, skipping those present; child manifests by digest; the top one by `tag`).
pub fn upload_layout(registry: &Registry, repo: &str, tag: &str, layout: &Path, layout_tag: &str) {
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).expect("read index.json"))
            .expect("parse index.json");
    let top = index["manifests"]
        .as_array()
        .and_then(|l| {
            l.iter().find(|m| {
                m.pointer("/annotations/org.opencontainers.image.ref.name")
                    .and_then(|v| v.as_str())
                    == Some(layout_tag)
            })
        })
        .unwrap_or_else(|| panic!("{layout_tag} not in {}", layout.display()))
        .clone();
    let blob = |dg: &str| {
        layout
            .join("blobs/sha256")
            .join(dg.trim_start_matches("sha256:"))
    };
    let put_manifest = |desc: &serde_json::Value, reference: &str| {
        let dg = desc["digest"].as_str().unwrap();
        let mt = desc["mediaType"].as_str().unwrap();
        let m: serde_json::Value = serde_json::from_slice(&fs::read(blob(dg)).unwrap()).unwrap();
        let mut blobs: Vec<&str> = vec![];
        if let Some(c) = m["config"]["digest"].as_str() {
            blobs.push(c);
        }
        for l in m["layers"].as_array().into_iter().flatten() {
            blobs.push(l["digest"].as_str().unwrap());
        }
        for b in blobs {
            let head = registry.curl(
                repo,
                &["-o", "/dev/null", "-w", "%{http_code}", "-I"],
                &format!("/v2/{repo}/blobs/{b}"),
            );
            if head.stdout.trim() == "200" {
                continue;
            }
            let post = registry.curl(
                repo,
                &["-o", "/dev/null", "-D", "-", "-X", "POST"],
                &format!("/v2/{repo}/blobs/uploads/"),
            );
            let loc = post
                .stdout
                .lines()
                .find_map(|l| {
                    l.split_once(':')
                        .filter(|(k, _)| k.eq_ignore_ascii_case("location"))
                        .map(|(_, v)| v.trim().to_string())
                })
                .unwrap_or_else(|| panic!("no upload location: {}", post.combined()));
            let url = if loc.starts_with("http") {
                loc
            } else {
                format!("{}{loc}", registry.url())
            };
            let sep = if url.contains('?') { '&' } else { '?' };
            let path = blob(b).display().to_string();
            let put = run(Command::new("curl")
                .args([
                    "-sS",
                    "-f",
                    "-X",
                    "PUT",
                    "-H",
                    "Content-Type: application/octet-stream",
                    "-T",
                    &path,
                ])
                .args(registry.curl_auth(repo))
                .arg(format!("{url}{sep}digest={b}")));
            assert!(put.ok, "blob upload {b} failed: {}", put.combined());
        }
        let path = blob(dg).display().to_string();
        let put = run(Command::new("curl")
            .args([
                "-sS",
                "-f",
                "-X",
                "PUT",
                "-H",
                &format!("Content-Type: {mt}"),
                "--data-binary",
                &format!("@{path}"),
            ])
            .args(registry.curl_auth(repo))
            .arg(format!(
                "{}/v2/{repo}/manifests/{reference}",
                registry.url()
            )));
        assert!(
            put.ok,
            "manifest upload {repo}:{reference} failed: {}",
            put.combined()
        );
    };
    if top["mediaType"].as_str() == Some("application/vnd.oci.image.index.v1+json") {
        let idx: serde_json::Value =
            serde_json::from_slice(&fs::read(blob(top["digest"].as_str().unwrap())).unwrap())
                .unwrap();
        for child in idx["manifests"].as_array().into_iter().flatten() {
            put_manifest(child, child["digest"].as_str().unwrap());
        }
        // the index itself: no config or layers of its own
        let path = blob(top["digest"].as_str().unwrap()).display().to_string();
        let put = run(Command::new("curl")
            .args([
                "-sS",
                "-f",
                "-X",
                "PUT",
                "-H",
                "Content-Type: application/vnd.oci.image.index.v1+json",
            ])
            .args(["--data-binary", &format!("@{path}")])
            .args(registry.curl_auth(repo))
            .arg(format!("{}/v2/{repo}/manifests/{tag}", registry.url())));
        assert!(put.ok, "index upload failed: {}", put.combined());
    } else {
        put_manifest(&top, tag);
    }
}

/// What the registry serves for `repo:tag`.
pub fn info(registry: &Registry, repo: &str, tag: &str) -> ImageInfo {
    let m = registry.get_manifest(repo, tag);
    let mut children = Vec::new();
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&m.bytes)
        && let Some(list) = v.get("manifests").and_then(|x| x.as_array())
    {
        for c in list {
            let arch = c
                .pointer("/platform/architecture")
                .and_then(|x| x.as_str())
                .unwrap_or("");
            let dg = c.get("digest").and_then(|x| x.as_str()).unwrap_or("");
            children.push((arch.to_string(), dg.to_string()));
        }
    }
    ImageInfo {
        repo: repo.into(),
        tag: tag.into(),
        digest: m.digest,
        size: m.bytes.len() as u64,
        media_type: m.media_type,
        manifest: m.bytes,
        children,
    }
}

/// Re-points `repo:tag` at the content of `repo:from_tag` (tampering with a signed tag);
/// returns what `tag` serves now.
pub fn retag(registry: &Registry, repo: &str, from_tag: &str, tag: &str) -> ImageInfo {
    let env = SkopeoEnv::new(&registry.addr(), &registry.addr(), registry.creds());
    let mut cmd = env.command();
    cmd.args([
        "copy",
        "--all",
        "--quiet",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
    ]);
    if let Some((u, p)) = registry.creds() {
        cmd.arg(format!("--src-creds={u}:{p}"))
            .arg(format!("--dest-creds={u}:{p}"));
    }
    cmd.arg(format!("docker://{}/{repo}:{from_tag}", registry.addr()))
        .arg(format!("docker://{}/{repo}:{tag}", registry.addr()));
    run_ok(&mut cmd);
    info(registry, repo, tag)
}

/// The standard set (as the testbed's seed-image.sh): `v1` (OCI, amd64 busybox, prints
/// "portcullis v1"), `multi` (OCI index amd64+arm64), `v1-docker` (v1 as Docker schema2),
/// `unsigned`, `qa-only`; plus `large` when `large_mb` > 0.
pub struct Seeded {
    pub repo: String,
    pub images: BTreeMap<String, ImageInfo>,
}

impl Seeded {
    /// The image pushed as `tag` (panics when it was not).
    pub fn get(&self, tag: &str) -> &ImageInfo {
        self.images
            .get(tag)
            .unwrap_or_else(|| panic!("tag {tag} was not seeded in {}", self.repo))
    }
}

/// The note `v1` prints when run.
pub const V1_NOTE: &str = "portcullis v1 (signed)";

/// Runs `cat /etc/testbed-note` with `run` (a client's run of an image) and asserts that it
/// succeeds and prints `note`.
pub fn assert_note(what: &str, run: impl FnOnce(&[&str]) -> ClientResult, note: &str) {
    let out = run(&["cat", "/etc/testbed-note"]);
    out.assert_ok(what);
    assert!(out.output.contains(note), "{what}: {}", out.output);
}

/// Pushes the standard set into `repo`.
pub fn seed(registry: &Registry, repo: &str, large_mb: u32) -> Seeded {
    let mut images = BTreeMap::new();
    let v1 = ImageSpec::single(V1_NOTE);
    let list: Vec<(&str, ImageSpec, Format)> = vec![
        ("v1", v1.clone(), Format::Oci),
        (
            "multi",
            ImageSpec::multi("portcullis multi-arch (signed)"),
            Format::Oci,
        ),
        ("v1-docker", v1, Format::DockerV2s2),
        (
            "unsigned",
            ImageSpec::single("portcullis UNSIGNED image"),
            Format::Oci,
        ),
        (
            "qa-only",
            ImageSpec::single("portcullis qa-only image"),
            Format::Oci,
        ),
    ];
    for (tag, spec, fmt) in list {
        images.insert(tag.to_string(), push(registry, repo, tag, &spec, fmt));
    }
    if large_mb > 0 {
        images.insert(
            "large".into(),
            push(
                registry,
                repo,
                "large",
                &ImageSpec::large(large_mb, false),
                Format::Oci,
            ),
        );
    }
    Seeded {
        repo: repo.into(),
        images,
    }
}

/// A scratch directory for a test (tempdir under /tmp, removed on Drop).
pub fn scratch() -> tempfile::TempDir {
    tempdir("pc-scratch-")
}
