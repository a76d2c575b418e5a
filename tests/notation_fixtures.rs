//! Real Notation signatures (notation's own e2e test data, see
//! tests/fixtures/signatures/notation/ORIGIN.md) through the Notation verifier: each layout
//! verifies or is refused as notation itself would, with "now" fixed where it matters.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::Engine as _;
use bytes::Bytes;
use portcullis::refs::{Digest, RepoName};
use portcullis::trust::notation::{NotationConfig, NotationVerifier};
use portcullis::trust::signature::{
    ArtifactKind, Candidate, DigestVerifier, FoundVia, Layer, Subject, Verdict,
};
use serde_json::Value;
use support::notation_signer::{annotations_of, candidate_of};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/signatures/notation")
}

/// `YYYY-MM-DDTHH:MM:SSZ` as a SystemTime.
fn at(s: &str) -> SystemTime {
    humantime::parse_rfc3339(s).unwrap()
}

fn blob(layout: &Path, digest: &str) -> Bytes {
    let hex = digest.strip_prefix("sha256:").unwrap();
    Bytes::from(std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap())
}

/// The image (`v1`) of a layout and every signature manifest whose `subject` is that image,
/// found by scanning all blobs, not through the `sha256-<hex>` index (which, in
/// `e2e-valid-multiple-signatures`, lists only one of the two).
fn layout(name: &str) -> (Digest, Vec<Candidate>) {
    let dir = fixtures().join("registry/oci_layout").join(name);
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let image = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| {
            m.pointer("/annotations/org.opencontainers.image.ref.name") == Some(&Value::from("v1"))
        })
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .parse::<Digest>()
        .unwrap();
    let mut candidates = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let bytes = Bytes::from(std::fs::read(&path).unwrap());
        let Ok(m) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        if m.pointer("/subject/digest").and_then(Value::as_str) != Some(&image.to_string()) {
            continue;
        }
        candidates.push(candidate(&dir, bytes, &m));
    }
    (image, candidates)
}

/// A Candidate as discovery builds it: manifest bytes, its subject and annotations, and
/// its layers with their bytes (digests checked here, as discovery does).
fn candidate(dir: &Path, bytes: Bytes, m: &Value) -> Candidate {
    let layers: Vec<Layer> = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let digest: Digest = l["digest"].as_str().unwrap().parse().unwrap();
            let bytes = blob(dir, &digest.to_string());
            assert_eq!(Digest::sha256_of(&bytes), digest);
            Layer {
                media_type: l["mediaType"].as_str().unwrap().to_owned(),
                digest,
                annotations: BTreeMap::new(),
                bytes,
            }
        })
        .collect();
    // Classified by the manifest's own types. A notary-typed manifest whose layer is neither
    // JWS nor COSE (e2e-invalid-signature) is handed over as JWS, as a discovery that looks
    // at the config type only would: the verifier must refuse it by itself.
    let kind = match layers.first().map(|l| l.media_type.as_str()) {
        Some("application/cose") => ArtifactKind::NotationCose,
        _ => ArtifactKind::NotationJws,
    };
    let annotations = annotations_of(m);
    Candidate {
        manifest_digest: Digest::sha256_of(&bytes),
        subject: m
            .pointer("/subject/digest")
            .and_then(Value::as_str)
            .map(|d| d.parse().unwrap()),
        manifest: bytes,
        kind,
        annotations,
        found_via: FoundVia::Referrers,
        layers,
    }
}

/// The signing certificate (x5c[0]) of a JWS envelope, DER.
fn jws_leaf(envelope: &[u8]) -> Vec<u8> {
    let v: Value = serde_json::from_slice(envelope).unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(v["header"]["x5c"][0].as_str().unwrap())
        .unwrap()
}

/// GlobalSign Root CA - R6, a real TSA root (tests/fixtures/signatures/notation-timestamp).
fn globalsign_root() -> Vec<u8> {
    std::fs::read(fixtures().join("../notation-timestamp/globalsignRoot.cer")).unwrap()
}

fn e2e_crt() -> Vec<u8> {
    std::fs::read(fixtures().join("config/localkeys/e2e.crt")).unwrap()
}

/// A trust store and the named fixture policy (or a policy text) in a temp dir.
struct Setup {
    _dir: tempfile::TempDir,
    verifier: NotationVerifier,
}

fn setup(policy: &str, stores: &[(&str, &str, Vec<u8>)]) -> Setup {
    try_setup(policy, stores).unwrap()
}

