//! `portcullis bundle export IMAGE... -o FILE`.
//!
//! Each image is pulled through an in-process [`Proxy`] built from the same config as `serve`:
//! the tag is resolved by the trust source, the manifest fetched by the signed digest, every
//! manifest and blob checked against its digest, exactly as for a node's pull (and the
//! machine's cache is warmed on the way). Only repositories in enforce mode with a Notary or
//! TUF source, or under an enforced `[[policy]]` with a cosign or Notation source (then the
//! signature evidence the pull verified is carried), can be exported: a bundle carries signed
//! content only. The tar is written under a
//! temporary name and renamed when complete.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, anyhow, bail};
use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;

use super::tuf::TufExports;
use super::{BUNDLE_JSON, BundleJson, FORMAT, GunMetadata, Image, Progress, human};
use crate::api::Proxy;
use crate::body::Body;
use crate::check::parse_image;
use crate::config::{Config, Mode, SourceConfig};
use crate::refs::{Digest, RepoName};
use crate::trust::notary::NotarySource;
use crate::upstream::MANIFEST_ACCEPT;

/// Writes a bundle of `images` to `out`. Returns a one-line summary.
pub async fn export(cfg: &Config, images: &[String], out: &Path) -> anyhow::Result<String> {
    if images.is_empty() {
        bail!("name at least one IMAGE (registry/repository:tag) to export");
    }
    let cache_dir = cfg.cache.dir.clone();
    let proxy = Proxy::new(cfg, &|registry, source| {
        crate::trust::build(registry, source, &cache_dir)
    })?;
    let progress = Progress::new();
    // Signature evidence must come from this run's own pulls (see `signatures::export`).
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty());
    let staging = tempfile::Builder::new()
        .prefix(".portcullis-bundle-")
        .tempdir_in(dir.unwrap_or(Path::new(".")))
        .context("a staging directory beside the output file")?;

    let mut bundle = BundleJson {
        format: FORMAT.to_string(),
        created: now_rfc3339(),
        images: Vec::new(),
        trust: Vec::new(),
        tuf: Vec::new(),
        signatures: Vec::new(),
        manifests: BTreeMap::new(),
    };
    let mut blobs: BTreeSet<(String, RepoName, Digest)> = BTreeSet::new();
    let mut manifest_bytes: BTreeMap<Digest, Bytes> = BTreeMap::new();
    let mut guns: BTreeSet<String> = BTreeSet::new();
    let mut tuf = TufExports::default();
    for image in images {
        let r = parse_image(image, cfg)?;
        let reg = cfg
            .registry(r.registry.as_deref())
            .ok_or_else(|| anyhow!("{image}: registry not configured in portcullis"))?;
        let policy = reg.policy_for(r.repo.as_str());
        // Under a `[[policy]]` with a cosign or Notation source, the signature evidence goes
        // in the bundle instead of tag metadata.
        let by_signature = super::signatures::rule(cfg, &reg.name, &r.repo, policy.mode).is_some();
        let notary = match (by_signature, policy.mode, policy.source) {
            (true, ..) => None,
            (false, Mode::Enforce, Some((_, SourceConfig::Notary(n)))) => Some(n),
            (false, Mode::Enforce, Some((_, SourceConfig::Tuf(t)))) => {
                tuf.add(&reg.name, t, &r.repo, &r.tag);
                None
            }
            (false, mode, _) => bail!(
                "{image}: only repositories in enforce mode with a Notary or TUF source, or under an enforced [[policy]] with a cosign or Notation source, can be bundled (this one: mode {mode:?}); a bundle carries signed content only"
            ),
        };
        progress.say(format_args!("{image}: resolving the signed digest"));
        let (digest, media_type, bytes) =
            manifest(&proxy, &reg.name, &r.repo, r.tag.as_str()).await?;
        bundle.images.push(Image {
            registry: reg.name.clone(),
            repository: r.repo.to_string(),
            tag: r.tag.to_string(),
            digest: digest.to_string(),
        });
        if by_signature {
            // The pull above verified the signatures online and stored what vouched.
            let ev = super::signatures::export(
                &cfg.cache.dir,
                &reg.name,
                &r.repo,
                &digest,
                image,
                started,
            )?;
            progress.say(format_args!("{image}: signature evidence of {digest}"));
            bundle.signatures.push(ev);
        }
        // Walk index -> manifests -> blobs.
        let mut queue = vec![(digest, media_type, bytes)];
        while let Some((d, mt, bytes)) = queue.pop() {
            let ch = crate::closure::children(&bytes)
                .with_context(|| format!("{image}: manifest {d} cannot be followed"))?;
            bundle.manifests.insert(d.to_string(), mt);
            manifest_bytes.insert(d, bytes);
            for m in ch.manifests {
                if !manifest_bytes.contains_key(&m) {
                    let (d, mt, b) = manifest(&proxy, &reg.name, &r.repo, &m.to_string()).await?;
                    queue.push((d, mt, b));
                }
            }
            for b in ch.blobs {
                blobs.insert((reg.name.clone(), r.repo.clone(), b));
            }
        }
        let Some(notary) = notary else {
            continue;
        };
        let source = NotarySource::new(&reg.name, notary, &cfg.cache.dir)?;
        let gun = source.gun(&r.repo);
        if guns.insert(gun.clone()) {
            progress.say(format_args!("{image}: trust metadata of {gun}"));
            let (gun, files) = source.export_metadata(&r.repo).await?;
            let b64 = base64::engine::general_purpose::STANDARD;
            bundle.trust.push(GunMetadata {
                registry: reg.name.clone(),
                gun,
                files: files.into_iter().map(|(k, v)| (k, b64.encode(v))).collect(),
            });
        }
    }

    bundle.tuf = tuf.export(&cfg.cache.dir, &progress).await?;

    // Blobs (deduplicated across images) to files in the staging directory.
    let mut blob_files: BTreeMap<Digest, (std::path::PathBuf, u64)> = BTreeMap::new();
    let total = blobs.len();
    for (i, (registry, repo, d)) in blobs.into_iter().enumerate() {
        if blob_files.contains_key(&d) {
            continue;
        }
        let path = staging.path().join(d.hex());
        let len = blob(&proxy, &registry, &repo, &d, &path).await?;
        progress.say(format_args!("blob {}/{total} {d} {}", i + 1, human(len)));
        blob_files.insert(d, (path, len));
    }

    let tmp_out = staging.path().join("bundle.tar");
    let blob_bytes: u64 = blob_files.values().map(|(_, n)| n).sum();
    write_tar(&tmp_out, &bundle, &manifest_bytes, &blob_files)?;
    std::fs::rename(&tmp_out, out)
        .with_context(|| format!("moving the bundle to {}", out.display()))?;
    Ok(format!(
        "exported {} image(s), {} manifest(s), {} blob(s) ({}), trust metadata of {} GUN(s) and {} TUF repository(ies){} to {}",
        bundle.images.len(),
        manifest_bytes.len(),
        blob_files.len(),
        human(blob_bytes),
        bundle.trust.len(),
        bundle.tuf.len(),
        signature_count(&bundle),
        out.display()
    ))
}

