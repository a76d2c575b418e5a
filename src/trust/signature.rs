//! The seam between finding signatures in the registry and verifying them (cosign, Notation).
//!
//! Discovery (referrers API, referrers tag schema, cosign's `sha256-<hex>.sig` tag) fetches
//! every candidate signature manifest and the blobs it names, checks their digests, and hands
//! them here as [`Candidate`]s. A [`DigestVerifier`] then decides, as a pure function of those
//! bytes, its configured keys / roots / policy and a fixed "now", whether any candidate vouches
//! for the digest. Keeping the verifier pure means every refusal is table-testable on real
//! fixtures with time fixed, and no verifier ever talks to the network.

use std::collections::BTreeMap;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::future::BoxFuture;

use crate::refs::{Digest, RepoName};

/// What a candidate's own manifest says it is (from its `artifactType`, config media type and
/// layer media types; an index entry's `artifactType` is only a hint and is never used here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArtifactKind {
    /// cosign's legacy simple-signing layer (`application/vnd.dev.cosign.simplesigning.v1+json`)
    /// with `dev.cosignproject.cosign/signature` and friends as layer annotations.
    CosignSimpleSigning,
    /// A Sigstore bundle (`application/vnd.dev.sigstore.bundle.v0.3+json`, and v0.1/v0.2).
    SigstoreBundle,
    /// A Notation signature (`application/vnd.cncf.notary.signature`), JWS envelope.
    NotationJws,
    /// A Notation signature, COSE_Sign1 envelope.
    NotationCose,
    /// Anything else (SBOMs, attestations of other tools, ...): never a signature.
    Other,
}

/// Where discovery found a candidate (shown by `check`, logged with verdicts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FoundVia {
    /// `GET /v2/<repo>/referrers/<digest>`.
    Referrers,
    /// The referrers tag schema: `manifests/sha256-<hex>` (an index).
    TagSchema,
    /// cosign's legacy tag `sha256-<hex>.sig`.
    CosignTag,
}

/// One blob a candidate manifest names, with its bytes (digest already checked).
#[derive(Debug, Clone)]
pub struct Layer {
    pub media_type: String,
    pub digest: Digest,
    pub annotations: BTreeMap<String, String>,
    pub bytes: Bytes,
}

/// One signature manifest found for a digest, with the blobs it names.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Digest of `manifest` (checked).
    pub manifest_digest: Digest,
    /// The manifest bytes exactly as fetched.
    pub manifest: Bytes,
    pub kind: ArtifactKind,
    /// The manifest's own `subject` digest (cosign's legacy `.sig` manifests have none).
    pub subject: Option<Digest>,
    /// The manifest's own annotations (Notation puts the signing certificates' thumbprints
    /// in `io.cncf.notary.x509chain.thumbprint#S256`).
    pub annotations: BTreeMap<String, String>,
    pub found_via: FoundVia,
    /// The layers, in manifest order, with their bytes.
    pub layers: Vec<Layer>,
}

/// What is being vouched for.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The registry host as clients name it (containerd's `?ns=`), e.g. `registry.example.com`.
    pub registry: &'a str,
    /// The repository path as the registry sees it (no host).
    pub repository: &'a RepoName,
    /// The manifest digest the tag resolved to, or that was pulled by digest.
    pub digest: &'a Digest,
}

/// Why a digest is trusted: enough for the log line and `portcullis check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// The signature manifest that vouched.
    pub candidate: Digest,
    /// e.g. `cosign legacy`, `cosign bundle v0.3`, `notation jws`.
    pub format: String,
    /// Who signed: a key's name or fingerprint, a keyless identity and issuer, a certificate
    /// subject.
    pub signer: String,
    /// The verified signing time, when there is evidence of one (Rekor, RFC 3161 timestamp).
    pub signed_at: Option<SystemTime>,
    /// Extra facts for `check` (log index, timestamp authority, ...).
    pub details: Vec<(String, String)>,
}

/// A verifier's answer for one digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Vouched(Evidence),
    /// No candidate vouched: why, in words a person can act on (one clause per refused
    /// candidate, or "no cosign signature found").
    No(String),
}

/// A source that vouches for digests (cosign key, cosign keyless, Notation), as opposed to a
/// [`super::TrustSource`], which binds tags to digests.
pub trait DigestVerifier: Send + Sync {
    /// Brings trust material fetched at run time up to date before [`Self::verify`] (a
    /// keyless source's trusted root from TUF); `Err` says why the source cannot vouch now.
    /// Sources configured from files only have nothing to do.
    fn prepare(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    /// Whether candidates of this kind are this verifier's business (discovery skips fetching
    /// blobs nobody asked for).
    fn accepts(&self, kind: ArtifactKind) -> bool;

    /// Decides from the candidates alone. `now` is fixed by the caller (tests pin it).
    fn verify(&self, subject: Subject<'_>, candidates: &[Candidate], now: SystemTime) -> Verdict;
}