fn try_setup(policy: &str, stores: &[(&str, &str, Vec<u8>)]) -> anyhow::Result<Setup> {
    let dir = tempfile::tempdir().unwrap();
    let text = if policy.trim_start().starts_with('{') {
        policy.as_bytes().to_vec()
    } else {
        std::fs::read(fixtures().join("config/trustpolicies").join(policy)).unwrap()
    };
    let policy_path = dir.path().join("trustpolicy.json");
    std::fs::write(&policy_path, text).unwrap();
    for (ty, name, cert) in stores {
        let d = dir.path().join("truststore/x509").join(ty).join(name);
        std::fs::create_dir_all(&d).unwrap();
        let ext = if cert.starts_with(b"-----") {
            "pem"
        } else {
            "crt"
        };
        std::fs::write(d.join(format!("cert.{ext}")), cert).unwrap();
    }
    let verifier = NotationVerifier::new(&NotationConfig {
        trust_policy: policy_path,
        trust_store: dir.path().join("truststore"),
    })?;
    Ok(Setup {
        _dir: dir,
        verifier,
    })
}

fn verify(s: &Setup, digest: &Digest, candidates: &[Candidate], now: SystemTime) -> Verdict {
    let repo: RepoName = "e2e".parse().unwrap();
    let subject = Subject {
        registry: "localhost:5000",
        repository: &repo,
        digest,
    };
    s.verifier.verify(subject, candidates, now)
}

fn refused(v: Verdict) -> String {
    match v {
        Verdict::No(why) => why,
        Verdict::Vouched(e) => panic!("expected a refusal, got {e:?}"),
    }
}

fn vouched(v: Verdict) -> portcullis::trust::signature::Evidence {
    match v {
        Verdict::Vouched(e) => e,
        Verdict::No(why) => panic!("expected to vouch, got: {why}"),
    }
}

const MID_2025: &str = "2025-06-01T00:00:00Z";

#[test]
fn valid_signature_verifies_against_e2e_crt() {
    let s = setup("trustpolicy.json", &[("ca", "e2e", e2e_crt())]);
    let (image, cands) = layout("e2e-valid-signature");
    assert_eq!(cands.len(), 1);
    let e = vouched(verify(&s, &image, &cands, at(MID_2025)));
    assert_eq!(e.format, "notation jws");
    assert!(e.signer.contains("CN=e2e"), "{}", e.signer);
    assert_eq!(e.candidate, cands[0].manifest_digest);
    // ... and not for another digest (the payload names the image).
    let other = Digest::sha256_of(b"another image");
    let mut moved = cands.clone();
    moved[0].subject = Some(other.clone());
    refused(verify(&s, &other, &moved, at(MID_2025)));
}

#[test]
fn permissive_policy_verifies_too() {
    let s = setup("permissive_trustpolicy.json", &[("ca", "e2e", e2e_crt())]);
    let (image, cands) = layout("e2e-valid-signature");
    vouched(verify(&s, &image, &cands, at(MID_2025)));
}

#[test]
fn one_of_multiple_signatures_is_enough() {
    let s = setup("trustpolicy.json", &[("ca", "e2e", e2e_crt())]);
    let (image, cands) = layout("e2e-valid-multiple-signatures");
    // Both signatures are found by subject, though the tag-schema index lists one.
    assert_eq!(cands.len(), 2);
    let e = vouched(verify(&s, &image, &cands, at(MID_2025)));
    assert!(e.signer.contains("CN=e2e"), "{}", e.signer);
    // The other one (testcert11) alone does not chain to e2e.crt.
    let other: Vec<_> = cands
        .iter()
        .filter(|c| c.manifest_digest != e.candidate)
        .cloned()
        .collect();
    let why = refused(verify(&s, &image, &other, at("2025-02-17T12:00:00Z")));
    assert!(
        why.contains("testcert11") && why.contains("ca:e2e"),
        "{why}"
    );
}

#[test]
fn expired_signature_is_refused_at_strict_and_logged_at_permissive() {
    let (image, cands) = layout("e2e-expired-signature");
    let s = setup("trustpolicy.json", &[("ca", "e2e", e2e_crt())]);
    let why = refused(verify(&s, &image, &cands, at(MID_2025)));
    assert!(why.contains("expired at 2023-06-27T05:21:21Z"), "{why}");
    // Before its expiry the same signature vouches.
    vouched(verify(&s, &image, &cands, at("2023-06-27T05:21:00Z")));
    let p = setup("permissive_trustpolicy.json", &[("ca", "e2e", e2e_crt())]);
    let e = vouched(verify(&p, &image, &cands, at(MID_2025)));
    assert!(
        e.details
            .iter()
            .any(|(k, v)| k == "logged failure" && v.contains("expired")),
        "{:?}",
        e.details
    );
}

