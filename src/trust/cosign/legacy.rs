//! The annotation adapter: one layer of a legacy cosign `.sig` manifest, read into its parts,
//! and mapped onto a Sigstore v0.1 bundle so that sigstore-verify checks what it can (Fulcio
//! chain at signing time, SCT, Rekor SET, log entry bound to this signature).
//!
//! A legacy layer is the signed payload (the blob) plus annotations (cosign
//! `pkg/oci/static/signature.go`, `pkg/oci/internal/signature/layer.go`):
//! - `dev.cosignproject.cosign/signature`: base64 of the signature over the payload bytes;
//! - `dev.sigstore.cosign/certificate`: PEM of the Fulcio (or other PKI) signing certificate;
//! - `dev.sigstore.cosign/chain`: PEM of the intermediates and root;
//! - `dev.sigstore.cosign/bundle`: Rekor's answer, `{"SignedEntryTimestamp", "Payload": {"body",
//!   "integratedTime", "logIndex", "logID"}}`;
//! - `dev.sigstore.cosign/rfc3161timestamp`: a TSA's answer, `{"SignedRFC3161Timestamp": "<base64
//!   of the DER token>"}` (cosign `pkg/cosign/bundle/tsa.go`), whose message imprint is over the
//!   raw signature bytes (cosign `VerifyRFC3161Timestamp`).
//!
//! Nothing is verified here: this only parses, and refuses what it cannot parse.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::json;

use crate::trust::signature::Layer;

/// The simple-signing payload media type (the layer's `mediaType`).
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
pub const RFC3161_TIMESTAMP_ANNOTATION: &str = "dev.sigstore.cosign/rfc3161timestamp";

/// One legacy signature, parsed.
#[derive(Debug, Clone)]
pub struct LegacySignature<'a> {
    /// The exact payload bytes the signature is over (the layer blob, digest checked by
    /// discovery).
    pub payload: &'a [u8],
    pub signature: Vec<u8>,
    /// DER of the signing certificate, if any.
    pub certificate: Option<Vec<u8>>,
    /// DER of the chain certificates, in annotation order.
    pub chain: Vec<Vec<u8>>,
    pub rekor: Option<RekorBundle>,
    /// DER of the RFC 3161 timestamp (a TimeStampToken, or the TSA's whole TimeStampResp:
    /// sigstore-tsa reads both).
    pub timestamp: Option<Vec<u8>>,
}

/// `dev.sigstore.cosign/rfc3161timestamp` (cosign `bundle.RFC3161Timestamp`: a Go `[]byte`,
/// so standard base64 in JSON).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rfc3161Annotation {
    #[serde(rename = "SignedRFC3161Timestamp")]
    signed_rfc3161_timestamp: String,
}

/// `dev.sigstore.cosign/bundle` (cosign `pkg/cosign/bundle/rekor.go`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RekorBundle {
    #[serde(rename = "SignedEntryTimestamp")]
    pub signed_entry_timestamp: String,
    #[serde(rename = "Payload")]
    pub payload: RekorPayload,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RekorPayload {
    /// base64 of the canonicalized log entry body.
    pub body: String,
    #[serde(rename = "integratedTime")]
    pub integrated_time: i64,
    #[serde(rename = "logIndex")]
    pub log_index: i64,
    /// hex of the log's key id (sha256 of its public key).
    #[serde(rename = "logID")]
    pub log_id: String,
}

