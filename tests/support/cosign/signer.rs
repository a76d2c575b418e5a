//! A cosign-compatible test signer: an ECDSA P-256 key pair (what `cosign generate-key-pair`
//! makes), the legacy simple-signing payload for a (docker-reference, digest), its signature
//! annotation, and the `.sig` image manifest with its config and layer blobs, exactly as cosign
//! pushes them to `<repo>:sha256-<hex>.sig`. End-to-end tests push these to a real registry.

use std::collections::BTreeMap;
use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use portcullis::refs::Digest;
use portcullis::trust::cosign::{SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE};
use portcullis::trust::signature::{ArtifactKind, Candidate, FoundVia, Layer};

/// DER prefix of a P-256 SubjectPublicKeyInfo (id-ecPublicKey, prime256v1), before the
/// 65-byte uncompressed point.
const P256_SPKI_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// An ECDSA P-256 signing key, as `cosign generate-key-pair` makes.
pub struct CosignTestKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

/// A signed `.sig` artifact, ready to push: the two blobs, then the manifest under `tag`.
#[derive(Debug, Clone)]
pub struct SignedSig {
    /// The simple-signing payload (the layer blob).
    pub payload: Vec<u8>,
    pub payload_digest: String,
    /// base64 of the signature over `payload` (the layer annotation).
    pub signature_b64: String,
    /// The image config blob cosign writes.
    pub config: Vec<u8>,
    pub config_digest: String,
    /// The OCI image manifest.
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    /// `sha256-<hex>.sig` of the signed digest.
    pub tag: String,
}

fn sha256_digest(bytes: &[u8]) -> String {
    Digest::sha256_of(bytes).to_string()
}

/// cosign's tag for the signatures of `digest` (`sha256:<hex>` -> `sha256-<hex>.sig`).
pub fn sig_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

/// The payload cosign signs (`pkg/cosign/payload`; keys in this order, `optional` null).
pub fn simple_signing_payload(docker_reference: &str, digest: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "critical": {
            "identity": { "docker-reference": docker_reference },
            "image": { "docker-manifest-digest": digest },
            "type": "cosign container image signature",
        },
        "optional": null,
    }))
    .expect("json")
}

impl CosignTestKey {
    pub fn generate() -> CosignTestKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .expect("generate P-256 key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
            .expect("load P-256 key");
        CosignTestKey { pair, rng }
    }

    /// The public key as SPKI DER.
    pub fn public_key_der(&self) -> Vec<u8> {
        let mut der = P256_SPKI_PREFIX.to_vec();
        der.extend_from_slice(self.pair.public_key().as_ref());
        der
    }

    /// The public key as `cosign.pub` holds it.
    pub fn public_key_pem(&self) -> String {
        let b64 = STANDARD.encode(self.public_key_der());
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("ascii"))
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    pub fn write_public_key(&self, path: &Path) {
        std::fs::write(path, self.public_key_pem()).expect("write public key");
    }

    /// ASN.1 DER ECDSA signature over SHA-256 of `message`, as cosign signs.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair
            .sign(&self.rng, message)
            .expect("sign")
            .as_ref()
            .to_vec()
    }

    /// A legacy cosign signature of `digest` claiming `docker_reference`.
    pub fn sign_image(&self, docker_reference: &str, digest: &str) -> SignedSig {
        let payload = simple_signing_payload(docker_reference, digest);
        self.sign_payload(payload, digest)
    }

    /// As `sign_image`, over a payload the caller made (attack tests edit payloads).
    pub fn sign_payload(&self, payload: Vec<u8>, digest: &str) -> SignedSig {
        let signature_b64 = STANDARD.encode(self.sign(&payload));
        SignedSig::assemble(payload, signature_b64, BTreeMap::new(), digest)
    }
}

