//! Notary public keys: parsing, key IDs and signature checks (all signatures through
//! `aws_lc_rs`, the binary's one crypto provider: see `crate::crypto`).
//!
//! Owns: the five key types notary writes (`ecdsa`, `ecdsa-x509`, `rsa`, `rsa-x509`,
//! `ed25519`), their key IDs, root-certificate facts (CN, validity, SHA-1, RSA size) and the
//! signature methods (`ecdsa`, `eddsa`, `rsapss`, `rsapkcs1v15`). It does not decide which key
//! may sign which role; that is `verify`.

use aws_lc_rs::signature::{self, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION};
use x509_parser::prelude::{FromDer, Pem, SubjectPublicKeyInfo, X509Certificate};

use super::canonical::to_canonical;

/// Why a key could not be used or a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("malformed key: {0}")]
    Malformed(String),
    #[error("unsupported key: {0}")]
    Unsupported(String),
    #[error("signature method {method:?} cannot be used with a {keytype} key")]
    MethodMismatch {
        method: String,
        keytype: &'static str,
    },
    #[error("signature does not verify")]
    BadSignature,
}

/// The `keytype` values notary writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Ecdsa,
    EcdsaX509,
    Rsa,
    RsaX509,
    Ed25519,
}

impl KeyType {
    fn parse(s: &str) -> Result<KeyType, KeyError> {
        Ok(match s {
            "ecdsa" => KeyType::Ecdsa,
            "ecdsa-x509" => KeyType::EcdsaX509,
            "rsa" => KeyType::Rsa,
            "rsa-x509" => KeyType::RsaX509,
            "ed25519" => KeyType::Ed25519,
            other => return Err(KeyError::Unsupported(format!("keytype {other:?}"))),
        })
    }

    /// The name as written in metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Ecdsa => "ecdsa",
            KeyType::EcdsaX509 => "ecdsa-x509",
            KeyType::Rsa => "rsa",
            KeyType::RsaX509 => "rsa-x509",
            KeyType::Ed25519 => "ed25519",
        }
    }
}

#[derive(Debug, Clone)]
enum Material {
    /// Uncompressed P-256 point.
    P256(Vec<u8>),
    /// PKCS#1 RSAPublicKey DER (the SubjectPublicKeyInfo's key bits).
    Rsa(Vec<u8>),
    Ed25519(Vec<u8>),
}

/// Facts about a certificate key (`*-x509`).
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// The subject CN, if any (delegation certs may have none).
    pub common_name: Option<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// Signed with a SHA-1 algorithm: notary's `ValidateCertificate` refuses these.
    pub sha1_signed: bool,
    /// The certificate DER (leaf first), for CA pinning.
    pub der_chain: Vec<Vec<u8>>,
    /// DER SubjectPublicKeyInfo of the leaf, for the canonical key ID.
    pub spki_der: Vec<u8>,
}

/// A parsed public key from root.json or a delegation.
#[derive(Debug, Clone)]
pub struct PublicKey {
    pub keytype: KeyType,
    /// Key ID as notary computes it: hex sha256 of the canonical key JSON.
    pub id: String,
    /// RSA modulus bits, for the notary minimum of 2048.
    pub rsa_bits: Option<usize>,
    pub cert: Option<CertInfo>,
    material: Material,
}

