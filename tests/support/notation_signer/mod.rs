//! A Notation signer for tests: a test CA chain (rcgen) with a code-signing leaf, JWS and
//! COSE envelopes for a given digest, the signature manifest Notation would push (artifactType
//! `application/vnd.cncf.notary.signature`, subject, thumbprint annotation), and a trust
//! policy + trust store written to a temp dir. Every knob an attack test needs (another
//! digest, expiry, an extra critical header, the signing scheme, a lying thumbprint) is an
//! explicit field of [`SignOptions`].

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PSS_SHA256, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use coset::cbor::value::Value;
use coset::{CoseSign1Builder, HeaderBuilder, TaggedCborSerializable, iana};
use portcullis::refs::Digest;
use portcullis::trust::signature::{ArtifactKind, Candidate, FoundVia, Layer};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const SIGNATURE_TYPE: &str = "application/vnd.cncf.notary.signature";
pub const THUMBPRINT: &str = "io.cncf.notary.x509chain.thumbprint#S256";

mod trust;
pub use trust::*;

/// The leaf key: RSA 2048 (PS256) or ECDSA P-256 (ES256).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafKey {
    Rsa2048,
    EcP256,
}

enum Key {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// A root CA, an intermediate CA and a code-signing leaf (`C=US, ST=WA, O=Portcullis Test,
/// CN=<cn>`), valid from an hour ago for a year unless told otherwise.
pub struct NotationSigner {
    key: Key,
    /// DER, leaf first: leaf, intermediate, root.
    pub chain: Vec<Vec<u8>>,
    /// The root, PEM, for the trust store.
    pub root_pem: String,
}

/// What to sign and how; `Default` is a valid notary.x509 signature made now.
#[derive(Debug, Clone)]
pub struct SignOptions {
    pub signing_time: SystemTime,
    pub expiry: Option<SystemTime>,
    /// `notary.x509` or `notary.x509.signingAuthority`.
    pub scheme: &'static str,
    /// An extra protected header, marked critical (e.g. one the verifier does not know).
    pub extra_critical: Option<(&'static str, &'static str)>,
    /// The subject's media type and size in the payload.
    pub media_type: &'static str,
    pub size: u64,
}

impl Default for SignOptions {
    fn default() -> Self {
        SignOptions {
            signing_time: SystemTime::now(),
            expiry: None,
            scheme: "notary.x509",
            extra_critical: None,
            media_type: MANIFEST_TYPE,
            size: 1234,
        }
    }
}

fn dn(cn: &str) -> rcgen::DistinguishedName {
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(DnType::CountryName, "US");
    dn.push(DnType::StateOrProvinceName, "WA");
    dn.push(DnType::OrganizationName, "Portcullis Test");
    dn.push(DnType::CommonName, cn);
    dn
}

fn validity(p: &mut CertificateParams, not_before: SystemTime, not_after: SystemTime) {
    p.not_before = time::OffsetDateTime::from(not_before);
    p.not_after = time::OffsetDateTime::from(not_after);
}

impl NotationSigner {
    /// A chain valid from an hour ago for a year.
    pub fn new(leaf: LeafKey, cn: &str) -> Self {
        let now = SystemTime::now();
        Self::with_validity(
            leaf,
            cn,
            now - Duration::from_secs(3600),
            now + Duration::from_secs(365 * 86400),
        )
    }

