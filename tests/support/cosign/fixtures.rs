//! Real cosign fixtures (tests/fixtures/signatures) as verifier inputs, and the verifiers
//! configured for them, shared by `cosign_fixtures.rs` and the `attack_cosign_*.rs` files.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portcullis::refs::{Digest, RepoName};
use portcullis::trust::cosign::{
    CosignKeyConfig, CosignKeyVerifier, CosignKeylessConfig, CosignKeylessVerifier,
    KeylessIdentity, SctPolicy, SignedIdentity, TransparencyLog,
};
use portcullis::trust::signature::{Candidate, DigestVerifier, Evidence, Subject, Verdict};

use super::dir::read_dir_fixture;

/// 2026-12-01T00:00:00Z: after every fixture was made.
pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_796_083_200)
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/signatures")
}

pub fn ci(p: &str) -> PathBuf {
    fixtures().join("cosign-containers-image").join(p)
}

pub fn trusted_root() -> PathBuf {
    fixtures().join("sigstore/trusted_root.json")
}

pub fn key_verifier(key: &str, log: TransparencyLog) -> CosignKeyVerifier {
    let config = CosignKeyConfig {
        keys: vec![ci(key)],
        transparency_log: log,
        trusted_root: Some(trusted_root()),
        sigstore_tuf: None,
        signed_identity: SignedIdentity::MatchRepository,
    };
    config.validate("trust.test").expect("valid config");
    CosignKeyVerifier::new(&config, &std::env::temp_dir()).expect("verifier")
}

pub fn keyless_verifier(issuer: &str, subject: &str) -> CosignKeylessVerifier {
    let config = CosignKeylessConfig {
        trusted_root: Some(trusted_root()),
        sigstore_tuf: None,
        sct: SctPolicy::Required,
        identities: vec![KeylessIdentity {
            issuer: issuer.into(),
            subject: Some(subject.into()),
            subject_regex: None,
            claims: Default::default(),
        }],
        signed_identity: SignedIdentity::MatchRepository,
    };
    config.validate("trust.test").expect("valid config");
    CosignKeylessVerifier::new(&config, &std::env::temp_dir()).expect("verifier")
}

/// Verifies a `dir:` fixture as pulled from `registry/repository` (the repository the signature
/// was made for unless a test says otherwise). A fixture without `manifest.json` is checked
/// against the digest of an empty manifest.
pub fn verify_dir(v: &dyn DigestVerifier, dir: &str, registry: &str, repository: &str) -> Verdict {
    let (digest, candidate) = read_dir_fixture(&ci(dir));
    let digest = digest.unwrap_or_else(|| Digest::sha256_of(b""));
    verify(v, &[candidate], registry, repository, &digest)
}

pub fn verify(
    v: &dyn DigestVerifier,
    candidates: &[Candidate],
    registry: &str,
    repository: &str,
    digest: &Digest,
) -> Verdict {
    let repository: RepoName = repository.parse().expect("repository");
    let subject = Subject {
        registry,
        repository: &repository,
        digest,
    };
    v.verify(subject, candidates, now())
}

pub const HOST: &str = "192.168.64.2:5000";
pub const SINGLE: &str = "cosign-signed-single-sample";

pub fn vouched(v: Verdict) -> Evidence {
    match v {
        Verdict::Vouched(e) => e,
        Verdict::No(why) => panic!("expected vouched, refused: {why}"),
    }
}

pub fn refused(v: Verdict) -> String {
    match v {
        Verdict::No(why) => why,
        Verdict::Vouched(e) => panic!("expected refused, vouched: {e:?}"),
    }
}

/// The legacy fixture `dir`'s digest (of its manifest.json) and its signature layers' candidate.
pub fn dir_fixture(dir: &str) -> (Digest, Candidate) {
    let (digest, candidate) = read_dir_fixture(&ci(dir));
    (digest.expect("manifest.json"), candidate)
}

/// The real cosign v3 bundle and the digest it signs.
pub const BUNDLE_DIGEST: &str =
    "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";
pub const KUBEWARDEN: &str = "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";
pub const GITHUB: &str = "https://token.actions.githubusercontent.com";
pub const KUBEWARDEN_REPO: &str = "kubewarden/kubewarden-controller";

pub fn bundle_bytes() -> Vec<u8> {
    std::fs::read(fixtures().join("cosign-bundle/bundle_v03.json")).expect("bundle fixture")
}

/// The legacy keyless fixture: its repository and identity.
pub const FULCIO_DIR: &str = "dir-img-cosign-fulcio-rekor-valid";
pub const FULCIO_REPO: &str = "cosign-signed/fulcio-rekor-1";
pub const MITR: &str = "mitr@redhat.com";
pub const GITHUB_OAUTH: &str = "https://github.com/login/oauth";
/// The key + Rekor SET fixture and its repository.
pub const KEY_REKOR_DIR: &str = "dir-img-cosign-key-rekor-valid";
pub const KEY_REKOR_REPO: &str = "cosign-signed/key-1";