/// Hex sha256 of the canonical JSON `{"keytype":..,"keyval":{"private":null,"public":..}}`,
/// which is how notary's `TUFKey.ID()` names a key.
pub fn key_id(keytype: &str, public_b64: &str) -> String {
    let obj = json!({"keytype": keytype, "keyval": {"private": null, "public": public_b64}});
    // A Value of strings and null always has a canonical form.
    let bytes = to_canonical(&obj).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

impl PublicKey {
    /// Parses a key object from metadata.
    pub fn from_json(v: &Value) -> Result<PublicKey, KeyError> {
        let keytype_s = v
            .get("keytype")
            .and_then(Value::as_str)
            .ok_or_else(|| KeyError::Malformed("no keytype".into()))?;
        let keytype = KeyType::parse(keytype_s)?;
        let keyval = v
            .get("keyval")
            .ok_or_else(|| KeyError::Malformed("no keyval".into()))?;
        if !keyval.get("private").is_none_or(Value::is_null) {
            // Metadata must never carry private material; notary would not publish it.
            return Err(KeyError::Malformed("keyval.private is set".into()));
        }
        let public_b64 = keyval
            .get("public")
            .and_then(Value::as_str)
            .ok_or_else(|| KeyError::Malformed("no keyval.public".into()))?;
        let raw = B64
            .decode(public_b64)
            .map_err(|e| KeyError::Malformed(format!("keyval.public is not base64: {e}")))?;
        let id = key_id(keytype_s, public_b64);
        let (material, rsa_bits, cert) = match keytype {
            KeyType::Ed25519 => {
                if raw.len() != 32 {
                    return Err(KeyError::Malformed("ed25519 key is not 32 bytes".into()));
                }
                (Material::Ed25519(raw), None, None)
            }
            KeyType::Ecdsa | KeyType::Rsa => {
                let (m, bits) = parse_spki(&raw, keytype)?;
                (m, bits, None)
            }
            KeyType::EcdsaX509 | KeyType::RsaX509 => {
                let info = parse_cert_chain(&raw)?;
                let (m, bits) = parse_spki(&info.spki_der, keytype)?;
                (m, bits, Some(info))
            }
        };
        Ok(PublicKey {
            keytype,
            id,
            rsa_bits,
            cert,
            material,
        })
    }

    /// The canonical public-key ID of a certificate key: the ID of the plain `ecdsa` / `rsa`
    /// key holding the certificate's SubjectPublicKeyInfo. Docker and `notary key list` show
    /// this ID, and trust pins use it (e.g. `c1516466…` for Docker Official Images). For a
    /// non-certificate key it is the key ID itself.
    pub fn canonical_id(&self) -> String {
        match (&self.cert, self.keytype) {
            (Some(c), KeyType::EcdsaX509) => key_id("ecdsa", &B64.encode(&c.spki_der)),
            (Some(c), KeyType::RsaX509) => key_id("rsa", &B64.encode(&c.spki_der)),
            _ => self.id.clone(),
        }
    }

    /// Checks `sig` over `msg` with signature `method` (notary's verifiers in
    /// `tuf/signed/verifiers.go`: the method must fit the key type).
    pub fn verify(&self, method: &str, msg: &[u8], sig: &[u8]) -> Result<(), KeyError> {
        let mismatch = || KeyError::MethodMismatch {
            method: method.to_string(),
            keytype: self.keytype.as_str(),
        };
        let (alg, key): (&dyn signature::VerificationAlgorithm, &[u8]) =
            match (method, &self.material) {
                // notary's ECDSA signatures are raw r||s (64 bytes for P-256), not DER.
                ("ecdsa", Material::P256(p)) => (&signature::ECDSA_P256_SHA256_FIXED, p),
                ("eddsa", Material::Ed25519(k)) => (&signature::ED25519, k),
                // PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt (= hash length, which is
                // what aws-lc-rs's PSS verifier requires: RSA_PSS_SALTLEN_DIGEST). It refuses
                // moduli under 2048 bits, as notary does.
                ("rsapss", Material::Rsa(k)) => (&signature::RSA_PSS_2048_8192_SHA256, k),
                ("rsapkcs1v15", Material::Rsa(k)) => (&signature::RSA_PKCS1_2048_8192_SHA256, k),
                _ => return Err(mismatch()),
            };
        UnparsedPublicKey::new(alg, key)
            .verify(msg, sig)
            .map_err(|_| KeyError::BadSignature)
    }
}

fn parse_spki(der: &[u8], keytype: KeyType) -> Result<(Material, Option<usize>), KeyError> {
    let (_, spki) = SubjectPublicKeyInfo::from_der(der)
        .map_err(|e| KeyError::Malformed(format!("not a SubjectPublicKeyInfo: {e}")))?;
    let alg = &spki.algorithm.algorithm;
    let point = spki.subject_public_key.data.to_vec();
    match keytype {
        KeyType::Ecdsa | KeyType::EcdsaX509 if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            if curve.as_ref() != Some(&OID_EC_P256) {
                return Err(KeyError::Unsupported(
                    "only P-256 ECDSA keys are supported".into(),
                ));
            }
            // Uncompressed points only, as notary (Go's elliptic.Unmarshal) reads them.
            // aws-lc-rs would also take a compressed point (ring did not): refuse it here
            // so that the accepted keys stay notary's.
            if point.len() != 65 || point[0] != 0x04 {
                return Err(KeyError::Malformed(
                    "P-256 key is not an uncompressed point".into(),
                ));
            }
            Ok((Material::P256(point), None))
        }
        KeyType::Rsa | KeyType::RsaX509 if *alg == OID_PKCS1_RSAENCRYPTION => {
            let bits = match spki.parsed() {
                Ok(x509_parser::public_key::PublicKey::RSA(k)) => k.key_size(),
                _ => return Err(KeyError::Malformed("bad RSA public key".into())),
            };
            // notary refuses RSA keys under 2048 bits (utils.ValidateCertificate, and its
            // RSA verifiers); refuse at parse time so the error names the key.
            if bits < 2048 {
                return Err(KeyError::Unsupported(format!(
                    "RSA key of {bits} bits (< 2048)"
                )));
            }
            Ok((Material::Rsa(point), Some(bits)))
        }
        _ => Err(KeyError::Malformed(format!(
            "{} key holds algorithm {alg}",
            keytype.as_str()
        ))),
    }
}

