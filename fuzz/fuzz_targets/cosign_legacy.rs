//! The cosign legacy annotation adapter, `trust::cosign::legacy`: `LegacySignature::from_layer`
//! (a `.sig` layer's simple-signing payload and annotations) and `to_bundle_json` (the Sigstore
//! v0.1 bundle handed to sigstore-verify).
//!
//! Input: either a containers/image signature file (`\0sigstore-json\n{mimeType, payload,
//! annotations}`, the format of the seeds copied from tests/fixtures/signatures/), or, for any
//! other bytes, edits (`arbitrary`) of one of three real layers embedded here (keyless
//! Fulcio + Rekor, key + Rekor, PKI): the media type, the payload and each annotation kept,
//! removed, replaced, cut, or with bytes flipped.
//!
//! Invariants: no panic; an accepted layer has the simple-signing media type and a signature
//! annotation, its payload is exactly the layer bytes (the bytes whose digest discovery
//! checked), its signature is the annotation's base64 (line breaks skipped), its certificate
//! and chain are the annotations' PEM blocks (a chain only with a certificate), its Rekor
//! entry is the bundle annotation and its timestamp the RFC 3161 annotation's token; a bundle is
//! made only with a Rekor entry (v0.1) or a timestamp (v0.2 without log entries), and it
//! carries exactly those bytes: the signature, the payload's sha256, the SET, body, integrated
//! time, log index and log id of the annotation, the timestamp token, and the certificate
//! followed by the chain (or a key hint when there is no certificate).
#![no_main]

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use portcullis::refs::Digest;
use portcullis::trust::cosign::legacy::LegacySignature;
use portcullis::trust::cosign::{
    BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, RFC3161_TIMESTAMP_ANNOTATION,
    SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE,
};
use portcullis::trust::signature::Layer;
use serde::Deserialize;
use sha2::Digest as _;

const PREFIX: &[u8] = b"\x00sigstore-json\n";
const BASES: [&[u8]; 3] = [
    include_bytes!(
        "../../tests/fixtures/signatures/cosign-containers-image/dir-img-cosign-fulcio-rekor-valid/signature-1"
    ),
    include_bytes!(
        "../../tests/fixtures/signatures/cosign-containers-image/dir-img-cosign-key-rekor-valid/signature-1"
    ),
    include_bytes!(
        "../../tests/fixtures/signatures/cosign-containers-image/dir-img-cosign-pki-valid/signature-1"
    ),
];

#[derive(Deserialize)]
struct Dir {
    #[serde(rename = "mimeType")]
    mime_type: String,
    payload: String,
    annotations: BTreeMap<String, String>,
}

/// A containers/image signature file as the layer discovery would hand over.
fn layer_of(file: &[u8]) -> Option<Layer> {
    let d: Dir = serde_json::from_slice(file.strip_prefix(PREFIX)?).ok()?;
    let payload = STANDARD.decode(d.payload).ok()?;
    Some(Layer {
        media_type: d.mime_type,
        digest: Digest::sha256_of(&payload),
        annotations: d.annotations,
        bytes: payload.into(),
    })
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Keep,
    Remove,
    Replace(String),
    Cut(usize),
    Flip(Vec<(usize, u8)>),
}

fn edit(value: Option<Vec<u8>>, e: Edit) -> Option<Vec<u8>> {
    match e {
        Edit::Keep => value,
        Edit::Remove => None,
        Edit::Replace(s) => Some(s.into_bytes()),
        Edit::Cut(n) => value.map(|mut v| {
            v.truncate(n % (v.len() + 1));
            v
        }),
        Edit::Flip(flips) => value.map(|mut v| {
            for (at, x) in flips {
                if !v.is_empty() {
                    let i = at % v.len();
                    v[i] ^= x;
                }
            }
            v
        }),
    }
}

fn edited(data: &[u8]) -> Option<Layer> {
    let mut u = Unstructured::new(data);
    let mut layer = layer_of(BASES[usize::from(u.arbitrary::<u8>().ok()?) % BASES.len()])?;
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    layer.media_type = edit(Some(layer.media_type.into_bytes()), u.arbitrary().ok()?)
        .map(text)
        .unwrap_or_default();
    layer.bytes = edit(Some(layer.bytes.to_vec()), u.arbitrary().ok()?)
        .unwrap_or_default()
        .into();
    layer.digest = Digest::sha256_of(&layer.bytes);
    for key in [
        SIGNATURE_ANNOTATION,
        CERTIFICATE_ANNOTATION,
        CHAIN_ANNOTATION,
        BUNDLE_ANNOTATION,
    ] {
        let value = layer.annotations.remove(key).map(String::into_bytes);
        if let Some(v) = edit(value, u.arbitrary().ok()?) {
            layer.annotations.insert(key.to_owned(), text(v));
        }
    }
    Some(layer)
}

/// The DER of each PEM block, read independently of the adapter (None if any is not base64).
fn pem_ders(pem: &str) -> Option<Vec<Vec<u8>>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(b) = rest.find(BEGIN) {
        let after = &rest[b + BEGIN.len()..];
        let e = after.find(END)?;
        let body: String = after[..e].split_whitespace().collect();
        out.push(STANDARD.decode(body).ok()?);
        rest = &after[e + END.len()..];
    }
    Some(out)
}

