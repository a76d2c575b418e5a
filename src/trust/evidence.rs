//! The evidence behind digest-vouching verdicts (cosign, Notation), on disk, so that a node
//! restarted with its registry unreachable, or an air-gapped one, can still vouch by signature.
//!
//! ```text
//! <cache.dir>/signatures/          0700
//!              <sha256 hex>.json   one (registry, repository, digest): the signature manifests
//!                                  that vouched and their blobs, exact bytes (base64), and
//!                                  what discovery saw
//!              tmp/                writes in progress; emptied at start
//! ```
//!
//! What is kept is evidence, never a verdict: no "yes" is stored. A file is only ever used by
//! handing its bytes to the verifiers configured NOW, at the current clock, exactly as if
//! discovery had just fetched them. So a change of keys, trusted root or trust policy drops
//! stored evidence by itself (a signature by a key that was removed from the config no longer
//! verifies), and nothing here needs to know what the configuration was. On read, every byte
//! is checked again as discovery checks it: the manifest must hash to its digest and name the
//! digest as its subject, each blob must hash to the digest and size its manifest gives, and
//! the file must be the one for the key asked about. A file that fails any of this (truncated,
//! edited, renamed) is ignored with a log line and never vouches.
//!
//! Writes are durable as elsewhere in the cache: temp file, fsync, rename, fsync the directory.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::discover::parse;
use super::signature::{ArtifactKind, Candidate, FoundVia, Layer};
use crate::refs::{Digest, RepoName};

/// Format version of the files; another version is ignored (and replaced when next online).
const VERSION: u32 = 1;

/// Largest evidence file read back: far above a few signature manifests and their envelopes
/// (each at most `signatures.max_manifest_bytes` / `max_blob_bytes`), far below memory trouble.
const MAX_FILE: u64 = 64 * 1024 * 1024;

/// One evidence file, as written.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceFile {
    pub version: u32,
    pub registry: String,
    pub repository: String,
    pub digest: String,
    /// Seconds since the epoch when the evidence was verified online (shown, never trusted).
    pub saved_at: u64,
    /// Discovery's one-line summary when it was fetched.
    pub discovery: String,
    pub candidates: Vec<StoredCandidate>,
}

/// A signature manifest and its blobs, in the manifest's layer order, exact bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredCandidate {
    pub manifest_digest: String,
    /// `referrers`, `tag_schema` or `cosign_tag`.
    pub found_via: String,
    /// base64 (standard alphabet, padded).
    pub manifest: String,
    pub blobs: Vec<String>,
}

/// Evidence read back and checked, ready for the verifiers.
#[derive(Debug, Clone)]
pub struct Stored {
    pub candidates: Vec<Candidate>,
    pub discovery: String,
    pub saved_at: SystemTime,
}

/// The evidence directory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// `portcullis check` reads a node's evidence and must not change it.
    writable: bool,
}

impl Store {
    /// Opens (creating, mode 0700) `<cache_dir>/signatures` and empties its `tmp/`.
    pub fn open(cache_dir: &Path) -> io::Result<Store> {
        let s = Store {
            root: cache_dir.join("signatures"),
            writable: true,
        };
        crate::cache::open_private(&[s.root.clone(), s.tmp()], &s.tmp(), "signature evidence")?;
        Ok(s)
    }

    /// The store under `cache_dir` as it is, read only (nothing created, written or removed).
    pub fn read_only(cache_dir: &Path) -> Store {
        Store {
            root: cache_dir.join("signatures"),
            writable: false,
        }
    }

    fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The file of one key: named by a hash, since repository names have slashes and
    /// registries colons; the key itself is inside and checked on read.
    pub fn path(&self, registry: &str, repo: &RepoName, digest: &Digest) -> PathBuf {
        let name = Digest::sha256_of(format!("{registry}\n{repo}\n{digest}").as_bytes());
        self.root.join(format!("{}.json", name.hex()))
    }

    /// Replaces the evidence of a key with `candidates` (those that vouched online).
    pub async fn save(
        &self,
        registry: &str,
        repo: &RepoName,
        digest: &Digest,
        discovery: &str,
        candidates: &[Candidate],
    ) -> io::Result<()> {
        if !self.writable {
            return Ok(());
        }
        let file = EvidenceFile {
            version: VERSION,
            registry: registry.to_owned(),
            repository: repo.to_string(),
            digest: digest.to_string(),
            saved_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            discovery: discovery.to_owned(),
            candidates: candidates.iter().map(encode).collect(),
        };
        let bytes = serde_json::to_vec(&file).map_err(io::Error::other)?;
        let this = self.clone();
        let path = self.path(registry, repo, digest);
        tokio::task::spawn_blocking(move || this.write_blocking(&path, &bytes))
            .await
            .map_err(io::Error::other)?
    }

    /// Writes raw evidence bytes (already checked by the caller: bundle import).
    pub fn write_blocking(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(self.tmp())?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        File::open(&self.root)?.sync_all()
    }

