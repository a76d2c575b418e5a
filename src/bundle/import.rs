//! `portcullis bundle import FILE`: all or nothing.
//!
//! 1. Unpack into a staging directory inside `cache.dir` (same filesystem, so entries can be
//!    renamed into the store): only the layout's own names are accepted, each blob is hashed
//!    while it is copied and must match its name.
//! 2. Verify each GUN's metadata, and each TUF repository's, against this node's pinned roots
//!    and stored state (an older bundle is a rollback), resolve each image's tag in it (it
//!    must give the digest the bundle names), or verify an image's signature evidence with
//!    this node's cosign / Notation verifiers under its own `[[policy]]`, and walk every
//!    manifest to check that each blob it reaches is there.
//! 3. Only then commit: manifests, blobs (by rename), signature evidence, trust state per GUN
//!    and per TUF repository.
//!
//! A refusal at 1 or 2 leaves the cache and the trust state as they were: the staging
//! directory is removed, nothing else was touched.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use base64::Engine as _;
use bytes::Bytes;
use sha2::Digest as _;

use super::{BUNDLE_JSON, BundleJson, FORMAT, Progress, TufTrust, human};
use crate::cache::{ManifestStore, adopt_blob};
use crate::config::{Config, SourceConfig};
use crate::refs::{Algorithm, Digest, RepoName, Tag};
use crate::trust::notary::NotarySource;
use crate::trust::notary::bundle::Verified;

/// Largest `bundle.json` / `index.json` / `oci-layout` read (metadata of many GUNs fits).
const MAX_JSON: u64 = 64 << 20;

/// Imports `file` into the cache and trust state of `cfg`'s node. Returns a summary.
pub async fn import(cfg: &Config, file: &Path) -> anyhow::Result<String> {
    if cfg.cache.max_size == 0 {
        bail!("the cache is off (cache.max_size = 0): there is nowhere to import a bundle to");
    }
    let progress = Progress::new();
    fs::create_dir_all(&cfg.cache.dir)
        .with_context(|| format!("creating {}", cfg.cache.dir.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".bundle-import-")
        .tempdir_in(&cfg.cache.dir)?;
    let (path, stage, limit) = (
        file.to_path_buf(),
        staging.path().to_path_buf(),
        cfg.cache.max_size,
    );
    progress.say(format_args!("unpacking and hashing {}", file.display()));
    let unpacked = tokio::task::spawn_blocking(move || unpack(&path, &stage, limit))
        .await
        .map_err(|e| anyhow!("unpacking: {e}"))?
        .with_context(|| format!("bundle {} refused; nothing was imported", file.display()))?;
    let plan = verify(cfg, &unpacked, &progress)
        .await
        .with_context(|| format!("bundle {} refused; nothing was imported", file.display()))?;
    commit(cfg, &unpacked, &plan, &progress).await
}

/// What the tar held, checked for names and hashes.
struct Unpacked {
    bundle: BundleJson,
    /// Every blob (manifests too) by digest: its staged file and length.
    blobs: BTreeMap<Digest, (PathBuf, u64)>,
}

/// What verification decided to import.
struct Plan<'a> {
    trust: Vec<Verified>,
    tuf: TufTrust<'a>,
    /// Signature evidence verified with this node's verifiers, and its bytes.
    signatures: Vec<(super::SignatureEvidence, Vec<u8>)>,
    /// Tags of signature-vouched images whose `[[policy]]` entry on this node sets
    /// `offline_tag_memory`: remembered as the exporting node's registry named them.
    remembered: Vec<super::signatures::Remembered>,
    manifests: BTreeMap<Digest, String>,
    blobs: BTreeSet<Digest>,
    images: usize,
}

