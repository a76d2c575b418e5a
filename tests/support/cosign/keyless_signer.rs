//! A Sigstore-like test instance for keyless signatures: a Fulcio-like CA (P-256, issuing
//! 10-minute code-signing certificates with the OIDC issuer extension), a Rekor-like log key
//! (SETs over hashedrekord entries), and the `trusted_root.json` naming both (no CT log: use
//! `sct = "not-required"`). It makes legacy `.sig` artifacts (certificate, chain and Rekor
//! bundle annotations) and v0.3 bundles (with an inclusion proof and a signed checkpoint) that
//! end-to-end tests can push to a registry.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use portcullis::trust::cosign::{BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, CustomExtension, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType, SigningKey,
};

use super::signer::{SignedSig, simple_signing_payload};

/// Fulcio's OIDC issuer extension (v1: the raw string as the extension value).
const FULCIO_ISSUER_V1: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 1];
const P256_SPKI_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The test Sigstore instance.
pub struct TestSigstore {
    ca: CertifiedIssuer<'static, KeyPair>,
    rekor: EcdsaKeyPair,
    rekor_spki: Vec<u8>,
    rng: SystemRandom,
}

/// When a keyless signature is made, and how long its certificate lives.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Unix seconds the log says it integrated the entry (at most the real now: sigstore-verify
    /// refuses entries from the future).
    pub integrated_time: i64,
    pub not_before: i64,
    pub not_after: i64,
}

impl Timing {
    /// Signed a minute ago with a certificate valid from two minutes ago for ten minutes.
    pub fn recent() -> Timing {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64;
        Timing {
            integrated_time: now - 60,
            not_before: now - 120,
            not_after: now + 480,
        }
    }
}

fn offset(secs: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(secs).expect("time")
}

impl TestSigstore {
    pub fn new() -> TestSigstore {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "portcullis-test");
        params
            .distinguished_name
            .push(DnType::CommonName, "test fulcio");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = offset(946_684_800); // 2000-01-01
        params.not_after = offset(4_102_444_800); // 2100-01-01
        let ca =
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("rekor key");
        let rekor = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
            .expect("rekor key");
        let mut rekor_spki = P256_SPKI_PREFIX.to_vec();
        rekor_spki.extend_from_slice(rekor.public_key().as_ref());
        TestSigstore {
            ca,
            rekor,
            rekor_spki,
            rng,
        }
    }

    /// The log's id: sha256 of its public key (SPKI DER), as Rekor computes it.
    pub fn log_id(&self) -> Vec<u8> {
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.rekor_spki)
            .as_ref()
            .to_vec()
    }

    /// `trusted_root.json` for this instance: the CA and the log key, valid since 2000.
    pub fn trusted_root_json(&self) -> String {
        self.trusted_root_json_with_tsas(&[])
    }

    /// As `trusted_root_json`, with these `timestampAuthorities` (see `tsa_authority`).
    pub fn trusted_root_json_with_tsas(&self, tsas: &[serde_json::Value]) -> String {
        serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [{
                "baseUrl": "https://rekor.test",
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": STANDARD.encode(&self.rekor_spki),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": { "start": "2000-01-01T00:00:00Z" },
                },
                "logId": { "keyId": STANDARD.encode(self.log_id()) },
            }],
            "certificateAuthorities": [{
                "subject": { "organization": "portcullis-test", "commonName": "test fulcio" },
                "uri": "https://fulcio.test",
                "certChain": { "certificates": [{ "rawBytes": STANDARD.encode(self.ca.der()) }] },
                "validFor": { "start": "2000-01-01T00:00:00Z" },
            }],
            "ctlogs": [],
            "timestampAuthorities": tsas,
        })
        .to_string()
    }

    /// A Fulcio-like certificate for an e-mail identity and OIDC issuer (PEM, DER); its key pair.
    fn leaf(&self, email: &str, issuer: &str, t: Timing) -> (String, Vec<u8>, KeyPair) {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = vec![SanType::Rfc822Name(email.try_into().expect("email"))];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = offset(t.not_before);
        params.not_after = offset(t.not_after);
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                FULCIO_ISSUER_V1,
                issuer.as_bytes().to_vec(),
            ));
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.ca).expect("leaf");
        (cert.pem(), cert.der().to_vec(), key)
    }

    /// A legacy keyless signature of `digest` claiming `docker_reference`, by `email` as
    /// issued by `issuer`, logged at `t.integrated_time`.
    pub fn sign_image(
        &self,
        email: &str,
        issuer: &str,
        docker_reference: &str,
        digest: &str,
        t: Timing,
    ) -> SignedSig {
        let payload = simple_signing_payload(docker_reference, digest);
        let (cert_pem, _, key) = self.leaf(email, issuer, t);
        let signature = key.sign(&payload).expect("sign");
        let bundle = self.rekor_bundle(&payload, &signature, &cert_pem, t.integrated_time);
        let mut annotations = BTreeMap::new();
        annotations.insert(CERTIFICATE_ANNOTATION.to_string(), cert_pem);
        annotations.insert(CHAIN_ANNOTATION.to_string(), self.ca.pem());
        annotations.insert(BUNDLE_ANNOTATION.to_string(), bundle);
        SignedSig::assemble(payload, STANDARD.encode(signature), annotations, digest)
    }

    /// cosign's `dev.sigstore.cosign/bundle`: a hashedrekord entry for this signature and
    /// certificate, and the log's SET over (body, integratedTime, logID, logIndex) in
    /// canonical JSON (keys sorted, no spaces).
    fn rekor_bundle(&self, payload: &[u8], signature: &[u8], cert_pem: &str, at: i64) -> String {
        let body = STANDARD.encode(hashedrekord(payload, signature, cert_pem));
        let log_id = hex::encode(self.log_id());
        let log_index = 7;
        let set = self.set(&body, at, log_index);
        serde_json::json!({
            "SignedEntryTimestamp": STANDARD.encode(set),
            "Payload": {
                "body": body,
                "integratedTime": at,
                "logIndex": log_index,
                "logID": log_id,
            },
        })
        .to_string()
    }
}