    /// A chain whose leaf is valid in [not_before, not_after] (the CAs for ten years around).
    pub fn with_validity(
        leaf: LeafKey,
        cn: &str,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Self {
        Self::build(leaf, cn, not_before, not_after, None)
    }

    /// A chain whose leaf names a CRL distribution point (revocation information).
    pub fn with_crl(leaf: LeafKey, cn: &str, crl_url: &str) -> Self {
        let now = SystemTime::now();
        Self::build(
            leaf,
            cn,
            now - Duration::from_secs(3600),
            now + Duration::from_secs(86400),
            Some(crl_url),
        )
    }

    fn build(
        leaf: LeafKey,
        cn: &str,
        not_before: SystemTime,
        not_after: SystemTime,
        crl_url: Option<&str>,
    ) -> Self {
        let decade = Duration::from_secs(3650 * 86400);
        let mut root = CertificateParams::new(vec![]).unwrap();
        root.distinguished_name = dn("Portcullis Test Root");
        root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut root, not_before - decade, not_after + decade);
        let root = CertifiedIssuer::self_signed(root, KeyPair::generate().unwrap()).unwrap();

        let mut inter = CertificateParams::new(vec![]).unwrap();
        inter.distinguished_name = dn("Portcullis Test Intermediate");
        inter.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        inter.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        validity(&mut inter, not_before - decade, not_after + decade);
        let inter = CertifiedIssuer::signed_by(inter, KeyPair::generate().unwrap(), &root).unwrap();

        let (key, rc_key) = match leaf {
            LeafKey::Rsa2048 => {
                let k = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
                let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&k).unwrap();
                let rc = KeyPair::from_pkcs8_der_and_sign_algo(
                    &der.as_ref().to_vec().into(),
                    &rcgen::PKCS_RSA_SHA256,
                )
                .unwrap();
                (Key::Rsa(k), rc)
            }
            LeafKey::EcP256 => {
                let rc = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
                let k =
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rc.serialize_der())
                        .unwrap();
                (Key::Ec(k), rc)
            }
        };
        let mut lp = CertificateParams::new(vec![]).unwrap();
        lp.distinguished_name = dn(cn);
        lp.is_ca = IsCa::ExplicitNoCa;
        lp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        lp.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        validity(&mut lp, not_before, not_after);
        if let Some(url) = crl_url {
            lp.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
                uris: vec![url.to_owned()],
            }];
        }
        let leaf_cert = lp.signed_by(&rc_key, &inter).unwrap();
        NotationSigner {
            key,
            chain: vec![
                leaf_cert.der().to_vec(),
                inter.der().to_vec(),
                root.der().to_vec(),
            ],
            root_pem: root.pem(),
        }
    }

    /// A signer for a chain made elsewhere (DER, leaf first) whose leaf key is RSA (PKCS#8 DER).
    pub fn from_rsa_chain(leaf_pkcs8: &[u8], chain: Vec<Vec<u8>>, root_pem: String) -> Self {
        NotationSigner {
            key: Key::Rsa(RsaKeyPair::from_pkcs8(leaf_pkcs8).expect("RSA PKCS#8 leaf key")),
            chain,
            root_pem,
        }
    }

    /// A single self-signed code-signing certificate as the whole chain (what `notation cert
    /// generate-test` makes).
    pub fn self_signed(leaf: LeafKey, cn: &str) -> Self {
        let mut s = Self::new(leaf, cn);
        let rc_key = match &s.key {
            Key::Rsa(k) => KeyPair::from_pkcs8_der_and_sign_algo(
                &AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(k)
                    .unwrap()
                    .as_ref()
                    .to_vec()
                    .into(),
                &rcgen::PKCS_RSA_SHA256,
            )
            .unwrap(),
            Key::Ec(_) => panic!("self_signed supports RSA leaves only"),
        };
        let mut lp = CertificateParams::new(vec![]).unwrap();
        lp.distinguished_name = dn(cn);
        lp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        lp.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        let now = SystemTime::now();
        validity(
            &mut lp,
            now - Duration::from_secs(3600),
            now + Duration::from_secs(86400),
        );
        let cert = lp.self_signed(&rc_key).unwrap();
        s.root_pem = cert.pem();
        s.chain = vec![cert.der().to_vec()];
        s
    }

    /// The thumbprint annotation value for this chain.
    pub fn thumbprints(&self) -> String {
        let list: Vec<String> = self
            .chain
            .iter()
            .map(|c| Digest::sha256_of(c).hex().to_owned())
            .collect();
        serde_json::to_string(&list).unwrap()
    }

    fn alg(&self) -> (&'static str, iana::Algorithm) {
        match self.key {
            Key::Rsa(_) => ("PS256", iana::Algorithm::PS256),
            Key::Ec(_) => ("ES256", iana::Algorithm::ES256),
        }
    }

    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.key {
            Key::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&RSA_PSS_SHA256, &rng, msg, &mut sig).unwrap();
                sig
            }
            Key::Ec(k) => k.sign(&rng, msg).unwrap().as_ref().to_vec(),
        }
    }

    /// The Notary Project payload for `digest`.
    pub fn payload(digest: &Digest, o: &SignOptions) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"targetArtifact": {
            "mediaType": o.media_type, "digest": digest.to_string(), "size": o.size}}))
        .unwrap()
    }

    /// A flattened JWS envelope over `digest`.
    pub fn jws(&self, digest: &Digest, o: &SignOptions) -> Vec<u8> {
        let rfc3339 = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
        let time_key = if o.scheme == "notary.x509" {
            "io.cncf.notary.signingTime"
        } else {
            "io.cncf.notary.authenticSigningTime"
        };
        let mut h = serde_json::Map::new();
        let mut crit = vec![serde_json::Value::from("io.cncf.notary.signingScheme")];
        h.insert("alg".into(), self.alg().0.into());
        h.insert(
            "cty".into(),
            "application/vnd.cncf.notary.payload.v1+json".into(),
        );
        h.insert("io.cncf.notary.signingScheme".into(), o.scheme.into());
        h.insert(time_key.into(), rfc3339(o.signing_time).into());
        if o.scheme != "notary.x509" {
            crit.push(time_key.into());
        }
        if let Some(e) = o.expiry {
            h.insert("io.cncf.notary.expiry".into(), rfc3339(e).into());
            crit.push("io.cncf.notary.expiry".into());
        }
        if let Some((k, v)) = o.extra_critical {
            h.insert(k.into(), v.into());
            crit.push(k.into());
        }
        h.insert("crit".into(), crit.into());
        let protected = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&h).unwrap());
        let payload = URL_SAFE_NO_PAD.encode(Self::payload(digest, o));
        let sig = self.sign(format!("{protected}.{payload}").as_bytes());
        serde_json::to_vec(&serde_json::json!({
            "payload": payload,
            "protected": protected,
            "header": {
                "x5c": self.chain.iter().map(|c| STANDARD.encode(c)).collect::<Vec<_>>(),
                "io.cncf.notary.signingAgent": "portcullis-test",
            },
            "signature": URL_SAFE_NO_PAD.encode(sig),
        }))
        .unwrap()
    }

    /// A COSE_Sign1_Tagged envelope over `digest`.
    pub fn cose(&self, digest: &Digest, o: &SignOptions) -> Vec<u8> {
        let epoch = |t: SystemTime| {
            let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
            Value::Tag(1, Box::new(Value::Integer(secs.into())))
        };
        let time_key = if o.scheme == "notary.x509" {
            "io.cncf.notary.signingTime"
        } else {
            "io.cncf.notary.authenticSigningTime"
        };
        let mut b = HeaderBuilder::new()
            .algorithm(self.alg().1)
            .content_type("application/vnd.cncf.notary.payload.v1+json".into())
            .add_critical_label(coset::RegisteredLabelWithPrivate::Text(
                "io.cncf.notary.signingScheme".into(),
            ))
            .text_value("io.cncf.notary.signingScheme".into(), o.scheme.into())
            .text_value(time_key.into(), epoch(o.signing_time));
        if o.scheme != "notary.x509" {
            b = b.add_critical_label(coset::RegisteredLabelWithPrivate::Text(time_key.into()));
        }
        if let Some(e) = o.expiry {
            b = b
                .add_critical_label(coset::RegisteredLabelWithPrivate::Text(
                    "io.cncf.notary.expiry".into(),
                ))
                .text_value("io.cncf.notary.expiry".into(), epoch(e));
        }
        if let Some((k, v)) = o.extra_critical {
            b = b
                .add_critical_label(coset::RegisteredLabelWithPrivate::Text(k.into()))
                .text_value(k.into(), v.into());
        }
        let unprotected = HeaderBuilder::new()
            .value(
                33,
                Value::Array(self.chain.iter().map(|c| Value::Bytes(c.clone())).collect()),
            )
            .text_value(
                "io.cncf.notary.signingAgent".into(),
                "portcullis-test".into(),
            )
            .build();
        let sign1 = CoseSign1Builder::new()
            .protected(b.build())
            .unprotected(unprotected)
            .payload(Self::payload(digest, o))
            .create_signature(b"", |m| self.sign(m))
            .build();
        sign1.to_tagged_vec().unwrap()
    }

    /// The signature manifest Notation pushes for `envelope` (media type
    /// `application/jose+json` or `application/cose`) on the manifest `subject` of
    /// `subject_size` bytes, with this chain's thumbprints (or `thumbprints` instead).
    pub fn manifest(
        &self,
        subject: &Digest,
        subject_size: u64,
        envelope: &[u8],
        envelope_type: &str,
        thumbprints: Option<&str>,
    ) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "artifactType": SIGNATURE_TYPE,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                "digest": Digest::sha256_of(b"{}").to_string(), "size": 2, "data": "e30="},
            "layers": [{"mediaType": envelope_type,
                "digest": Digest::sha256_of(envelope).to_string(), "size": envelope.len()}],
            "subject": {"mediaType": MANIFEST_TYPE, "digest": subject.to_string(), "size": subject_size},
            "annotations": {THUMBPRINT: thumbprints.map_or_else(|| self.thumbprints(), str::to_owned)},
        }))
        .unwrap()
    }

    /// The Candidate discovery would build from that manifest and envelope.
    pub fn candidate(
        &self,
        subject: &Digest,
        o: &SignOptions,
        kind: ArtifactKind,
        thumbprints: Option<&str>,
    ) -> Candidate {
        let (envelope, ty) = match kind {
            ArtifactKind::NotationCose => (self.cose(subject, o), "application/cose"),
            _ => (self.jws(subject, o), "application/jose+json"),
        };
        candidate_of(
            self.manifest(subject, o.size, &envelope, ty, thumbprints),
            envelope,
        )
    }
}

/// A Candidate from a signature manifest and its one envelope layer.
pub fn candidate_of(manifest: Vec<u8>, envelope: Vec<u8>) -> Candidate {
    let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let layer_type = m["layers"][0]["mediaType"].as_str().unwrap().to_owned();
    let annotations = annotations_of(&m);
    Candidate {
        manifest_digest: Digest::sha256_of(&manifest),
        kind: if layer_type == "application/cose" {
            ArtifactKind::NotationCose
        } else {
            ArtifactKind::NotationJws
        },
        subject: m["subject"]["digest"].as_str().map(|d| d.parse().unwrap()),
        annotations,
        found_via: FoundVia::Referrers,
        layers: vec![Layer {
            media_type: layer_type,
            digest: Digest::sha256_of(&envelope),
            annotations: BTreeMap::new(),
            bytes: Bytes::from(envelope),
        }],
        manifest: Bytes::from(manifest),
    }
}

/// A manifest's `annotations` as the Candidate carries them.
pub fn annotations_of(manifest: &serde_json::Value) -> BTreeMap<String, String> {
    manifest["annotations"]
        .as_object()
        .map(|a| {
            a.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}