fn unpack(file: &Path, stage: &Path, limit: u64) -> anyhow::Result<Unpacked> {
    let f = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut archive = tar::Archive::new(io::BufReader::new(f));
    let mut bundle: Option<BundleJson> = None;
    let mut blobs = BTreeMap::new();
    let mut total = 0u64;
    let mut seen = BTreeSet::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        if !entry.header().entry_type().is_file() {
            // Directories are harmless noise from other tar writers; links are not.
            if entry.header().entry_type().is_dir() && name.starts_with("blobs") {
                continue;
            }
            bail!("entry {name:?} is not a regular file");
        }
        if !seen.insert(name.clone()) {
            bail!("entry {name:?} appears twice");
        }
        match name.as_str() {
            "oci-layout" | "index.json" => {
                read_json(&mut entry, &name)?;
            }
            BUNDLE_JSON => {
                let raw = read_json(&mut entry, &name)?;
                bundle = Some(serde_json::from_slice(&raw).context(BUNDLE_JSON)?);
            }
            _ => {
                let d = blob_name(&name)
                    .ok_or_else(|| anyhow!("entry {name:?} is not part of a portcullis bundle"))?;
                total += entry.size();
                if total > limit {
                    bail!(
                        "its blobs exceed cache.max_size ({}); raise it or bundle fewer images",
                        human(limit)
                    );
                }
                let dest = stage.join(format!("{}-{}", d.algorithm().name(), d.hex()));
                let len = copy_hashed(&mut entry, &dest, &d)?;
                blobs.insert(d, (dest, len));
            }
        }
    }
    let bundle = bundle.ok_or_else(|| anyhow!("no {BUNDLE_JSON}: not a portcullis bundle"))?;
    if bundle.format != FORMAT {
        bail!("format {:?}; this portcullis reads {FORMAT}", bundle.format);
    }
    Ok(Unpacked { bundle, blobs })
}

fn read_json(entry: &mut impl Read, name: &str) -> anyhow::Result<Vec<u8>> {
    let mut raw = Vec::new();
    entry.take(MAX_JSON + 1).read_to_end(&mut raw)?;
    if raw.len() as u64 > MAX_JSON {
        bail!("{name} is larger than {}", human(MAX_JSON));
    }
    Ok(raw)
}

/// `blobs/<algorithm>/<hex>` -> the digest; anything else is not a blob.
fn blob_name(name: &str) -> Option<Digest> {
    let rest = name.strip_prefix("blobs/")?;
    let (alg, hex) = rest.split_once('/')?;
    format!("{alg}:{hex}").parse().ok()
}

