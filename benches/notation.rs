//! Per-signature Notation verification cost (`cargo bench --bench notation`): the whole
//! `NotationVerifier::verify` for one candidate (manifest, envelope, chain parsing,
//! signature and chain checks, policy steps), for
//! - a real notation JWS signature (RSA-PSS 2048 / PS256, self-signed certificate;
//!   tests/fixtures/signatures/notation, `e2e-valid-signature`), and
//! - a COSE ECDSA P-256 signature from the test signer (leaf, intermediate, root).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::time::SystemTime;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use portcullis::refs::{Digest, RepoName};
use portcullis::trust::notation::NotationVerifier;
use portcullis::trust::signature::{
    ArtifactKind, Candidate, DigestVerifier, FoundVia, Layer, Subject, Verdict,
};

#[path = "../tests/support/notation_signer/mod.rs"]
#[allow(dead_code)]
mod notation_signer;

use notation_signer::{LeafKey, NotationSigner, SCOPE, SignOptions, write_trust_policy};

fn fixture_jws() -> (Digest, Candidate, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/signatures/notation");
    let layout = root.join("registry/oci_layout/e2e-valid-signature/blobs/sha256");
    let read = |hex: &str| Bytes::from(std::fs::read(layout.join(hex)).unwrap());
    let manifest = read("90ceaff260d657d797c408ac73564a9c7bb9d86055877c2a811f0e63b8c6524f");
    let envelope = read("c9af07e038b2b1a463e648986ad7273157511ffeba0b689f33e5472bae471f50");
    let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let subject: Digest = m["subject"]["digest"].as_str().unwrap().parse().unwrap();
    let cand = Candidate {
        manifest_digest: Digest::sha256_of(&manifest),
        manifest,
        kind: ArtifactKind::NotationJws,
        subject: Some(subject.clone()),
        annotations: notation_signer::annotations_of(&m),
        found_via: FoundVia::Referrers,
        layers: vec![Layer {
            media_type: "application/jose+json".into(),
            digest: Digest::sha256_of(&envelope),
            annotations: BTreeMap::new(),
            bytes: envelope,
        }],
    };
    let pem = std::fs::read_to_string(root.join("config/localkeys/e2e.crt")).unwrap();
    (subject, cand, pem)
}

fn verifier(dir: &Path, root_pem: &str) -> NotationVerifier {
    let cfg = write_trust_policy(
        dir,
        &serde_json::json!({"version": "1.0", "trustPolicies": [{"name": "bench",
            "registryScopes": ["*"], "signatureVerification": {"level": "strict"},
            "trustStores": ["ca:bench"], "trustedIdentities": ["*"]}]}),
        &[("ca", "bench", root_pem)],
    );
    NotationVerifier::new(&cfg).unwrap()
}

fn bench(c: &mut Criterion) {
    let repo: RepoName = "team/app".parse().unwrap();
    let registry = SCOPE.split('/').next().unwrap();
    let now = humantime::parse_rfc3339("2025-06-01T00:00:00Z").unwrap();

    let (digest, cand, pem) = fixture_jws();
    let dir = tempfile::tempdir().unwrap();
    let v = verifier(dir.path(), &pem);
    let subject = Subject {
        registry,
        repository: &repo,
        digest: &digest,
    };
    assert!(matches!(
        v.verify(subject, std::slice::from_ref(&cand), now),
        Verdict::Vouched(_)
    ));
    c.bench_function("notation jws rsa-pss-2048 (real notation signature)", |b| {
        b.iter(|| black_box(v.verify(subject, std::slice::from_ref(&cand), now)))
    });

    let signer = NotationSigner::new(LeafKey::EcP256, "bench");
    let digest = Digest::sha256_of(b"bench image");
    let cand = signer.candidate(
        &digest,
        &SignOptions::default(),
        ArtifactKind::NotationCose,
        None,
    );
    let dir = tempfile::tempdir().unwrap();
    let v = verifier(dir.path(), &signer.root_pem);
    let subject = Subject {
        registry,
        repository: &repo,
        digest: &digest,
    };
    let now = SystemTime::now();
    assert!(matches!(
        v.verify(subject, std::slice::from_ref(&cand), now),
        Verdict::Vouched(_)
    ));
    c.bench_function("notation cose ecdsa-p256 (chain of 3)", |b| {
        b.iter(|| black_box(v.verify(subject, std::slice::from_ref(&cand), now)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