impl SignedSig {
    /// Builds the config and manifest around a payload and its annotations.
    pub fn assemble(
        payload: Vec<u8>,
        signature_b64: String,
        extra_annotations: BTreeMap<String, String>,
        digest: &str,
    ) -> SignedSig {
        let payload_digest = sha256_digest(&payload);
        // cosign's config: an image config whose one diff_id is the payload.
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "",
            "created": "0001-01-01T00:00:00Z",
            "history": [{ "created": "0001-01-01T00:00:00Z" }],
            "os": "",
            "rootfs": { "type": "layers", "diff_ids": [payload_digest] },
            "config": {},
        }))
        .expect("json");
        let config_digest = sha256_digest(&config);
        let mut annotations = extra_annotations;
        annotations.insert(SIGNATURE_ANNOTATION.to_string(), signature_b64.clone());
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "size": config.len(),
                "digest": config_digest,
            },
            "layers": [{
                "mediaType": SIMPLE_SIGNING_MEDIA_TYPE,
                "size": payload.len(),
                "digest": payload_digest,
                "annotations": annotations,
            }],
        }))
        .expect("json");
        SignedSig {
            payload_digest,
            manifest_digest: sha256_digest(&manifest),
            tag: sig_tag(digest),
            payload,
            signature_b64,
            config,
            config_digest,
            manifest,
        }
    }

    /// The candidate discovery would hand a verifier for this artifact (found under its tag).
    pub fn candidate(&self) -> Candidate {
        super::dir::candidate_from_manifest(
            &self.manifest,
            &[(self.payload_digest.as_str(), self.payload.as_slice())],
            FoundVia::CosignTag,
        )
    }
}

/// A `Layer` from parts (tests that build candidates by hand).
pub fn layer(media_type: &str, bytes: &[u8], annotations: BTreeMap<String, String>) -> Layer {
    Layer {
        media_type: media_type.to_string(),
        digest: Digest::sha256_of(bytes),
        annotations,
        bytes: Bytes::copy_from_slice(bytes),
    }
}

/// Unused-kind marker so tests can say which kind they expect.
pub const LEGACY: ArtifactKind = ArtifactKind::CosignSimpleSigning;

/// The in-toto statement cosign 3 signs for an image (`predicateType` cosign/sign/v1 unless an
/// attack test says otherwise).
pub fn statement(digest: &Digest, predicate_type: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{ "digest": { "sha256": digest.hex() } }],
        "predicateType": predicate_type,
    }))
    .expect("json")
}

/// DSSE pre-authentication encoding (DSSE v1 protocol).
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

impl CosignTestKey {
    /// A key-signed Sigstore bundle v0.3 with a DSSE envelope over `statement` and no log
    /// entry (`cosign sign --key --tlog-upload=false` with cosign 3's bundle format).
    pub fn sign_bundle_dsse(&self, statement: &[u8]) -> Vec<u8> {
        let payload_type = "application/vnd.in-toto+json";
        let sig = self.sign(&pae(payload_type, statement));
        key_bundle(serde_json::json!({
            "dsseEnvelope": {
                "payload": STANDARD.encode(statement),
                "payloadType": payload_type,
                "signatures": [{ "sig": STANDARD.encode(sig), "keyid": "" }],
            }
        }))
    }

    /// A key-signed bundle v0.3 with a message signature over `manifest` (whose digest it
    /// declares), no log entry.
    pub fn sign_bundle_message(&self, manifest: &[u8]) -> Vec<u8> {
        let sig = self.sign(manifest);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, manifest);
        key_bundle(serde_json::json!({
            "messageSignature": {
                "messageDigest": { "algorithm": "SHA2_256", "digest": STANDARD.encode(digest.as_ref()) },
                "signature": STANDARD.encode(sig),
            }
        }))
    }
}

fn key_bundle(content: serde_json::Value) -> Vec<u8> {
    let mut bundle = serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": { "publicKey": { "hint": "" }, "tlogEntries": [] },
    });
    for (k, v) in content.as_object().expect("object") {
        bundle[k] = v.clone();
    }
    serde_json::to_vec(&bundle).expect("json")
}