impl<'a> LegacySignature<'a> {
    /// Reads a layer; an error says which annotation is wrong.
    pub fn from_layer(layer: &'a Layer) -> Result<Self, String> {
        if layer.media_type != SIMPLE_SIGNING_MEDIA_TYPE {
            return Err(format!(
                "layer {} is {:?}, not a cosign simple-signing payload",
                layer.digest, layer.media_type
            ));
        }
        let sig = layer
            .annotations
            .get(SIGNATURE_ANNOTATION)
            .ok_or_else(|| format!("layer {} has no {SIGNATURE_ANNOTATION}", layer.digest))?;
        // Go's base64 decoder, which cosign and containers/image use, skips line breaks
        // (RSA signatures are written wrapped); nothing else is tolerated.
        let unwrapped: String = sig.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
        let signature = STANDARD
            .decode(unwrapped)
            .map_err(|e| format!("{SIGNATURE_ANNOTATION} is not base64: {e}"))?;
        let certificate = match layer.annotations.get(CERTIFICATE_ANNOTATION) {
            // cosign writes an empty certificate annotation for key-signed images.
            Some(pem) if !pem.trim().is_empty() => {
                let mut certs = pem_certificates(pem, CERTIFICATE_ANNOTATION)?;
                if certs.len() != 1 {
                    return Err(format!(
                        "{CERTIFICATE_ANNOTATION} holds {} certificates, not one",
                        certs.len()
                    ));
                }
                certs.pop()
            }
            _ => None,
        };
        let chain = match layer.annotations.get(CHAIN_ANNOTATION) {
            Some(pem) if !pem.trim().is_empty() => pem_certificates(pem, CHAIN_ANNOTATION)?,
            _ => Vec::new(),
        };
        if certificate.is_none() && !chain.is_empty() {
            return Err(format!(
                "{CHAIN_ANNOTATION} without {CERTIFICATE_ANNOTATION}"
            ));
        }
        let rekor = match layer.annotations.get(BUNDLE_ANNOTATION) {
            Some(text) => Some(
                serde_json::from_str::<RekorBundle>(text)
                    .map_err(|e| format!("{BUNDLE_ANNOTATION} is not a Rekor bundle: {e}"))?,
            ),
            None => None,
        };
        let timestamp = match layer.annotations.get(RFC3161_TIMESTAMP_ANNOTATION) {
            Some(text) => Some(parse_timestamp_annotation(text)?),
            None => None,
        };
        Ok(LegacySignature {
            payload: &layer.bytes,
            signature,
            certificate,
            chain,
            rekor,
            timestamp,
        })
    }

    /// The Sigstore bundle this signature is, for sigstore-verify: a message signature over the
    /// payload (its sha256 and the signature), the certificate chain (or, for a key, an empty
    /// public-key hint: the key comes from the policy), the Rekor entry with its SET as the
    /// inclusion promise, and the RFC 3161 timestamp. The artifact to verify against is
    /// `self.payload`.
    ///
    /// The version is the smallest that sigstore-bundle's structural check (0.15.1) accepts
    /// for what the layer carries: v0.1 with a Rekor entry (a SET without an inclusion proof is
    /// valid only there; a timestamp rides along and is verified too); without one, v0.2,
    /// because v0.1 requires an inclusion promise and v0.3 refuses a certificate chain (cosign
    /// writes the chain annotation). With neither there is no signing time: refused.
    pub fn to_bundle_json(&self) -> Result<String, String> {
        let mut material = match &self.certificate {
            Some(leaf) => {
                let certs: Vec<_> = std::iter::once(leaf)
                    .chain(&self.chain)
                    .map(|der| json!({ "rawBytes": STANDARD.encode(der) }))
                    .collect();
                json!({ "x509CertificateChain": { "certificates": certs } })
            }
            None => json!({ "publicKey": { "hint": "" } }),
        };
        let version = match (&self.rekor, &self.timestamp) {
            (Some(rekor), _) => {
                material["tlogEntries"] = json!([tlog_entry(rekor)?]);
                "0.1"
            }
            (None, Some(_)) => {
                material["tlogEntries"] = json!([]);
                "0.2"
            }
            (None, None) => {
                return Err(format!(
                    "no {BUNDLE_ANNOTATION} (no Rekor entry) and no {RFC3161_TIMESTAMP_ANNOTATION}"
                ));
            }
        };
        if let Some(token) = &self.timestamp {
            material["timestampVerificationData"] = json!({
                "rfc3161Timestamps": [{ "signedTimestamp": STANDARD.encode(token) }],
            });
        }
        let digest = sha2_256(self.payload);
        let bundle = json!({
            "mediaType": format!("application/vnd.dev.sigstore.bundle+json;version={version}"),
            "verificationMaterial": material,
            "messageSignature": {
                "messageDigest": { "algorithm": "SHA2_256", "digest": STANDARD.encode(digest) },
                "signature": STANDARD.encode(&self.signature),
            },
        });
        Ok(bundle.to_string())
    }
}