/// `, signature evidence of N image(s)` when there is any (older summaries unchanged).
fn signature_count(b: &BundleJson) -> String {
    match b.signatures.len() {
        0 => String::new(),
        n => format!(", signature evidence of {n} image(s)"),
    }
}

/// GET through the in-process proxy: the response, or the OCI error's message.
async fn get(
    proxy: &Proxy,
    registry: &str,
    path: &str,
    manifest: bool,
) -> anyhow::Result<Response<Body>> {
    let ns: String = url::form_urlencoded::byte_serialize(registry.as_bytes()).collect();
    let mut req = Request::builder()
        .method(Method::GET)
        .uri(format!("{path}?ns={ns}"));
    if manifest {
        for a in MANIFEST_ACCEPT {
            req = req.header(header::ACCEPT, *a);
        }
    }
    let resp = proxy.handle(req.body(())?).await;
    if resp.status() != StatusCode::OK {
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let msg = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["errors"][0]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        bail!("{registry}{path}: {status}: {msg}");
    }
    Ok(resp)
}

/// A manifest by tag or digest: its verified digest, media type and bytes.
async fn manifest(
    proxy: &Proxy,
    registry: &str,
    repo: &RepoName,
    reference: &str,
) -> anyhow::Result<(Digest, String, Bytes)> {
    let resp = get(
        proxy,
        registry,
        &format!("/v2/{repo}/manifests/{reference}"),
        true,
    )
    .await?;
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let digest: Digest = header("docker-content-digest")
        .ok_or_else(|| anyhow!("{repo}:{reference}: no Docker-Content-Digest"))?
        .parse()?;
    let media_type = header("content-type").unwrap_or_default();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| anyhow!("{repo}@{reference}: {e}"))?
        .to_bytes();
    // The proxy checked it; checked again here because the bundle's content names rest on it.
    if digest.of_same_algorithm(&bytes) != digest {
        bail!("{repo}@{reference}: bytes do not match {digest}");
    }
    Ok((digest, media_type, bytes))
}

