//! Discovery of signatures in the registry (trust::discover) against a registry that
//! misbehaves on purpose: the referrers API with paging, a 500 on `/referrers` (no fallback),
//! malformed and oversized indexes, oversized manifests and blobs, a referrer whose `subject`
//! is another digest, bytes that do not match their digest. The real Distribution registry
//! (no referrers API: tag schema and `.sig`) is exercised end to end in e2e_signatures.rs.

mod fake;

use std::sync::Arc;

use bytes::Bytes;
use fake::{Behaviour, FakeRegistry};
use portcullis::refs::{Digest, RepoName};
use portcullis::trust::discover::{self, Limits, Place, Target};
use portcullis::trust::signature::{ArtifactKind, FoundVia};
use portcullis::upstream::Upstream;

const REPO: &str = "team/app";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const EMPTY: &str = "application/vnd.oci.empty.v1+json";
const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const SIMPLE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

fn upstream(addr: std::net::SocketAddr) -> Upstream {
    fake::install_crypto();
    let toml = fake::config(addr, "enforce", false, "");
    let cfg: portcullis::config::Config = figment::Figment::from(
        <figment::providers::Toml as figment::providers::Format>::string(&toml),
    )
    .extract()
    .unwrap();
    Upstream::new(
        &cfg.registries[0],
        &cfg.upstream,
        false,
        Arc::new(tokio::sync::Semaphore::new(16)),
    )
    .unwrap()
}

/// An image (the subject) in the fake registry; returns its digest.
fn subject(reg: &FakeRegistry) -> Digest {
    let m = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},"layers":[]}}"#,
        reg.blob(REPO, b"{}")
    );
    reg.manifest(REPO, Some("v1"), m.as_bytes(), OCI_MANIFEST)
        .parse()
        .unwrap()
}

/// A signature manifest whose one layer (`layer_type`, bytes `payload`) is in the registry;
/// `subject`: its subject digest. Returns (digest, bytes).
fn signature(
    reg: &FakeRegistry,
    artifact: &str,
    layer_type: &str,
    payload: &[u8],
    subject: Option<&Digest>,
) -> (String, Vec<u8>) {
    let layer = reg.blob(REPO, payload);
    let mut v = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact,
        "config": {"mediaType": EMPTY, "digest": reg.blob(REPO, b"{}"), "size": 2},
        "layers": [{"mediaType": layer_type, "digest": layer, "size": payload.len()}],
    });
    if let Some(s) = subject {
        v["subject"] =
            serde_json::json!({"mediaType": OCI_MANIFEST, "digest": s.to_string(), "size": 1});
    }
    let bytes = serde_json::to_vec(&v).unwrap();
    (reg.manifest(REPO, None, &bytes, OCI_MANIFEST), bytes)
}

fn index(entries: &[(&str, usize)]) -> Bytes {
    let m: Vec<_> = entries
        .iter()
        .map(|(d, size)| serde_json::json!({"mediaType": OCI_MANIFEST, "digest": d, "size": size, "artifactType": EMPTY}))
        .collect();
    Bytes::from(
        serde_json::to_vec(
            &serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": m}),
        )
        .unwrap(),
    )
}

fn pages(p: Vec<Bytes>) -> Behaviour {
    Behaviour::Pages {
        pages: p,
        content_type: OCI_INDEX.into(),
    }
}

fn all(_: ArtifactKind) -> bool {
    true
}

async fn run(
    reg: &FakeRegistry,
    d: &Digest,
    wanted: &(dyn Fn(ArtifactKind) -> bool + Sync),
    limits: &Limits,
) -> Result<discover::Discovery, String> {
    let up = upstream(reg.start().await);
    let repo: RepoName = REPO.parse().unwrap();
    let t = Target {
        upstream: &up,
        repo: &repo,
        digest: d,
        client_auth: None,
    };
    discover::discover(&t, wanted, limits).await
}

/// Limits small enough to cross: 4 KiB manifests, 64-byte blobs.
fn small_limits() -> Limits {
    Limits {
        max_manifest_bytes: 4096,
        max_blob_bytes: 64,
        ..Limits::default()
    }
}

fn referrers_path(d: &Digest) -> String {
    format!("/v2/{REPO}/referrers/{d}")
}

fn sig_path(d: &Digest) -> String {
    format!("/v2/{REPO}/manifests/sha256-{}.sig", d.hex())
}