/// The v0.1 bundle's log entry for cosign's Rekor bundle annotation.
fn tlog_entry(rekor: &RekorBundle) -> Result<serde_json::Value, String> {
    let body = STANDARD
        .decode(&rekor.payload.body)
        .map_err(|e| format!("{BUNDLE_ANNOTATION} Payload.body is not base64: {e}"))?;
    let (kind, version) = entry_kind(&body)?;
    let log_id = hex::decode(&rekor.payload.log_id)
        .map_err(|e| format!("{BUNDLE_ANNOTATION} Payload.logID is not hex: {e}"))?;
    Ok(json!({
        "logIndex": rekor.payload.log_index.to_string(),
        "logId": { "keyId": STANDARD.encode(log_id) },
        "kindVersion": { "kind": kind, "version": version },
        "integratedTime": rekor.payload.integrated_time.to_string(),
        "inclusionPromise": { "signedEntryTimestamp": rekor.signed_entry_timestamp },
        "canonicalizedBody": rekor.payload.body,
    }))
}

/// The DER token in `dev.sigstore.cosign/rfc3161timestamp`; refused when it is not cosign's
/// shape (an unreadable timestamp is never silently dropped).
fn parse_timestamp_annotation(text: &str) -> Result<Vec<u8>, String> {
    let a: Rfc3161Annotation = serde_json::from_str(text).map_err(|e| {
        format!("{RFC3161_TIMESTAMP_ANNOTATION} is not an RFC 3161 timestamp annotation: {e}")
    })?;
    let der = STANDARD
        .decode(&a.signed_rfc3161_timestamp)
        .map_err(|e| format!("{RFC3161_TIMESTAMP_ANNOTATION} is not base64: {e}"))?;
    if der.is_empty() {
        return Err(format!("{RFC3161_TIMESTAMP_ANNOTATION} is empty"));
    }
    Ok(der)
}

fn sha2_256(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).to_vec()
}

/// `kind` and `apiVersion` of a Rekor entry body (`hashedrekord` 0.0.1 for cosign 2,
/// `rekord` for older cosign).
fn entry_kind(body: &[u8]) -> Result<(String, String), String> {
    #[derive(Deserialize)]
    struct Head {
        kind: String,
        #[serde(rename = "apiVersion")]
        api_version: String,
    }
    let head: Head = serde_json::from_slice(body)
        .map_err(|e| format!("{BUNDLE_ANNOTATION} Payload.body is not a Rekor entry: {e}"))?;
    Ok((head.kind, head.api_version))
}