/// A blob to `path`, streamed and verified by the proxy (a mismatch ends the body with an
/// error, which fails the export). Returns its length.
async fn blob(
    proxy: &Proxy,
    registry: &str,
    repo: &RepoName,
    d: &Digest,
    path: &Path,
) -> anyhow::Result<u64> {
    let resp = get(proxy, registry, &format!("/v2/{repo}/blobs/{d}"), false).await?;
    let mut body = resp.into_body();
    let mut file = tokio::fs::File::create(path).await?;
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| anyhow!("{repo}@{d}: {e}"))?;
        if let Ok(data) = frame.into_data() {
            len += data.len() as u64;
            file.write_all(&data).await?;
        }
    }
    file.flush().await?;
    Ok(len)
}

fn write_tar(
    out: &Path,
    bundle: &BundleJson,
    manifests: &BTreeMap<Digest, Bytes>,
    blobs: &BTreeMap<Digest, (std::path::PathBuf, u64)>,
) -> anyhow::Result<()> {
    let file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    let mut add = |name: &str, data: &[u8]| -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_cksum();
        tar.append_data(&mut h, name, data)
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    add(
        "index.json",
        &serde_json::to_vec_pretty(&oci_index(bundle, manifests))?,
    )?;
    add(BUNDLE_JSON, &serde_json::to_vec_pretty(bundle)?)?;
    for (d, bytes) in manifests {
        add(
            &format!("blobs/{}/{}", d.algorithm().name(), d.hex()),
            bytes,
        )?;
    }
    let mut tar_ref = tar;
    for (d, (path, _)) in blobs {
        let name = format!("blobs/{}/{}", d.algorithm().name(), d.hex());
        tar_ref.append_path_with_name(path, &name)?;
    }
    let mut w = tar_ref.into_inner()?;
    w.flush()?;
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(())
}

/// The OCI layout's `index.json`: one descriptor per image, named as `skopeo` and `oras` read
/// an image layout (`org.opencontainers.image.ref.name`).
fn oci_index(bundle: &BundleJson, bytes: &BTreeMap<Digest, Bytes>) -> serde_json::Value {
    let manifests: Vec<serde_json::Value> = bundle
        .images
        .iter()
        .map(|i| {
            serde_json::json!({
                "mediaType": bundle.manifests.get(&i.digest).cloned().unwrap_or_default(),
                "digest": i.digest,
                "size": i.digest.parse::<Digest>().ok().and_then(|d| bytes.get(&d)).map_or(0, Bytes::len),
                "annotations": {
                    "org.opencontainers.image.ref.name": i.tag,
                    "io.portcullis.registry": i.registry,
                    "io.portcullis.repository": i.repository,
                }
            })
        })
        .collect();
    serde_json::json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests })
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