fn parse_cert_chain(pem_bytes: &[u8]) -> Result<CertInfo, KeyError> {
    let mut ders = Vec::new();
    for pem in Pem::iter_from_buffer(pem_bytes) {
        let pem: Pem = pem.map_err(|e| KeyError::Malformed(format!("bad PEM: {e}")))?;
        if pem.label == "CERTIFICATE" {
            ders.push(pem.contents);
        }
    }
    let leaf_der = ders
        .first()
        .ok_or_else(|| KeyError::Malformed("no certificate in PEM".into()))?;
    let (_, cert) = X509Certificate::from_der(leaf_der)
        .map_err(|e| KeyError::Malformed(format!("bad certificate: {e}")))?;
    let info = cert_info(&cert, ders.clone());
    Ok(info)
}

fn cert_info(cert: &X509Certificate<'_>, der_chain: Vec<Vec<u8>>) -> CertInfo {
    const SHA1_SIGS: [&str; 4] = [
        "1.2.840.113549.1.1.5", // sha1WithRSAEncryption
        "1.3.14.3.2.29",        // sha1WithRSASignature (OIW)
        "1.2.840.10045.4.1",    // ecdsa-with-SHA1
        "1.2.840.10040.4.3",    // dsa-with-sha1
    ];
    let sig_oid = cert.signature_algorithm.algorithm.to_id_string();
    CertInfo {
        common_name: cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string),
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        sha1_signed: SHA1_SIGS.contains(&sig_oid.as_str()),
        spki_der: cert.public_key().raw.to_vec(),
        der_chain,
    }
}