    /// Removes the evidence of a key (online, nothing vouches any more: a deleted signature).
    pub async fn remove(&self, registry: &str, repo: &RepoName, digest: &Digest) -> io::Result<()> {
        if !self.writable {
            return Ok(());
        }
        let path = self.path(registry, repo, digest);
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || match fs::remove_file(&path) {
            Ok(()) => File::open(&root)?.sync_all(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        })
        .await
        .map_err(io::Error::other)?
    }

    /// The raw file of a key, if there is one (bundle export).
    pub fn read_raw(&self, registry: &str, repo: &RepoName, digest: &Digest) -> Option<Vec<u8>> {
        fs::read(self.path(registry, repo, digest)).ok()
    }

    /// The evidence of a key: `Ok(None)` when there is none, `Err(why)` when the file is
    /// there but unusable (the caller logs it; it never vouches).
    pub async fn load(
        &self,
        registry: &str,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<Stored>, String> {
        let path = self.path(registry, repo, digest);
        let raw = tokio::task::spawn_blocking(move || read_bounded(&path))
            .await
            .map_err(|e| e.to_string())??;
        match raw {
            None => Ok(None),
            Some(raw) => decode(&raw, registry, repo, digest).map(Some),
        }
    }
}

fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>, String> {
    match fs::metadata(path) {
        Ok(m) if m.len() > MAX_FILE => {
            return Err(format!(
                "{} is {} bytes, more than {MAX_FILE}",
                path.display(),
                m.len()
            ));
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    }
    fs::read(path)
        .map(Some)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn encode(c: &Candidate) -> StoredCandidate {
    StoredCandidate {
        manifest_digest: c.manifest_digest.to_string(),
        found_via: via_label(c.found_via).to_owned(),
        manifest: b64().encode(&c.manifest),
        blobs: c.layers.iter().map(|l| b64().encode(&l.bytes)).collect(),
    }
}

fn via_label(v: FoundVia) -> &'static str {
    match v {
        FoundVia::Referrers => "referrers",
        FoundVia::TagSchema => "tag_schema",
        FoundVia::CosignTag => "cosign_tag",
    }
}

/// When an evidence file says it was verified online (seconds since the epoch), unchecked.
pub fn saved_at(raw: &[u8]) -> Option<u64> {
    serde_json::from_slice::<EvidenceFile>(raw)
        .ok()
        .map(|f| f.saved_at)
}

/// Parses and checks an evidence file for the key asked about (see the module comment).
pub fn decode(
    raw: &[u8],
    registry: &str,
    repo: &RepoName,
    digest: &Digest,
) -> Result<Stored, String> {
    let f: EvidenceFile =
        serde_json::from_slice(raw).map_err(|e| format!("not an evidence file: {e}"))?;
    if f.version != VERSION {
        return Err(format!("format version {} (want {VERSION})", f.version));
    }
    if f.registry != registry || f.repository != repo.as_str() || f.digest != digest.to_string() {
        return Err(format!(
            "it is the evidence of {}/{}@{}, not of {registry}/{repo}@{digest}",
            f.registry, f.repository, f.digest
        ));
    }
    let candidates = f
        .candidates
        .into_iter()
        .map(|c| candidate(c, digest))
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Stored {
        candidates,
        discovery: f.discovery,
        saved_at: UNIX_EPOCH + Duration::from_secs(f.saved_at),
    })
}

/// One stored candidate checked as discovery checks a fetched one (`discover::candidate`).
fn candidate(c: StoredCandidate, subject: &Digest) -> Result<Candidate, String> {
    let d: Digest = c
        .manifest_digest
        .parse()
        .map_err(|e| format!("manifest digest: {e}"))?;
    let found_via = match c.found_via.as_str() {
        "referrers" => FoundVia::Referrers,
        "tag_schema" => FoundVia::TagSchema,
        "cosign_tag" => FoundVia::CosignTag,
        other => return Err(format!("{d}: found via {other:?}")),
    };
    let manifest = Bytes::from(
        b64()
            .decode(&c.manifest)
            .map_err(|e| format!("{d}: manifest: {e}"))?,
    );
    let actual = d.of_same_algorithm(&manifest);
    if actual != d {
        return Err(format!("{d}: stored manifest bytes hash to {actual}"));
    }
    let m = parse::manifest(&manifest).map_err(|e| format!("{d}: {e}"))?;
    match (&m.subject, found_via) {
        (Some(s), _) if s != subject => {
            return Err(format!("{d}: its subject is {s}, not {subject}"));
        }
        (None, v) if v != FoundVia::CosignTag => {
            return Err(format!("{d}: a referrer without a subject"));
        }
        _ => {}
    }
    if m.kind == ArtifactKind::Other {
        return Err(format!("{d}: not a signature"));
    }
    if m.layers.len() != c.blobs.len() {
        return Err(format!(
            "{d}: {} blobs stored for {} layers",
            c.blobs.len(),
            m.layers.len()
        ));
    }
    let mut layers = Vec::with_capacity(m.layers.len());
    for (l, b) in m.layers.into_iter().zip(c.blobs) {
        let bytes = Bytes::from(
            b64()
                .decode(&b)
                .map_err(|e| format!("{d}: layer {}: {e}", l.digest))?,
        );
        parse::check_layer(&l, &bytes).map_err(|e| format!("{d}: stored {e}"))?;
        layers.push(Layer {
            media_type: l.media_type,
            digest: l.digest,
            annotations: l.annotations,
            bytes,
        });
    }
    Ok(Candidate {
        manifest_digest: d,
        manifest,
        kind: m.kind,
        subject: m.subject,
        annotations: m.annotations,
        found_via,
        layers,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// A referrer of `subject` holding one simple-signing blob `payload`, as discovery makes it.
    fn candidate(subject: &Digest, payload: &[u8]) -> Candidate {
        let blob = Digest::sha256_of(payload);
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": Digest::sha256_of(b"{}").to_string(), "size": 2},
            "layers": [{"mediaType": parse::SIMPLE_SIGNING, "digest": blob.to_string(),
                        "size": payload.len()}],
            "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": subject.to_string(), "size": 1},
        });
        let manifest = Bytes::from(serde_json::to_vec(&m).unwrap());
        let parsed = parse::manifest(&manifest).unwrap();
        Candidate {
            manifest_digest: Digest::sha256_of(&manifest),
            kind: parsed.kind,
            subject: parsed.subject,
            annotations: parsed.annotations,
            found_via: FoundVia::Referrers,
            layers: vec![Layer {
                media_type: parse::SIMPLE_SIGNING.to_owned(),
                digest: blob,
                annotations: BTreeMap::new(),
                bytes: Bytes::copy_from_slice(payload),
            }],
            manifest,
        }
    }