#[test]
fn invalid_signature_is_refused() {
    let s = setup("trustpolicy.json", &[("ca", "e2e", e2e_crt())]);
    let (image, cands) = layout("e2e-invalid-signature");
    assert_eq!(cands.len(), 1);
    let why = refused(verify(&s, &image, &cands, at(MID_2025)));
    assert!(
        why.contains("application/vnd.oci.image.layer.v1.tar"),
        "{why}"
    );
}

#[test]
fn expired_certificate_is_refused_without_a_timestamp() {
    let (image, cands) = layout("e2e-with-expired-cert");
    // Not signed by e2e.crt at all.
    let s = setup("trustpolicy.json", &[("ca", "e2e", e2e_crt())]);
    let why = refused(verify(&s, &image, &cands, at(MID_2025)));
    assert!(why.contains("Internet Widgits"), "{why}");
    // With its own (self-signed) certificate trusted: refused once it has expired, accepted
    // inside its one-day validity.
    let leaf = jws_leaf(&cands[0].layers[0].bytes);
    let s = setup("trustpolicy.json", &[("ca", "e2e", leaf)]);
    let why = refused(verify(&s, &image, &cands, at(MID_2025)));
    assert!(why.contains("is not valid at now"), "{why}");
    vouched(verify(&s, &image, &cands, at("2023-06-27T00:00:00Z")));
}

#[test]
fn timestamped_signature_needs_its_own_certificate_and_no_timestamp_check() {
    let (image, cands) = layout("e2e-with-timestamped-signature");
    let s = setup("trustpolicy.json", &[("ca", "e2e", e2e_crt())]);
    let why = refused(verify(&s, &image, &cands, at("2025-01-21T10:00:00Z")));
    assert!(why.contains("testcert7"), "{why}");

    let leaf = jws_leaf(&cands[0].layers[0].bytes);
    let s = setup("trustpolicy.json", &[("ca", "e2e", leaf.clone())]);
    // Inside the certificate's validity and before the signature's expiry (12:39:46Z).
    vouched(verify(&s, &image, &cands, at("2025-01-21T10:00:00Z")));
    // After the certificate expired, only a verified timestamp could help, and this
    // statement names no tsa store. (The signature's own expiry has passed too by then:
    // logged here, to reach the certificate check.)
    let expiry_logged = r#"{"version": "1.0", "trustPolicies": [{"name": "e2e",
        "registryScopes": ["*"], "signatureVerification": {"level": "strict",
        "override": {"expiry": "log"}}, "trustStores": ["ca:e2e"], "trustedIdentities": ["*"]}]}"#;
    let s = setup(expiry_logged, &[("ca", "e2e", leaf.clone())]);
    let why = refused(verify(&s, &image, &cands, at("2025-01-23T00:00:00Z")));
    assert!(
        why.contains("names no tsa store to verify it with"),
        "{why}"
    );

    // A statement that always requires the RFC 3161 countersignature checks it: stamped by
    // Microsoft's TSA, it does not chain to the tsa store given here (GlobalSign's root); with
    // afterCertExpiry it is needed only once a certificate has expired. (GlobalSign-stamped
    // envelopes that do verify: tests/notation_timestamp.rs.)
    let stores = [
        ("ca", "e2e", leaf.clone()),
        ("tsa", "e2e", globalsign_root()),
    ];
    let s = setup("timestamp_trustpolicy.json", &stores);
    let why = refused(verify(&s, &image, &cands, at("2025-01-21T10:00:00Z")));
    assert!(
        why.contains("Microsoft Public RSA Time Stamping Authority")
            && why.contains("does not lead to a certificate of the tsa stores tsa:e2e"),
        "{why}"
    );
    let s = setup("timestamp_after_cert_expiry_trustpolicy.json", &stores);
    vouched(verify(&s, &image, &cands, at("2025-01-21T10:00:00Z")));
}

#[test]
fn invalid_timestamped_signature_is_refused() {
    let (image, cands) = layout("e2e-with-invalid-timestamped-signature");
    let s = setup("trustpolicy.json", &[("ca", "e2e", e2e_crt())]);
    refused(verify(&s, &image, &cands, at("2025-01-21T10:00:00Z")));
    let leaf = jws_leaf(&cands[0].layers[0].bytes);
    let s = setup(
        "timestamp_trustpolicy.json",
        &[("ca", "e2e", leaf), ("tsa", "e2e", globalsign_root())],
    );
    let why = refused(verify(&s, &image, &cands, at("2025-01-21T10:00:00Z")));
    // Its "timestamp" is eight bytes that are not a token.
    assert!(why.contains("the timestamp token is not CMS"), "{why}");
}