/// Whether the leaf of `chain` was issued by one of `ca_ders` (directly, or through the
/// intermediates bundled in the same key, as notary's `caCheck` allows).
pub fn issued_by(chain: &[Vec<u8>], ca_ders: &[Vec<u8>], now: OffsetDateTime) -> bool {
    let parsed: Vec<X509Certificate<'_>> = chain
        .iter()
        .filter_map(|d| X509Certificate::from_der(d).ok().map(|(_, c)| c))
        .collect();
    let cas: Vec<X509Certificate<'_>> = ca_ders
        .iter()
        .filter_map(|d| X509Certificate::from_der(d).ok().map(|(_, c)| c))
        .collect();
    let Some(mut current) = parsed.first() else {
        return false;
    };
    let valid_at = |c: &X509Certificate<'_>| {
        c.validity().not_before.to_datetime() <= now && now <= c.validity().not_after.to_datetime()
    };
    // Walk at most the bundled chain length: leaf -> intermediates -> pinned CA.
    for _ in 0..=parsed.len() {
        if !valid_at(current) {
            return false;
        }
        let signed_by = |issuer: &X509Certificate<'_>| {
            issuer.subject() == current.issuer()
                && valid_at(issuer)
                && current.verify_signature(Some(issuer.public_key())).is_ok()
        };
        if cas.iter().any(signed_by) {
            return true;
        }
        match parsed.iter().skip(1).find(|c| signed_by(c) && c.is_ca()) {
            Some(next) => current = next,
            None => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_keys(set: &str) -> serde_json::Map<String, Value> {
        let path = format!(
            "{}/tests/fixtures/notary/{set}/root.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let doc: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        doc["signed"]["keys"].as_object().unwrap().clone()
    }

    #[test]
    fn key_ids_match_the_ids_notary_lists() {
        for set in [
            "signer-ecdsa",
            "local-ed25519",
            "real/moby-alpine",
            "real/notary-compat-0.1-dockerio",
        ] {
            for (kid, k) in root_keys(set) {
                let key = PublicKey::from_json(&k).unwrap();
                assert_eq!(key.id, kid, "{set}");
            }
        }
    }

    #[test]
    fn canonical_root_id_of_docker_official_images() {
        let keys = root_keys("real/moby-alpine");
        let ids: Vec<String> = keys
            .values()
            .map(|k| PublicKey::from_json(k).unwrap())
            .filter(|k| k.keytype == KeyType::EcdsaX509)
            .map(|k| k.canonical_id())
            .collect();
        assert!(
            ids.contains(
                &"c15164663f80d58bf3d8d5a0cd08b8086cba02065feb00421fc2a5436c563210".into()
            ),
            "{ids:?}"
        );
    }

    #[test]
    fn root_cert_facts() {
        let keys = root_keys("real/moby-alpine");
        let cert = keys
            .values()
            .filter_map(|k| PublicKey::from_json(k).unwrap().cert)
            .next()
            .unwrap();
        assert_eq!(
            cert.common_name.as_deref(),
            Some("docker.io/library/alpine")
        );
        assert!(!cert.sha1_signed);
        assert_eq!(cert.not_after.year(), 2025);
    }

    #[test]
    fn refuses_unknown_types_private_material_and_bad_base64() {
        let bad = [
            json!({"keytype": "dsa", "keyval": {"private": null, "public": "AA=="}}),
            json!({"keytype": "ed25519", "keyval": {"private": "AA==", "public": "AA=="}}),
            json!({"keytype": "ed25519", "keyval": {"private": null, "public": "!!"}}),
            json!({"keytype": "ed25519", "keyval": {"private": null, "public": "AA=="}}),
            json!({"keytype": "ecdsa", "keyval": {"private": null, "public": "AAAA"}}),
        ];
        for k in bad {
            assert!(PublicKey::from_json(&k).is_err(), "{k}");
        }
    }

    fn new_ed25519() -> (aws_lc_rs::signature::Ed25519KeyPair, Value) {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let kp = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        use aws_lc_rs::signature::KeyPair as _;
        let pubkey = B64.encode(kp.public_key().as_ref());
        (
            kp,
            json!({"keytype": "ed25519", "keyval": {"private": null, "public": pubkey}}),
        )
    }

    #[test]
    fn eddsa_verifies_and_refuses_tampering_and_wrong_method() {
        let (kp, k) = new_ed25519();
        let key = PublicKey::from_json(&k).unwrap();
        let sig = kp.sign(b"hello");
        key.verify("eddsa", b"hello", sig.as_ref()).unwrap();
        assert_eq!(
            key.verify("eddsa", b"hellO", sig.as_ref()),
            Err(KeyError::BadSignature)
        );
        assert!(matches!(
            key.verify("ecdsa", b"hello", sig.as_ref()),
            Err(KeyError::MethodMismatch { .. })
        ));
    }

    #[test]
    fn ecdsa_fixed_signatures_verify_der_ones_do_not() {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let alg = &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let kp = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).unwrap();
        use aws_lc_rs::signature::KeyPair as _;
        // DER SPKI for a P-256 point: fixed 26-byte header + 65-byte point.
        let mut spki = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
        spki.extend_from_slice(kp.public_key().as_ref());
        let k =
            json!({"keytype": "ecdsa", "keyval": {"private": null, "public": B64.encode(&spki)}});
        let key = PublicKey::from_json(&k).unwrap();
        let sig = kp.sign(&rng, b"msg").unwrap();
        assert_eq!(sig.as_ref().len(), 64);
        key.verify("ecdsa", b"msg", sig.as_ref()).unwrap();
        assert!(key.verify("ecdsa", b"msg2", sig.as_ref()).is_err());
        let der_alg = &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING;
        let kp2 = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(der_alg, pkcs8.as_ref()).unwrap();
        let der = kp2.sign(&rng, b"msg").unwrap();
        assert!(key.verify("ecdsa", b"msg", der.as_ref()).is_err());
        // The same key as a compressed point: notary cannot read it, so it is refused here
        // too (aws-lc-rs alone would verify with it).
        let point = kp.public_key().as_ref();
        let mut short =
            hex::decode("3039301306072a8648ce3d020106082a8648ce3d030107032200").unwrap();
        short.push(2 | (point[64] & 1));
        short.extend_from_slice(&point[1..33]);
        let k =
            json!({"keytype": "ecdsa", "keyval": {"private": null, "public": B64.encode(&short)}});
        assert!(matches!(
            PublicKey::from_json(&k),
            Err(KeyError::Malformed(_))
        ));
    }

    #[test]
    fn rsapss_from_real_delegation_verifies() {
        // targets/qa in signer-ecdsa is signed `rsapss` by an rsa-x509 delegation key.
        let dir = format!(
            "{}/tests/fixtures/notary/signer-ecdsa",
            env!("CARGO_MANIFEST_DIR")
        );
        let targets: Value =
            serde_json::from_slice(&std::fs::read(format!("{dir}/targets.json")).unwrap()).unwrap();
        let qa: Value =
            serde_json::from_slice(&std::fs::read(format!("{dir}/targets_qa.json")).unwrap())
                .unwrap();
        let sig = &qa["signatures"][0];
        assert_eq!(sig["method"], "rsapss");
        let kid = sig["keyid"].as_str().unwrap();
        let key = PublicKey::from_json(&targets["signed"]["delegations"]["keys"][kid]).unwrap();
        assert_eq!(key.keytype, KeyType::RsaX509);
        assert!(key.rsa_bits.unwrap() >= 2048);
        let msg = to_canonical(&qa["signed"]).unwrap();
        let raw = B64.decode(sig["sig"].as_str().unwrap()).unwrap();
        key.verify("rsapss", &msg, &raw).unwrap();
        let mut bad = raw.clone();
        bad[10] ^= 1;
        assert_eq!(
            key.verify("rsapss", &msg, &bad),
            Err(KeyError::BadSignature)
        );
        assert!(key.verify("ecdsa", &msg, &raw).is_err());
    }
}