    const REG: &str = "registry.example.com";

    async fn saved(dir: &Path, d: &Digest, c: &Candidate) -> (Store, RepoName, Vec<u8>) {
        let store = Store::open(dir).unwrap();
        let repo: RepoName = "team/app".parse().unwrap();
        store
            .save(
                REG,
                &repo,
                d,
                "referrers API: 1 found",
                std::slice::from_ref(c),
            )
            .await
            .unwrap();
        let raw = fs::read(store.path(REG, &repo, d)).unwrap();
        (store, repo, raw)
    }

    #[tokio::test]
    async fn stored_evidence_reads_back_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let d = Digest::sha256_of(b"image");
        let c = candidate(&d, b"payload");
        let (store, repo, _) = saved(dir.path(), &d, &c).await;
        let got = store.load(REG, &repo, &d).await.unwrap().unwrap();
        assert_eq!(got.candidates.len(), 1);
        assert_eq!(got.candidates[0].manifest, c.manifest);
        assert_eq!(got.candidates[0].layers[0].bytes, c.layers[0].bytes);
        assert_eq!(got.candidates[0].kind, ArtifactKind::CosignSimpleSigning);
        let mode = fs::metadata(dir.path().join("signatures"))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o700
        );
        store.remove(REG, &repo, &d).await.unwrap();
        assert!(store.load(REG, &repo, &d).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn evidence_of_another_digest_or_altered_bytes_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Digest::sha256_of(b"a"), Digest::sha256_of(b"b"));
        let (store, repo, raw) = saved(dir.path(), &a, &candidate(&a, b"payload")).await;
        // Renamed to another digest's file.
        let e = decode(&raw, REG, &repo, &b).unwrap_err();
        assert!(e.contains("not of"), "{e}");
        // Truncated.
        let e = decode(&raw[..raw.len() / 2], REG, &repo, &a).unwrap_err();
        assert!(e.contains("not an evidence file"), "{e}");
        // A blob's bytes changed (still valid base64).
        let mut f: EvidenceFile = serde_json::from_slice(&raw).unwrap();
        f.candidates[0].blobs[0] = b64().encode(b"pay1oad");
        let e = decode(&serde_json::to_vec(&f).unwrap(), REG, &repo, &a).unwrap_err();
        assert!(e.contains("hashing to"), "{e}");
        // A referrer of another digest, its key rewritten to match: the subject decides.
        let (_, _, other) = saved(dir.path(), &b, &candidate(&b, b"payload")).await;
        let mut f: EvidenceFile = serde_json::from_slice(&other).unwrap();
        f.digest = a.to_string();
        let e = decode(&serde_json::to_vec(&f).unwrap(), REG, &repo, &a).unwrap_err();
        assert!(e.contains("its subject is"), "{e}");
        // Through the store: an error, never a candidate.
        fs::write(store.path(REG, &repo, &a), &raw[..10]).unwrap();
        assert!(store.load(REG, &repo, &a).await.is_err());
    }
}