#[tokio::test]
async fn referrers_api_pages_are_followed_and_the_sig_tag_is_always_asked() {
    let reg = FakeRegistry::default();
    let d = subject(&reg);
    let (a, ab) = signature(&reg, BUNDLE, BUNDLE, b"bundle-a", Some(&d));
    let (b, bb) = signature(&reg, BUNDLE, BUNDLE, b"bundle-b", Some(&d));
    reg.set(
        &referrers_path(&d),
        pages(vec![index(&[(&a, ab.len())]), index(&[(&b, bb.len())])]),
    );
    let (_, legacy) = signature(&reg, EMPTY, SIMPLE, b"simple", None);
    reg.set(
        &sig_path(&d),
        Behaviour::Serve {
            body: Bytes::from(legacy),
            content_type: OCI_MANIFEST.into(),
        },
    );
    let got = run(&reg, &d, &all, &Limits::default()).await.unwrap();
    assert_eq!(
        got.places,
        vec![
            (FoundVia::Referrers, Place::Found(2)),
            (FoundVia::CosignTag, Place::Found(1))
        ]
    );
    let mut kinds: Vec<_> = got
        .candidates
        .iter()
        .map(|c| (c.found_via, c.kind))
        .collect();
    kinds.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(
        kinds,
        vec![
            (FoundVia::CosignTag, ArtifactKind::CosignSimpleSigning),
            (FoundVia::Referrers, ArtifactKind::SigstoreBundle),
            (FoundVia::Referrers, ArtifactKind::SigstoreBundle),
        ]
    );
    let bundle = got
        .candidates
        .iter()
        .find(|c| c.manifest_digest.to_string() == a)
        .unwrap();
    assert_eq!(&bundle.layers[0].bytes[..], b"bundle-a");
    assert_eq!(bundle.subject.as_ref(), Some(&d));
    // With the referrers API answering, the tag schema is not asked.
    assert_eq!(
        reg.hits(&format!("/v2/{REPO}/manifests/sha256-{}", d.hex())),
        0
    );
    assert!(got.dropped.is_empty(), "{:?}", got.dropped);
}

#[tokio::test]
async fn without_a_referrers_api_the_tag_schema_is_used() {
    let reg = FakeRegistry::default();
    let d = subject(&reg);
    let (a, ab) = signature(
        &reg,
        "application/vnd.cncf.notary.signature",
        "application/jose+json",
        b"jws",
        Some(&d),
    );
    reg.set(
        &format!("/v2/{REPO}/manifests/sha256-{}", d.hex()),
        Behaviour::Serve {
            body: index(&[(&a, ab.len())]),
            content_type: OCI_INDEX.into(),
        },
    );
    let got = run(&reg, &d, &all, &Limits::default()).await.unwrap();
    assert_eq!(
        got.places,
        vec![
            (FoundVia::Referrers, Place::NotSupported),
            (FoundVia::TagSchema, Place::Found(1)),
            (FoundVia::CosignTag, Place::None)
        ]
    );
    assert_eq!(got.candidates.len(), 1);
    assert_eq!(got.candidates[0].kind, ArtifactKind::NotationJws);
    assert_eq!(
        got.summary(),
        "referrers API: not supported; tag schema: 1 found; .sig: none"
    );
}

#[tokio::test]
async fn a_500_on_referrers_fails_closed_without_fallback() {
    let reg = FakeRegistry::default();
    let d = subject(&reg);
    reg.set(
        &referrers_path(&d),
        Behaviour::Status {
            status: 500,
            code: "UNKNOWN".into(),
        },
    );
    let err = run(&reg, &d, &all, &Limits::default()).await.unwrap_err();
    assert!(err.contains("500"), "{err}");
    assert_eq!(
        reg.hits(&format!("/v2/{REPO}/manifests/sha256-{}", d.hex())),
        0,
        "no fallback to the tag schema"
    );
}