/// Copies a tar entry to `dest` while hashing it; refuses bytes that are not `d`.
fn copy_hashed(entry: &mut impl Read, dest: &Path, d: &Digest) -> anyhow::Result<u64> {
    let mut out = io::BufWriter::new(File::create(dest)?);
    let mut h256 = sha2::Sha256::new();
    let mut h512 = sha2::Sha512::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut len = 0u64;
    loop {
        let n = entry.read(&mut buf)?;
        if n == 0 {
            break;
        }
        match d.algorithm() {
            Algorithm::Sha256 => h256.update(&buf[..n]),
            Algorithm::Sha512 => h512.update(&buf[..n]),
        }
        out.write_all(&buf[..n])?;
        len += n as u64;
    }
    let actual = match d.algorithm() {
        Algorithm::Sha256 => hex::encode(h256.finalize()),
        Algorithm::Sha512 => hex::encode(h512.finalize()),
    };
    if actual != d.hex() {
        bail!(
            "blob {d} does not match its digest (its bytes hash to {actual}): altered or corrupt"
        );
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(len)
}

async fn verify<'a>(
    cfg: &'a Config,
    u: &'a Unpacked,
    progress: &Progress,
) -> anyhow::Result<Plan<'a>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    // Metadata per GUN, verified as if this node's notary server had served it.
    let mut trust: BTreeMap<String, Verified> = BTreeMap::new();
    for g in &u.bundle.trust {
        let (_, notary) = match source_of(cfg, &g.registry, None)? {
            Src::Notary(r, n) => (r, n),
            Src::Tuf(..) => bail!(
                "the bundle has Notary metadata for {}, whose registry {} uses a TUF source on \
                 this node",
                g.gun,
                g.registry
            ),
        };
        let source = NotarySource::new(&g.registry, notary, &cfg.cache.dir)?;
        let mut files = BTreeMap::new();
        for (role, data) in &g.files {
            let raw = b64
                .decode(data)
                .map_err(|e| anyhow!("trust metadata of {}: {role} is not base64: {e}", g.gun))?;
            files.insert(role.clone(), raw);
        }
        progress.say(format_args!("verifying the trust metadata of {}", g.gun));
        let v = source
            .verify_bundle(&g.gun, files)
            .await
            .map_err(|e| anyhow!("trust metadata of {} does not verify: {e}", g.gun))?;
        if v.first_use {
            tracing::warn!(gun = %g.gun, "bundle import: no trust state for this GUN yet; its root was accepted under trust_pinning (tofu, or a pinned key or CA)");
        }
        trust.insert(g.gun.clone(), v);
    }
    // Each image: its tag must be signed for the digest the bundle names.
    let mut manifests = BTreeMap::new();
    let mut blobs = BTreeSet::new();
    let mut used_guns = BTreeSet::new();
    let mut tuf = TufTrust::new(&u.bundle.tuf, &cfg.cache.dir);
    let mut signatures = Vec::new();
    let mut remembered = Vec::new();
    for img in &u.bundle.images {
        let repo: RepoName = img.repository.parse()?;
        let tag: Tag = img.tag.parse()?;
        let shown = format!("{}/{repo}:{tag}", img.registry);
        // Vouched by signatures on the digest: the evidence must satisfy this node's policy.
        if let Some(ev) = u.bundle.signatures.iter().find(|e| {
            (&e.registry, &e.repository, &e.digest) == (&img.registry, &img.repository, &img.digest)
        }) {
            progress.say(format_args!("verifying the signature evidence of {shown}"));
            let raw = super::signatures::verify(cfg, ev, &shown).await?;
            remembered.extend(super::signatures::remembered(cfg, img, &raw)?);
            signatures.push((ev.clone(), raw));
            walk(u, &img.digest.parse()?, &shown, &mut manifests, &mut blobs)?;
            continue;
        }
        let target = match source_of(cfg, &img.registry, Some(&repo))? {
            Src::Notary(registry, notary) => {
                let gun = NotarySource::new(registry, notary, &cfg.cache.dir)?.gun(&repo);
                let v = trust.get(&gun).ok_or_else(|| {
                    anyhow!("{shown}: the bundle has no trust metadata for {gun}")
                })?;
                used_guns.insert(gun);
                v.resolve(&repo, &tag)
                    .map_err(|e| anyhow!("{shown}: {e}"))?
            }
            Src::Tuf(registry, t) => tuf
                .resolve(registry, t, &repo, &tag, progress)
                .await
                .map_err(|e| anyhow!("{shown}: {e}"))?,
        };
        if target.digest.to_string() != img.digest {
            bail!(
                "{shown}: the bundle names {}, but its signed metadata says {}",
                img.digest,
                target.digest
            );
        }
        let root_len = u.blobs.get(&target.digest).map(|(_, n)| *n);
        if let (Some(signed), Some(have)) = (target.length, root_len)
            && signed != have
        {
            bail!("{shown}: manifest is {have} bytes, signed length is {signed}");
        }
        walk(u, &target.digest, &shown, &mut manifests, &mut blobs)?;
    }
    tuf.check_unread()?;
    let trust = trust
        .into_iter()
        .filter(|(g, _)| used_guns.contains(g))
        .map(|(_, v)| v)
        .collect();
    if signatures.len() != u.bundle.signatures.len() {
        bail!("the bundle carries signature evidence for a digest none of its images names");
    }
    Ok(Plan {
        trust,
        tuf,
        signatures,
        remembered,
        manifests,
        blobs,
        images: u.bundle.images.len(),
    })
}

