//! Configured cosign public keys, and our own check of a signature over exact bytes with them.
//!
//! sigstore-verify refuses a bundle without a log entry or timestamp, so key-only signatures
//! (`cosign sign --key --tlog-upload=false`) are checked here with sigstore-crypto's primitives.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sigstore_crypto::{KeyAlgorithm, SigningScheme, VerificationKey};
use sigstore_types::{DerPublicKey, SignatureBytes};

/// One configured key, ready to verify.
pub struct CosignKey {
    /// `<file name> (sha256:<hex of the SPKI DER>)`: what `check` and the log show.
    pub name: String,
    pub spki: DerPublicKey,
    /// The schemes cosign may have signed with for this key type, tried in order.
    keys: Vec<VerificationKey>,
}

impl std::fmt::Debug for CosignKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// The signing schemes a cosign signature by a key of this algorithm may use:
/// - ECDSA: an ASN.1 DER signature over SHA-256 of the payload (cosign 2 signs with SHA-256 for
///   every curve; cosign 3's defaults use SHA-384 for P-384, so P-384 accepts both);
/// - Ed25519: pure Ed25519 over the payload;
/// - RSA: PKCS#1 v1.5 with SHA-256 (cosign's default), or PSS with SHA-256 (sigstore's
///   `signature.LoadRSAPSSVerifier`, used for PSS keys).
fn schemes_for(alg: KeyAlgorithm) -> anyhow::Result<&'static [SigningScheme]> {
    Ok(match alg {
        KeyAlgorithm::EcdsaP256 => &[SigningScheme::EcdsaP256Sha256],
        KeyAlgorithm::EcdsaP384 => &[
            SigningScheme::EcdsaP384Sha256,
            SigningScheme::EcdsaP384Sha384,
        ],
        KeyAlgorithm::Ed25519 => &[SigningScheme::Ed25519],
        KeyAlgorithm::Rsa => &[SigningScheme::RsaPkcs1Sha256, SigningScheme::RsaPssSha256],
        other => anyhow::bail!("{other:?} keys are not accepted for cosign signatures"),
    })
}

impl CosignKey {
    /// Parses one PEM `PUBLIC KEY` (SPKI).
    pub fn from_pem(name: &str, pem: &str) -> anyhow::Result<Self> {
        let spki = DerPublicKey::from_pem(pem.trim())
            .map_err(|e| anyhow::anyhow!("{name}: not a PEM public key (SPKI): {e}"))?;
        let alg = KeyAlgorithm::from_spki(&spki).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let keys = schemes_for(alg)
            .with_context(|| name.to_string())?
            .iter()
            .map(|&scheme| VerificationKey::from_spki_with_scheme(&spki, scheme))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let fingerprint = hex::encode(sigstore_crypto::sha256(spki.as_bytes()).as_bytes());
        Ok(CosignKey {
            name: format!("{name} (sha256:{fingerprint})"),
            spki,
            keys,
        })
    }

    /// Reads a key file; the error names the file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("reading cosign public key {}", path.display()))?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        CosignKey::from_pem(&name, &pem).with_context(|| path.display().to_string())
    }

    /// Whether `signature` is this key's signature over exactly `message` (no canonicalization,
    /// no re-encoding: the bytes as stored in the registry).
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let sig = SignatureBytes::new(signature.to_vec());
        self.keys.iter().any(|k| k.verify(message, &sig).is_ok())
    }
}

impl CosignKey {
    /// Whether `signature` is this key's signature over a message whose SHA-256 (or, for
    /// P-384 / RSA schemes with another hash, that hash) is `digest`: a Sigstore message
    /// signature over an image is over its manifest digest. Ed25519 cannot verify a
    /// prehashed message and never passes here.
    pub fn verifies_prehashed(&self, digest: &[u8], signature: &[u8]) -> bool {
        let sig = SignatureBytes::new(signature.to_vec());
        self.keys
            .iter()
            .any(|k| k.verify_prehashed(digest, &sig).is_ok())
    }
}

/// Loads every configured key, logging each with its fingerprint.
pub fn load_keys(paths: &[PathBuf]) -> anyhow::Result<Vec<CosignKey>> {
    let mut keys = Vec::with_capacity(paths.len());
    for path in paths {
        let key = CosignKey::load(path)?;
        tracing::info!(key = %key.name, path = %path.display(), "cosign public key loaded");
        keys.push(key);
    }
    Ok(keys)
}