/// DER of every certificate in a PEM text.
fn pem_certificates(pem: &str, annotation: &str) -> Result<Vec<Vec<u8>>, String> {
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    for block in pem.split_inclusive(END).filter(|b| b.contains(END)) {
        let der = sigstore_types::DerCertificate::from_pem(block.trim())
            .map_err(|e| format!("{annotation} is not PEM certificates: {e}"))?;
        out.push(der.as_bytes().to_vec());
    }
    if out.is_empty() {
        return Err(format!("{annotation} holds no PEM certificate"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! One test per annotation of the adapter, on the real keyless fixture's layer.
    use super::*;
    use crate::refs::Digest;

    const FIXTURE: &str = "tests/fixtures/signatures/cosign-containers-image/dir-img-cosign-fulcio-rekor-valid/signature-1";

    /// The real layer: containers/image's `\0sigstore-json\n{mimeType, payload, annotations}`.
    fn real_layer() -> Layer {
        #[derive(Deserialize)]
        struct Dir {
            #[serde(rename = "mimeType")]
            mime_type: String,
            payload: String,
            annotations: std::collections::BTreeMap<String, String>,
        }
        let bytes = std::fs::read(FIXTURE).unwrap();
        let json = bytes
            .strip_prefix(b"\x00sigstore-json\n".as_slice())
            .unwrap();
        let d: Dir = serde_json::from_slice(json).unwrap();
        let payload = STANDARD.decode(d.payload).unwrap();
        Layer {
            media_type: d.mime_type,
            digest: Digest::sha256_of(&payload),
            annotations: d.annotations,
            bytes: payload.into(),
        }
    }

    fn with(key: &str, value: Option<&str>) -> Layer {
        let mut l = real_layer();
        match value {
            Some(v) => l.annotations.insert(key.into(), v.into()),
            None => l.annotations.remove(key),
        };
        l
    }

    #[test]
    fn media_type_must_be_simple_signing() {
        let mut l = real_layer();
        l.media_type = "text/plain".into();
        let err = LegacySignature::from_layer(&l).unwrap_err();
        assert!(err.contains("not a cosign simple-signing payload"), "{err}");
    }

    #[test]
    fn signature_annotation() {
        let l = real_layer();
        let sig = LegacySignature::from_layer(&l).unwrap();
        assert_eq!(sig.payload, &l.bytes[..]);
        assert_eq!(sig.signature[0], 0x30, "an ASN.1 DER ECDSA signature");
        let err = LegacySignature::from_layer(&with(SIGNATURE_ANNOTATION, None)).unwrap_err();
        assert!(
            err.contains("has no dev.cosignproject.cosign/signature"),
            "{err}"
        );
        let err =
            LegacySignature::from_layer(&with(SIGNATURE_ANNOTATION, Some("*not*"))).unwrap_err();
        assert!(err.contains("is not base64"), "{err}");
        // Wrapped base64 (Go's decoder skips line breaks) reads as the same bytes.
        let b64 = l.annotations[SIGNATURE_ANNOTATION].clone();
        let wrapped = format!("{}\n{}", &b64[..40], &b64[40..]);
        let w = with(SIGNATURE_ANNOTATION, Some(&wrapped));
        assert_eq!(
            LegacySignature::from_layer(&w).unwrap().signature,
            sig.signature
        );
    }

    #[test]
    fn certificate_annotation() {
        let l = real_layer();
        let sig = LegacySignature::from_layer(&l).unwrap();
        let der = sig.certificate.expect("certificate");
        let pem = &l.annotations[CERTIFICATE_ANNOTATION];
        assert_eq!(
            der,
            sigstore_types::DerCertificate::from_pem(pem.trim())
                .unwrap()
                .as_bytes()
        );
        // cosign writes an empty certificate annotation for key signatures.
        let none =
            LegacySignature::from_layer(&with(CERTIFICATE_ANNOTATION, Some(""))).unwrap_err();
        assert!(none.contains("chain without"), "{none}");
        let two = format!("{pem}\n{pem}");
        let err =
            LegacySignature::from_layer(&with(CERTIFICATE_ANNOTATION, Some(&two))).unwrap_err();
        assert!(err.contains("holds 2 certificates"), "{err}");
        let bad = "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----";
        let err =
            LegacySignature::from_layer(&with(CERTIFICATE_ANNOTATION, Some(bad))).unwrap_err();
        assert!(err.contains("is not PEM certificates"), "{err}");
    }

    #[test]
    fn chain_annotation() {
        let l = real_layer();
        let sig = LegacySignature::from_layer(&l).unwrap();
        assert_eq!(sig.chain.len(), 2, "Fulcio intermediate and root");
        let l = with(CHAIN_ANNOTATION, None);
        assert!(LegacySignature::from_layer(&l).unwrap().chain.is_empty());
        let err = LegacySignature::from_layer(&with(CHAIN_ANNOTATION, Some("junk"))).unwrap_err();
        assert!(err.contains("holds no PEM certificate"), "{err}");
    }

    #[test]
    fn bundle_annotation_maps_onto_a_v01_bundle() {
        let l = real_layer();
        let sig = LegacySignature::from_layer(&l).unwrap();
        let rekor = sig.rekor.clone().expect("rekor bundle");
        let b: serde_json::Value = serde_json::from_str(&sig.to_bundle_json().unwrap()).unwrap();
        let entry = &b["verificationMaterial"]["tlogEntries"][0];
        assert_eq!(entry["kindVersion"]["kind"], "hashedrekord");
        assert_eq!(
            entry["integratedTime"],
            rekor.payload.integrated_time.to_string()
        );
        assert_eq!(entry["logIndex"], rekor.payload.log_index.to_string());
        let log_id = STANDARD
            .decode(entry["logId"]["keyId"].as_str().unwrap())
            .unwrap();
        assert_eq!(hex::encode(log_id), rekor.payload.log_id);
        assert_eq!(
            entry["inclusionPromise"]["signedEntryTimestamp"],
            rekor.signed_entry_timestamp
        );
        let certs = b["verificationMaterial"]["x509CertificateChain"]["certificates"]
            .as_array()
            .unwrap();
        assert_eq!(certs.len(), 3, "leaf then the chain");
        let digest = STANDARD
            .decode(
                b["messageSignature"]["messageDigest"]["digest"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(digest, sha2_256(&l.bytes));
        // Missing, malformed, or with a field cosign never writes: refused, not guessed.
        let err = LegacySignature::from_layer(&with(BUNDLE_ANNOTATION, None))
            .unwrap()
            .to_bundle_json()
            .unwrap_err();
        assert!(err.contains("no Rekor entry"), "{err}");
        for bad in [
            "{",
            r#"{"SignedEntryTimestamp":"x","Payload":{"body":"","integratedTime":1,"logIndex":1,"logID":"00","extra":1}}"#,
        ] {
            let err = LegacySignature::from_layer(&with(BUNDLE_ANNOTATION, Some(bad))).unwrap_err();
            assert!(err.contains("is not a Rekor bundle"), "{err}");
        }
    }

    #[test]
    fn rfc3161_timestamp_annotation() {
        let token = b"\x30\x03der";
        let ann = json!({ "SignedRFC3161Timestamp": STANDARD.encode(token) }).to_string();
        let l = with(RFC3161_TIMESTAMP_ANNOTATION, Some(&ann));
        let sig = LegacySignature::from_layer(&l).unwrap();
        assert_eq!(sig.timestamp.as_deref(), Some(&token[..]));
        // With the Rekor entry: v0.1, the entry and the timestamp.
        let b: serde_json::Value = serde_json::from_str(&sig.to_bundle_json().unwrap()).unwrap();
        assert_eq!(
            b["mediaType"],
            "application/vnd.dev.sigstore.bundle+json;version=0.1"
        );
        let m = &b["verificationMaterial"];
        assert_eq!(m["tlogEntries"].as_array().unwrap().len(), 1);
        let stamp = &m["timestampVerificationData"]["rfc3161Timestamps"][0]["signedTimestamp"];
        assert_eq!(STANDARD.decode(stamp.as_str().unwrap()).unwrap(), token);
        // Without: v0.2 (v0.1 needs a SET, v0.3 refuses the chain), no entry.
        let mut no_log = sig.clone();
        no_log.rekor = None;
        let b: serde_json::Value = serde_json::from_str(&no_log.to_bundle_json().unwrap()).unwrap();
        assert_eq!(
            b["mediaType"],
            "application/vnd.dev.sigstore.bundle+json;version=0.2"
        );
        assert!(
            b["verificationMaterial"]["tlogEntries"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            b["verificationMaterial"]["x509CertificateChain"]["certificates"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        // Malformed, empty, or with a field cosign never writes: refused, not dropped.
        for (bad, why) in [
            ("{", "is not an RFC 3161 timestamp annotation"),
            (r#"{"SignedRFC3161Timestamp":"*"}"#, "is not base64"),
            (r#"{"SignedRFC3161Timestamp":""}"#, "is empty"),
            (
                r#"{"SignedRFC3161Timestamp":"MAA=","extra":1}"#,
                "is not an RFC 3161 timestamp annotation",
            ),
        ] {
            let err = LegacySignature::from_layer(&with(RFC3161_TIMESTAMP_ANNOTATION, Some(bad)))
                .unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