/// A keyless verifier from a full config (regexes, claims, another trusted root).
pub fn keyless_with(
    identities: Vec<KeylessIdentity>,
    trusted_root_json: Option<&str>,
) -> Result<CosignKeylessVerifier, String> {
    let config = CosignKeylessConfig {
        trusted_root: Some(trusted_root()),
        sigstore_tuf: None,
        sct: SctPolicy::Required,
        identities,
        signed_identity: SignedIdentity::MatchRepository,
    };
    config.validate("trust.test").map_err(|e| e.to_string())?;
    match trusted_root_json {
        Some(json) => CosignKeylessVerifier::with_trusted_root_json(&config, json),
        None => CosignKeylessVerifier::new(&config, &std::env::temp_dir()),
    }
    .map_err(|e| format!("{e:#}"))
}

/// A key verifier with another `signed_identity`.
pub fn key_verifier_with(key: &str, signed_identity: SignedIdentity) -> CosignKeyVerifier {
    let config = CosignKeyConfig {
        keys: vec![ci(key)],
        transparency_log: TransparencyLog::NotRequired,
        trusted_root: None,
        sigstore_tuf: None,
        signed_identity,
    };
    config.validate("trust.test").expect("valid config");
    CosignKeyVerifier::new(&config, &std::env::temp_dir()).expect("verifier")
}

/// Sets (or with `None` removes) an annotation on every layer of a legacy candidate.
pub fn set_annotation(c: &mut Candidate, key: &str, value: Option<&str>) {
    for l in &mut c.layers {
        match value {
            Some(v) => l.annotations.insert(key.to_string(), v.to_string()),
            None => l.annotations.remove(key),
        };
    }
}

/// The first layer's annotation.
pub fn annotation(c: &Candidate, key: &str) -> String {
    c.layers[0]
        .annotations
        .get(key)
        .cloned()
        .expect("annotation")
}

/// Edits a JSON document (an annotation or a bundle) in place.
pub fn edit_json(text: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut v: serde_json::Value = serde_json::from_str(text).expect("json");
    edit(&mut v);
    v.to_string()
}

/// A key-only verifier for a key file written by the test signer.
pub fn test_key_verifier(path: &Path) -> CosignKeyVerifier {
    let config = CosignKeyConfig {
        keys: vec![path.to_path_buf()],
        transparency_log: TransparencyLog::NotRequired,
        trusted_root: None,
        sigstore_tuf: None,
        signed_identity: SignedIdentity::MatchRepository,
    };
    CosignKeyVerifier::new(&config, &std::env::temp_dir()).expect("verifier")
}

/// A fresh test key and a key-only verifier that trusts it (the temp dir holds its `.pub`).
pub fn trusted_test_key() -> (
    super::signer::CosignTestKey,
    CosignKeyVerifier,
    tempfile::TempDir,
) {
    let key = super::signer::CosignTestKey::generate();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ci.pub");
    key.write_public_key(&path);
    let verifier = test_key_verifier(&path);
    (key, verifier, dir)
}

/// The registry the test signer's references name.
pub const LOCAL: &str = "127.0.0.1:5000";

/// One candidate, pulled as `LOCAL/repository@digest`.
pub fn verify_local(
    v: &dyn DigestVerifier,
    candidate: Candidate,
    repository: &str,
    digest: &Digest,
) -> Verdict {
    verify(v, &[candidate], LOCAL, repository, digest)
}

/// Refused, for a reason containing `expected`.
pub fn assert_refused(v: Verdict, expected: &str) {
    let why = refused(v);
    assert!(
        why.contains(expected),
        "expected a refusal naming {expected:?}, got: {why}"
    );
}

/// A keyless verifier for the test instance's trusted root (no CT log: `sct = "not-required"`)
/// trusting one e-mail identity.
pub fn test_keyless_verifier(root_json: &str, email: &str, issuer: &str) -> CosignKeylessVerifier {
    let config = CosignKeylessConfig {
        trusted_root: Some(PathBuf::from("test-instance/trusted_root.json")),
        sigstore_tuf: None,
        sct: SctPolicy::NotRequired,
        identities: vec![KeylessIdentity {
            issuer: issuer.into(),
            subject: Some(email.into()),
            subject_regex: None,
            claims: Default::default(),
        }],
        signed_identity: SignedIdentity::MatchRepository,
    };
    CosignKeylessVerifier::with_trusted_root_json(&config, root_json).expect("verifier")
}

/// The identity the keyless test signer's certificates carry in tests.
pub const EMAIL: &str = "release@example.com";
pub const ISSUER: &str = "https://issuer.example.com";