impl TestSigstore {
    /// The log's SET over (body, integratedTime, logID, logIndex) in canonical JSON (keys
    /// sorted, no spaces); `body_b64` is the entry body as base64.
    fn set(&self, body_b64: &str, at: i64, log_index: i64) -> Vec<u8> {
        let log_id = hex::encode(self.log_id());
        let canonical = format!(
            r#"{{"body":"{body_b64}","integratedTime":{at},"logID":"{log_id}","logIndex":{log_index}}}"#
        );
        let set = self.rekor.sign(&self.rng, canonical.as_bytes());
        set.expect("SET").as_ref().to_vec()
    }

    /// A keyless Sigstore bundle v0.3, cosign 3's format: a message signature over `manifest`
    /// (the image manifest bytes, so over its digest) by `email` as issued by `issuer`, the
    /// certificate, and a hashedrekord entry with its SET and an inclusion proof in a
    /// one-entry tree whose checkpoint (a signed note) the log key signs.
    pub fn sign_bundle(&self, email: &str, issuer: &str, manifest: &[u8], t: Timing) -> Vec<u8> {
        let (cert_pem, cert_der, key) = self.leaf(email, issuer, t);
        let signature = key.sign(manifest).expect("sign");
        let body = hashedrekord(manifest, &signature, &cert_pem);
        let body_b64 = STANDARD.encode(&body);
        let set = self.set(&body_b64, t.integrated_time, 0);
        // RFC 6962 leaf hash; a tree of one entry has it as its root and an empty path.
        let mut leaf = vec![0u8];
        leaf.extend_from_slice(body.as_bytes());
        let root = STANDARD.encode(sha256(&leaf));
        let note = format!("rekor.test - 1\n1\n{root}\n");
        let mut hint_sig = self.log_id()[..4].to_vec();
        let note_sig = self
            .rekor
            .sign(&self.rng, note.as_bytes())
            .expect("checkpoint");
        hint_sig.extend_from_slice(note_sig.as_ref());
        let checkpoint = format!(
            "{note}\n\u{2014} rekor.test {}\n",
            STANDARD.encode(hint_sig)
        );
        serde_json::to_vec(&serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "certificate": { "rawBytes": STANDARD.encode(cert_der) },
                "tlogEntries": [{
                    "logIndex": "0",
                    "logId": { "keyId": STANDARD.encode(self.log_id()) },
                    "kindVersion": { "kind": "hashedrekord", "version": "0.0.1" },
                    "integratedTime": t.integrated_time.to_string(),
                    "inclusionPromise": { "signedEntryTimestamp": STANDARD.encode(set) },
                    "inclusionProof": {
                        "logIndex": "0",
                        "rootHash": root,
                        "treeSize": "1",
                        "hashes": [],
                        "checkpoint": { "envelope": checkpoint },
                    },
                    "canonicalizedBody": body_b64,
                }],
            },
            "messageSignature": {
                "messageDigest": { "algorithm": "SHA2_256", "digest": STANDARD.encode(sha256(manifest)) },
                "signature": STANDARD.encode(signature),
            },
        }))
        .expect("json")
    }
}

