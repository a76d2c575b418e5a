//! Signing keys in notary's shapes.
//!
//! - `ecdsa`: P-256, public key as base64 DER SubjectPublicKeyInfo, signature method `ecdsa`
//!   (raw 64-byte r||s over SHA-256).
//! - `ed25519`: raw 32-byte public key, method `eddsa`.
//! - `ecdsa-x509`: a self-signed P-256 certificate (base64 of its PEM), as root keys are; the
//!   certificate's CN must equal the GUN and its validity window is checked by clients.
//!
//! Key ID = hex sha256 of the canonical JSON of `{"keytype","keyval":{"private":null,"public"}}`.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData,
};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::canonical::canonical;

enum Signer {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A key pair plus its notary key object.
pub struct Key {
    signer: Signer,
    keytype: &'static str,
    /// base64 of the `keyval.public` bytes (SPKI DER, raw ed25519 bytes, or a PEM certificate).
    public: String,
    /// For certificate keys: base64 DER SPKI of the certificate's key (for the canonical ID).
    spki: Option<String>,
}

impl Key {
    /// A plain `ecdsa` P-256 key (targets, snapshot, delegations).
    pub fn ecdsa() -> Key {
        let kp = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("P-256 key");
        let public = B64.encode(kp.subject_public_key_info());
        Key {
            signer: Signer::Ecdsa(ecdsa_signer(&kp)),
            keytype: "ecdsa",
            public,
            spki: None,
        }
    }

    /// An `ed25519` key (the local trust service's timestamp and snapshot keys).
    pub fn ed25519() -> Key {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("ed25519 key");
        let kp = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("ed25519 pkcs8");
        let public = B64.encode(kp.public_key().as_ref());
        Key {
            signer: Signer::Ed25519(kp),
            keytype: "ed25519",
            public,
            spki: None,
        }
    }

    /// An `ecdsa-x509` root key: a self-signed certificate with CN = `cn`, valid from
    /// `not_before` to `not_after`, shaped like the ones `notary init` makes.
    pub fn root_cert(cn: &str, not_before: OffsetDateTime, not_after: OffsetDateTime) -> Key {
        let kp = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("P-256 key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("cert params");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.not_before = not_before;
        params.not_after = not_after;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        let cert = params.self_signed(&kp).expect("self-signed root cert");
        Key {
            signer: Signer::Ecdsa(ecdsa_signer(&kp)),
            keytype: "ecdsa-x509",
            public: B64.encode(cert.pem()),
            spki: Some(B64.encode(kp.subject_public_key_info())),
        }
    }

    /// A root certificate for `gun` valid from a day ago for ten years (as `notary init`).
    pub fn root_for(gun: &str) -> Key {
        let now = OffsetDateTime::now_utc();
        Key::root_cert(
            gun,
            now - time::Duration::days(1),
            now + time::Duration::days(3650),
        )
    }

    /// The key object as it appears in root.json or a delegation's `keys`.
    pub fn json(&self) -> Value {
        json!({"keytype": self.keytype, "keyval": {"private": null, "public": self.public}})
    }

    /// The key ID used in root.json: sha256 of the canonical key object.
    pub fn id(&self) -> String {
        hex::encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            &canonical(&self.json()),
        ))
    }

    /// The canonical (public-key) ID that trust pinning and `notary key list` use: for a
    /// certificate key, the ID of `{"keytype":"ecdsa","keyval":{..,"public":<SPKI>}}`.
    pub fn canonical_id(&self) -> String {
        match &self.spki {
            Some(spki) => {
                let k = json!({"keytype": "ecdsa", "keyval": {"private": null, "public": spki}});
                hex::encode(aws_lc_rs::digest::digest(
                    &aws_lc_rs::digest::SHA256,
                    &canonical(&k),
                ))
            }
            None => self.id(),
        }
    }

    /// The `method` this key signs with.
    pub fn method(&self) -> &'static str {
        match self.signer {
            Signer::Ecdsa(_) => "ecdsa",
            Signer::Ed25519(_) => "eddsa",
        }
    }

    /// A signature entry `{"keyid","method","sig"}` over `msg`.
    pub fn sign(&self, msg: &[u8]) -> Signature {
        let sig = match &self.signer {
            Signer::Ecdsa(kp) => kp
                .sign(&SystemRandom::new(), msg)
                .expect("ecdsa sign")
                .as_ref()
                .to_vec(),
            Signer::Ed25519(kp) => kp.sign(msg).as_ref().to_vec(),
        };
        Signature {
            keyid: self.id(),
            method: self.method().to_string(),
            sig,
        }
    }
}

/// One entry of an envelope's `signatures`.
#[derive(Clone, Debug)]
pub struct Signature {
    pub keyid: String,
    pub method: String,
    pub sig: Vec<u8>,
}

impl Signature {
    /// As Go serialises notary's `Signature` struct: fields in declaration order.
    pub fn to_json(&self) -> String {
        format!(
            r#"{{"keyid":{},"method":{},"sig":{}}}"#,
            serde_json::to_string(&self.keyid).expect("string"),
            serde_json::to_string(&self.method).expect("string"),
            serde_json::to_string(&B64.encode(&self.sig)).expect("string"),
        )
    }
}

fn ecdsa_signer(kp: &KeyPair) -> EcdsaKeyPair {
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &kp.serialize_der())
        .expect("rcgen P-256 key as aws-lc-rs pkcs8")
}