/// Every manifest and blob reachable from `root` must be in the bundle.
fn walk(
    u: &Unpacked,
    root: &Digest,
    shown: &str,
    manifests: &mut BTreeMap<Digest, String>,
    blobs: &mut BTreeSet<Digest>,
) -> anyhow::Result<()> {
    let mut queue = vec![root.clone()];
    while let Some(d) = queue.pop() {
        if manifests.contains_key(&d) {
            continue;
        }
        let (path, _) = u
            .blobs
            .get(&d)
            .ok_or_else(|| anyhow!("{shown}: manifest {d} is missing from the bundle"))?;
        let bytes = fs::read(path)?;
        let ch = crate::closure::children(&bytes)
            .map_err(|e| anyhow!("{shown}: manifest {d} cannot be followed: {e}"))?;
        let media_type = media_type_of(&bytes)
            .or_else(|| u.bundle.manifests.get(&d.to_string()).cloned())
            .unwrap_or_default();
        manifests.insert(d, media_type);
        queue.extend(ch.manifests);
        for b in ch.blobs {
            if !u.blobs.contains_key(&b) {
                bail!("{shown}: blob {b} is missing from the bundle");
            }
            blobs.insert(b);
        }
    }
    Ok(())
}

/// The manifest's own `mediaType` (what the registry would have sent as Content-Type).
fn media_type_of(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    v.get("mediaType")?.as_str().map(str::to_string)
}

/// The trust source of a registry (or of one of its repositories) on this node.
enum Src<'a> {
    Notary(&'a str, &'a crate::config::NotaryConfig),
    Tuf(&'a str, &'a crate::config::TufConfig),
}

/// The trust source that applies to `registry` (and `repo`, when given) on this node.
fn source_of<'a>(
    cfg: &'a Config,
    registry: &str,
    repo: Option<&RepoName>,
) -> anyhow::Result<Src<'a>> {
    let reg = cfg
        .registries
        .iter()
        .find(|r| r.name == registry)
        .ok_or_else(|| anyhow!("registry {registry} is not configured on this node"))?;
    let source = match repo {
        Some(repo) => reg.policy_for(repo.as_str()).source.map(|(_, s)| s),
        None => reg.source(),
    };
    match source {
        Some(SourceConfig::Notary(n)) => Ok(Src::Notary(&reg.name, n)),
        Some(SourceConfig::Tuf(t)) => Ok(Src::Tuf(&reg.name, t)),
        None => bail!("registry {registry} has no trust source on this node"),
    }
}

async fn commit(
    cfg: &Config,
    u: &Unpacked,
    plan: &Plan<'_>,
    progress: &Progress,
) -> anyhow::Result<String> {
    // Content first, trust state last: content without trust is never served, and a failure
    // half way leaves the node trusting nothing new.
    let store = ManifestStore::open(&cfg.cache.dir)?;
    for (d, mt) in &plan.manifests {
        let (path, _) = &u.blobs[d];
        let bytes = Bytes::from(fs::read(path)?);
        store
            .put(d, Some(mt.as_str()).filter(|m| !m.is_empty()), bytes)
            .await?;
    }
    let mut bytes = 0;
    for (i, d) in plan.blobs.iter().enumerate() {
        let (path, len) = &u.blobs[d];
        adopt_blob(&cfg.cache.dir, d, path).with_context(|| format!("storing blob {d}"))?;
        bytes += len;
        progress.say(format_args!(
            "blob {}/{} {d} {}",
            i + 1,
            plan.blobs.len(),
            human(*len)
        ));
    }
    super::signatures::commit(&cfg.cache.dir, &plan.signatures)?;
    super::signatures::commit_tags(&cfg.cache.dir, &plan.remembered)?;
    for v in &plan.trust {
        v.commit()?;
    }
    plan.tuf.commit().await?;
    let ignored = u
        .blobs
        .len()
        .saturating_sub(plan.manifests.len() + plan.blobs.len());
    Ok(format!(
        "imported {} image(s): trust metadata of {} GUN(s) and {} TUF repository(ies), {}{} manifest(s), {} blob(s) ({}){}",
        plan.images,
        plan.trust.len(),
        plan.tuf.len(),
        match plan.signatures.len() {
            0 => String::new(),
            n => format!("signature evidence of {n} image(s), "),
        },
        plan.manifests.len(),
        plan.blobs.len(),
        human(bytes),
        if ignored > 0 {
            format!("; {ignored} file(s) reachable from no signed image were left out")
        } else {
            String::new()
        }
    ))
}