fn b64(v: &serde_json::Value) -> Vec<u8> {
    STANDARD
        .decode(v.as_str().expect("a string"))
        .expect("base64 written by the adapter")
}

fuzz_target!(|data: &[u8]| {
    let layer = if data.starts_with(PREFIX) {
        layer_of(data)
    } else {
        edited(data)
    };
    let Some(layer) = layer else {
        return;
    };
    let Ok(sig) = LegacySignature::from_layer(&layer) else {
        return;
    };
    let ann = &layer.annotations;
    assert_eq!(layer.media_type, SIMPLE_SIGNING_MEDIA_TYPE);
    assert_eq!(
        sig.payload,
        &layer.bytes[..],
        "the payload is the layer's bytes"
    );
    let unwrapped: String = ann[SIGNATURE_ANNOTATION]
        .chars()
        .filter(|c| !matches!(c, '\r' | '\n'))
        .collect();
    assert_eq!(sig.signature, STANDARD.decode(unwrapped).expect("base64"));
    let present = |k: &str| ann.get(k).is_some_and(|v| !v.trim().is_empty());
    assert_eq!(sig.certificate.is_some(), present(CERTIFICATE_ANNOTATION));
    assert_eq!(!sig.chain.is_empty(), present(CHAIN_ANNOTATION));
    assert!(sig.certificate.is_some() || sig.chain.is_empty());
    if let Some(der) = &sig.certificate
        && let Some(refs) = ann.get(CERTIFICATE_ANNOTATION).and_then(|c| pem_ders(c))
        && refs.len() == 1
    {
        assert_eq!(der, &refs[0], "the certificate is the annotation's PEM");
    }
    if let Some(refs) = ann.get(CHAIN_ANNOTATION).and_then(|c| pem_ders(c))
        && refs.len() == sig.chain.len()
    {
        assert_eq!(sig.chain, refs, "the chain is the annotation's PEM blocks");
    }
    assert_eq!(sig.rekor.is_some(), ann.contains_key(BUNDLE_ANNOTATION));
    assert_eq!(
        sig.timestamp.is_some(),
        ann.contains_key(RFC3161_TIMESTAMP_ANNOTATION)
    );

    let Ok(json) = sig.to_bundle_json() else {
        return;
    };
    let b: serde_json::Value = serde_json::from_str(&json).expect("the adapter writes JSON");
    assert_eq!(b64(&b["messageSignature"]["signature"]), sig.signature);
    assert_eq!(
        b64(&b["messageSignature"]["messageDigest"]["digest"]),
        sha2::Sha256::digest(&layer.bytes).to_vec()
    );
    let stamps = &b["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"];
    match &sig.timestamp {
        Some(token) => assert_eq!(&b64(&stamps[0]["signedTimestamp"]), token),
        None => assert!(stamps.is_null()),
    }
    let entries = b["verificationMaterial"]["tlogEntries"]
        .as_array()
        .expect("tlogEntries");
    let Some(rekor) = sig.rekor.as_ref() else {
        assert!(
            sig.timestamp.is_some(),
            "a bundle only with a Rekor entry or a timestamp"
        );
        assert!(entries.is_empty());
        assert_eq!(
            b["mediaType"],
            "application/vnd.dev.sigstore.bundle+json;version=0.2"
        );
        return;
    };
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    // What the annotation says, read as a plain JSON value (when it is one: serde skips
    // fields it does not keep less strictly, see fuzz/README.md).
    if let Ok(a) = serde_json::from_str::<serde_json::Value>(&ann[BUNDLE_ANNOTATION]) {
        assert_eq!(
            e["inclusionPromise"]["signedEntryTimestamp"],
            a["SignedEntryTimestamp"]
        );
        assert_eq!(e["canonicalizedBody"], a["Payload"]["body"]);
        assert_eq!(
            e["integratedTime"].as_str().map(str::to_owned),
            a["Payload"]["integratedTime"]
                .as_i64()
                .map(|t| t.to_string())
        );
        assert_eq!(
            e["logIndex"].as_str().map(str::to_owned),
            a["Payload"]["logIndex"].as_i64().map(|t| t.to_string())
        );
    }
    assert_eq!(
        e["inclusionPromise"]["signedEntryTimestamp"],
        rekor.signed_entry_timestamp.as_str()
    );
    assert_eq!(
        b64(&e["logId"]["keyId"]),
        hex::decode(&rekor.payload.log_id).expect("hex")
    );
    let material = &b["verificationMaterial"];
    match &sig.certificate {
        Some(leaf) => {
            let certs: Vec<Vec<u8>> = material["x509CertificateChain"]["certificates"]
                .as_array()
                .expect("certificates")
                .iter()
                .map(|c| b64(&c["rawBytes"]))
                .collect();
            let want: Vec<Vec<u8>> = std::iter::once(leaf).chain(&sig.chain).cloned().collect();
            assert_eq!(certs, want, "the certificate, then the chain");
            assert!(material["publicKey"].is_null());
        }
        None => {
            assert!(material["x509CertificateChain"].is_null());
            assert_eq!(material["publicKey"]["hint"], "");
        }
    }
});
