//! Fixtures into `Candidate`s.
//!
//! containers/image's `dir:` layout (`signature/fixtures/dir-img-cosign-*`): `manifest.json` is
//! the signed image's manifest, and each `signature-N` one cosign signature in containers/image's
//! internal form (`internal/signature/sigstore.go`): the bytes `\0sigstore-json\n` then JSON
//! `{"mimeType", "payload" (base64 of the payload bytes), "annotations"}`. That is one layer of a
//! cosign `.sig` manifest (media type, blob, annotations), so all `signature-N` of a directory
//! become the layers of one candidate, as cosign's `.sig` manifest holds them.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use portcullis::refs::Digest;
use portcullis::trust::cosign::SIMPLE_SIGNING_MEDIA_TYPE;
use portcullis::trust::signature::{ArtifactKind, Candidate, FoundVia, Layer};
use serde::Deserialize;

const SIGSTORE_PREFIX: &[u8] = b"\x00sigstore-json\n";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DirSignature {
    mime_type: String,
    payload: String,
    annotations: BTreeMap<String, String>,
}

/// One `signature-N` file as a layer.
pub fn layer_from_signature_file(bytes: &[u8]) -> Layer {
    let json = bytes
        .strip_prefix(SIGSTORE_PREFIX)
        .expect("a containers/image sigstore signature starts with \\0sigstore-json\\n");
    let s: DirSignature = serde_json::from_slice(json).expect("sigstore-json signature");
    let payload = STANDARD.decode(&s.payload).expect("base64 payload");
    Layer {
        media_type: s.mime_type,
        digest: Digest::sha256_of(&payload),
        annotations: s.annotations,
        bytes: Bytes::from(payload),
    }
}

/// A `dir:` fixture: the digest of its `manifest.json` (none if absent) and one candidate
/// holding every `signature-N` in order.
pub fn read_dir_fixture(dir: &Path) -> (Option<Digest>, Candidate) {
    let manifest_digest = std::fs::read(dir.join("manifest.json"))
        .ok()
        .map(|m| Digest::sha256_of(&m));
    let mut layers = Vec::new();
    for n in 1.. {
        match std::fs::read(dir.join(format!("signature-{n}"))) {
            Ok(bytes) => layers.push(layer_from_signature_file(&bytes)),
            Err(_) => break,
        }
    }
    assert!(!layers.is_empty(), "{} has no signature-1", dir.display());
    (manifest_digest, candidate_from_layers(layers))
}

/// The `.sig` manifest cosign would have pushed for these layers.
pub fn candidate_from_layers(layers: Vec<Layer>) -> Candidate {
    let descriptors: Vec<_> = layers
        .iter()
        .map(|l| {
            serde_json::json!({
                "mediaType": l.media_type,
                "size": l.bytes.len(),
                "digest": l.digest.to_string(),
                "annotations": l.annotations,
            })
        })
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "size": 2,
            "digest": Digest::sha256_of(b"{}").to_string(),
        },
        "layers": descriptors,
    }))
    .expect("json");
    let kind = if layers
        .iter()
        .any(|l| l.media_type == SIMPLE_SIGNING_MEDIA_TYPE)
    {
        ArtifactKind::CosignSimpleSigning
    } else {
        ArtifactKind::Other
    };
    Candidate {
        manifest_digest: Digest::sha256_of(&manifest),
        manifest: Bytes::from(manifest),
        kind,
        subject: None,
        annotations: BTreeMap::new(),
        found_via: FoundVia::CosignTag,
        layers,
    }
}

/// A candidate from real manifest bytes and its blobs (`(digest, bytes)`), as discovery makes
/// it: layers in manifest order with their annotations; kind from the layer media types.
pub fn candidate_from_manifest(
    manifest: &[u8],
    blobs: &[(&str, &[u8])],
    via: FoundVia,
) -> Candidate {
    let m: serde_json::Value = serde_json::from_slice(manifest).expect("manifest json");
    let mut layers = Vec::new();
    for l in m["layers"].as_array().expect("layers") {
        let digest = l["digest"].as_str().expect("digest");
        let bytes = blobs
            .iter()
            .find(|(d, _)| *d == digest)
            .map(|(_, b)| *b)
            .expect("blob for every layer");
        assert_eq!(Digest::sha256_of(bytes).to_string(), digest, "blob digest");
        let annotations = l["annotations"]
            .as_object()
            .map(|a| {
                a.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        layers.push(Layer {
            media_type: l["mediaType"].as_str().expect("mediaType").to_string(),
            digest: digest.parse().expect("digest"),
            annotations,
            bytes: Bytes::copy_from_slice(bytes),
        });
    }
    let kind = match layers.first().map(|l| l.media_type.as_str()) {
        Some(SIMPLE_SIGNING_MEDIA_TYPE) => ArtifactKind::CosignSimpleSigning,
        Some(t) if t.starts_with("application/vnd.dev.sigstore.bundle") => {
            ArtifactKind::SigstoreBundle
        }
        _ => ArtifactKind::Other,
    };
    let subject = m["subject"]["digest"]
        .as_str()
        .map(|d| d.parse().expect("subject digest"));
    Candidate {
        manifest_digest: Digest::sha256_of(manifest),
        manifest: Bytes::copy_from_slice(manifest),
        kind,
        subject,
        annotations: BTreeMap::new(),
        found_via: via,
        layers,
    }
}

/// A candidate holding one Sigstore bundle as its layer (cosign v3 attaches bundles as OCI 1.1
/// referrers: one layer of `application/vnd.dev.sigstore.bundle.v0.3+json`).
pub fn bundle_candidate(bundle_json: &[u8], subject: &Digest) -> Candidate {
    let layer = Layer {
        media_type: "application/vnd.dev.sigstore.bundle.v0.3+json".into(),
        digest: Digest::sha256_of(bundle_json),
        annotations: BTreeMap::new(),
        bytes: Bytes::copy_from_slice(bundle_json),
    };
    let mut c = candidate_from_layers(vec![layer]);
    c.kind = ArtifactKind::SigstoreBundle;
    c.subject = Some(subject.clone());
    c.found_via = FoundVia::Referrers;
    c
}