/// A trusted root's `timestampAuthorities` entry for a TSA chain (`tests/support/tsa.rs`'s
/// `leaf_der()` and `root_der()`; the leaf is pinned, as sigstore-verify requires), valid for
/// `[start, end)` (RFC 3339; no end: open). The TSA is passed as its certificates so that
/// `benches/cosign.rs`, which includes this module alone, builds.
pub fn tsa_authority(
    (leaf_der, root_der): (&[u8], &[u8]),
    start: &str,
    end: Option<&str>,
) -> serde_json::Value {
    let mut valid_for = serde_json::json!({ "start": start });
    if let Some(end) = end {
        valid_for["end"] = end.into();
    }
    serde_json::json!({
        "subject": { "organization": "portcullis-test", "commonName": "test TSA" },
        "uri": "https://tsa.test",
        "certChain": { "certificates": [
            { "rawBytes": STANDARD.encode(leaf_der) },
            { "rawBytes": STANDARD.encode(root_der) },
        ] },
        "validFor": valid_for,
    })
}

/// cosign's `dev.sigstore.cosign/rfc3161timestamp` annotation for a DER token.
pub fn timestamp_annotation(token: &[u8]) -> String {
    serde_json::json!({ "SignedRFC3161Timestamp": STANDARD.encode(token) }).to_string()
}

/// Adds an RFC 3161 timestamp over a v0.3 bundle's signature (`stamp` makes the token from
/// the signature bytes, e.g. `|s| tsa.stamp(s)`), as `cosign sign --timestamp-server-url`
/// does; without `keep_log`, drops its log entry (`--tlog-upload=false`).
pub fn stamp_bundle(
    bundle: &[u8],
    stamp: impl FnOnce(&[u8]) -> Vec<u8>,
    keep_log: bool,
) -> Vec<u8> {
    let mut b: serde_json::Value = serde_json::from_slice(bundle).expect("bundle");
    let sig = STANDARD
        .decode(
            b["messageSignature"]["signature"]
                .as_str()
                .expect("signature"),
        )
        .expect("base64");
    let token = stamp(&sig);
    let m = &mut b["verificationMaterial"];
    m["timestampVerificationData"] =
        serde_json::json!({ "rfc3161Timestamps": [{ "signedTimestamp": STANDARD.encode(token) }] });
    if !keep_log {
        m["tlogEntries"] = serde_json::json!([]);
    }
    serde_json::to_vec(&b).expect("json")
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

/// A Rekor hashedrekord v0.0.1 entry body for a signature over `signed` by the certificate.
fn hashedrekord(signed: &[u8], signature: &[u8], cert_pem: &str) -> String {
    format!(
        r#"{{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{{"data":{{"hash":{{"algorithm":"sha256","value":"{}"}}}},"signature":{{"content":"{}","publicKey":{{"content":"{}"}}}}}}}}"#,
        hex::encode(sha256(signed)),
        STANDARD.encode(signature),
        STANDARD.encode(cert_pem)
    )
}

impl Default for TestSigstore {
    fn default() -> Self {
        TestSigstore::new()
    }
}