#[tokio::test]
async fn a_malformed_or_oversized_index_is_an_error() {
    for body in [
        Bytes::from_static(b"<html>not json</html>"),
        Bytes::from(vec![b' '; 5000]),
    ] {
        let reg = FakeRegistry::default();
        let d = subject(&reg);
        reg.set(&referrers_path(&d), pages(vec![body]));
        let limits = Limits {
            max_manifest_bytes: 4096,
            ..Limits::default()
        };
        let err = run(&reg, &d, &all, &limits).await.unwrap_err();
        assert!(
            err.contains("referrers") || err.contains("larger than"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_referrer_of_another_digest_is_dropped() {
    let reg = FakeRegistry::default();
    let d = subject(&reg);
    let other: Digest = Digest::sha256_of(b"another image");
    let (a, ab) = signature(&reg, BUNDLE, BUNDLE, b"bundle", Some(&other));
    reg.set(&referrers_path(&d), pages(vec![index(&[(&a, ab.len())])]));
    let got = run(&reg, &d, &all, &Limits::default()).await.unwrap();
    assert!(got.candidates.is_empty());
    assert!(
        got.dropped[0].contains(&format!("its subject is {other}")),
        "{:?}",
        got.dropped
    );
}

#[tokio::test]
async fn oversized_manifests_and_blobs_and_wrong_bytes_are_dropped() {
    let reg = FakeRegistry::default();
    let d = subject(&reg);
    let limits = small_limits();
    // a manifest the index says is large
    let (big, _) = signature(&reg, BUNDLE, BUNDLE, b"x", Some(&d));
    // a manifest with a blob over the limit
    let (fat, fb) = signature(&reg, BUNDLE, BUNDLE, &[b'y'; 100], Some(&d));
    // a manifest served with other bytes than its digest
    let (liar, lb) = signature(&reg, BUNDLE, BUNDLE, b"z", Some(&d));
    reg.set(
        &format!("/v2/{REPO}/manifests/{liar}"),
        Behaviour::Serve {
            body: Bytes::from(fb.clone()),
            content_type: OCI_MANIFEST.into(),
        },
    );
    reg.set(
        &referrers_path(&d),
        pages(vec![index(&[
            (&big, 10_000),
            (&fat, fb.len()),
            (&liar, lb.len()),
        ])]),
    );
    let got = run(&reg, &d, &all, &limits).await.unwrap();
    assert!(got.candidates.is_empty(), "{:?}", got.candidates);
    let dropped = got.dropped.join("\n");
    assert!(dropped.contains("signature manifest limit"), "{dropped}");
    assert!(dropped.contains("signature blob limit"), "{dropped}");
    assert!(
        dropped.contains(&format!("{liar}: bytes hash to")),
        "{dropped}"
    );
    assert_eq!(
        reg.hits(&format!("/v2/{REPO}/manifests/{big}")),
        0,
        "not fetched at all"
    );
}

#[tokio::test]
async fn blobs_of_kinds_nobody_verifies_are_not_fetched_and_candidates_are_bounded() {
    let reg = FakeRegistry::default();
    let d = subject(&reg);
    let (n, nb) = signature(
        &reg,
        "application/vnd.cncf.notary.signature",
        "application/cose",
        b"cose",
        Some(&d),
    );
    let mut entries = vec![(n.clone(), nb.len())];
    for i in 0..5 {
        let (x, xb) = signature(&reg, BUNDLE, BUNDLE, format!("b{i}").as_bytes(), Some(&d));
        entries.push((x, xb.len()));
    }
    let refs: Vec<(&str, usize)> = entries.iter().map(|(a, b)| (a.as_str(), *b)).collect();
    reg.set(&referrers_path(&d), pages(vec![index(&refs)]));
    let limits = Limits {
        max_candidates: 3,
        ..Limits::default()
    };
    let only_bundles = |k: ArtifactKind| k == ArtifactKind::SigstoreBundle;
    let got = run(&reg, &d, &only_bundles, &limits).await.unwrap();
    assert_eq!(
        got.candidates.len(),
        2,
        "3 fetched, the Notation one not wanted"
    );
    assert_eq!(
        reg.hits(&format!("/v2/{REPO}/blobs/{}", Digest::sha256_of(b"cose"))),
        0
    );
    assert!(
        got.dropped[0].contains("only the first 3"),
        "{:?}",
        got.dropped
    );
}

/// A registry that sends more than it declared: the refusal names the `[signatures]` limit
/// that applied, not `server.max_manifest_bytes` (which an operator would raise in vain).
#[tokio::test]
async fn bodies_over_the_limit_name_the_signatures_setting() {
    let reg = FakeRegistry::default();
    let d = subject(&reg);
    let limits = small_limits();
    // The manifest declares an 8-byte layer; the registry sends 100 bytes for it.
    let (fat, fb) = signature(&reg, BUNDLE, BUNDLE, b"8 bytes!", Some(&d));
    let layer = Digest::sha256_of(b"8 bytes!");
    reg.set(
        &format!("/v2/{REPO}/blobs/{layer}"),
        Behaviour::Serve {
            body: Bytes::from(vec![b'y'; 100]),
            content_type: "application/octet-stream".into(),
        },
    );
    reg.set(&referrers_path(&d), pages(vec![index(&[(&fat, fb.len())])]));
    let got = run(&reg, &d, &all, &limits).await.unwrap();
    assert!(got.candidates.is_empty(), "{:?}", got.candidates);
    let dropped = got.dropped.join("\n");
    assert!(
        dropped.contains("larger than 64 bytes (signatures.max_blob_bytes)"),
        "{dropped}"
    );
    assert!(!dropped.contains("server."), "{dropped}");

    // A referrers page over the manifest limit is an error naming that setting.
    let reg = FakeRegistry::default();
    let d = subject(&reg);
    let many: Vec<(String, usize)> = (0..100)
        .map(|i| (Digest::sha256_of(format!("{i}").as_bytes()).to_string(), 1))
        .collect();
    let entries: Vec<(&str, usize)> = many.iter().map(|(d, s)| (d.as_str(), *s)).collect();
    reg.set(&referrers_path(&d), pages(vec![index(&entries)]));
    let e = run(&reg, &d, &all, &limits).await.unwrap_err();
    assert!(
        e.contains("larger than 4096 bytes (signatures.max_manifest_bytes)"),
        "{e}"
    );
}