#[test]
fn audit_statement_never_vouches() {
    let s = setup("audit_trustpolicy.json", &[("ca", "e2e", e2e_crt())]);
    let (image, cands) = layout("e2e-valid-signature");
    let why = refused(verify(&s, &image, &cands, at(MID_2025)));
    assert!(why.contains("level audit"), "{why}");
}

#[test]
fn global_skip_policy_is_refused_at_start() {
    // The spec: "skip cannot be used with a global scope (*)" (notation's own e2e data
    // does it; Portcullis refuses the policy rather than trust nothing silently).
    let err = try_setup("skip_trustpolicy.json", &[]).err().unwrap();
    assert!(
        format!("{err:#}").contains("skip cannot be used with the global scope"),
        "{err:#}"
    );
}

#[test]
fn image_without_signatures_is_not_vouched() {
    let s = setup("trustpolicy.json", &[("ca", "e2e", e2e_crt())]);
    let (image, cands) = layout("e2e");
    assert!(cands.is_empty());
    assert_eq!(
        refused(verify(&s, &image, &cands, at(MID_2025))),
        "no Notation signature found"
    );
}

/// A blob signature (notation-go 1.3, with an RFC 3161 timestamp) presented as if it were
/// attached to an artifact whose manifest is the LICENSE file: the real envelope in a
/// synthesized signature manifest whose thumbprint annotation names `leaf`. Returns the
/// subject, the candidate and a verifier trusting `leaf`.
fn blob_case(
    file: &str,
    media_type: &str,
    leaf: fn(&[u8]) -> Vec<u8>,
) -> (Digest, Candidate, Setup) {
    let envelope = std::fs::read(fixtures().join("signatures").join(file)).unwrap();
    let license = std::fs::read(fixtures().join("LICENSE")).unwrap();
    let subject = Digest::sha256_of(&license);
    let leaf = leaf(&envelope);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.cncf.notary.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": Digest::sha256_of(b"{}").to_string(), "size": 2},
        "layers": [{"mediaType": media_type, "digest": Digest::sha256_of(&envelope).to_string(), "size": envelope.len()}],
        "subject": {"mediaType": "application/octet-stream", "digest": subject.to_string(), "size": license.len()},
        "annotations": {"io.cncf.notary.x509chain.thumbprint#S256": format!("[\"{}\"]", Digest::sha256_of(&leaf).hex())},
    });
    let cand = candidate_of(serde_json::to_vec(&manifest).unwrap(), envelope);
    (
        subject,
        cand,
        setup("trustpolicy.json", &[("ca", "e2e", leaf)]),
    )
}

fn cose_leaf(envelope: &[u8]) -> Vec<u8> {
    let sign1 =
        <coset::CoseSign1 as coset::TaggedCborSerializable>::from_tagged_slice(envelope).unwrap();
    let chain = sign1
        .unprotected
        .rest
        .iter()
        .find(|(l, _)| *l == coset::Label::Int(33))
        .map(|(_, v)| v.clone())
        .unwrap();
    match chain {
        coset::cbor::value::Value::Array(a) => a[0].as_bytes().unwrap().clone(),
        coset::cbor::value::Value::Bytes(b) => b,
        other => panic!("x5chain {other:?}"),
    }
}

#[test]
fn blob_jws_signature_verifies_with_its_certificate() {
    let (subject, mut cand, s) = blob_case("blob.jws.sig", "application/jose+json", jws_leaf);
    let now = at("2024-12-31T12:00:00Z");
    let e = vouched(verify(&s, &subject, std::slice::from_ref(&cand), now));
    assert!(e.signer.contains("CN=testcert2"), "{}", e.signer);
    // Without the thumbprint annotation (which the spec requires) it is refused.
    cand.annotations.clear();
    let why = refused(verify(&s, &subject, &[cand], now));
    assert!(why.contains("thumbprint"), "{why}");
}

#[test]
fn blob_cose_signature_verifies_with_its_certificate() {
    let (subject, mut cand, s) = blob_case("blob.cose.sig", "application/cose", cose_leaf);
    let now = at("2025-01-07T12:00:00Z");
    let e = vouched(verify(&s, &subject, std::slice::from_ref(&cand), now));
    assert_eq!(e.format, "notation cose");
    assert!(e.signer.contains("CN=testcert3"), "{}", e.signer);
    // One flipped byte of the signature and it is refused.
    let mut bad = cand.layers[0].bytes.to_vec();
    let n = bad.len() - 5;
    bad[n] ^= 1;
    cand.layers[0].bytes = Bytes::from(bad);
    let why = refused(verify(&s, &subject, &[cand], now));
    assert!(why.contains("does not verify"), "{why}");
}
