//! cosign (Sigstore) signatures on a resolved digest: the `cosign-key` and `cosign-keyless`
//! digest verifiers behind [`crate::trust::signature::DigestVerifier`].
//!
//! Pure: a verifier reads candidates that discovery already fetched and digest-checked, its
//! configured keys / trusted root / identities, and never the network. The one exception is
//! `tuf_root`: a keyless source's trusted root fetched through TUF, brought up to date in
//! `prepare`, before and apart from verification. Formats:
//! - cosign's legacy `.sig` layers (simple-signing payload + annotations), `legacy` and
//!   `payload`;
//! - Sigstore bundles v0.3 (message signature, or DSSE in-toto with predicate type
//!   `https://sigstore.dev/cosign/sign/v1`), `bundle`.
//!
//! Key-only signatures are checked here (`keys`); everything with a log entry, a certificate
//! or a bundle is checked by sigstore-verify (`sigstore`), whose crates are used nowhere else.

mod bundle;
mod config;
mod identity;
mod key;
mod keyless;
mod keys;
// Public for the fuzz target (fuzz/fuzz_targets/cosign_legacy.rs); the verifiers are the API.
pub mod legacy;
mod payload;
mod sigstore;
mod tuf_root;

pub use config::{
    CosignKeyConfig, CosignKeylessConfig, KeylessIdentity, PUBLIC_GOOD_ROOT, PUBLIC_GOOD_URL,
    Remap, SctPolicy, SignedIdentity, SigstoreTuf, TRUSTED_ROOT_TARGET, TransparencyLog,
};
pub use key::CosignKeyVerifier;
pub use keyless::CosignKeylessVerifier;
pub use legacy::{
    BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, RFC3161_TIMESTAMP_ANNOTATION,
    SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE,
};

use std::time::SystemTime;

use crate::trust::signature::{ArtifactKind, Candidate, Evidence, Layer, Subject, Verdict};

/// What both cosign source types read: legacy `.sig` layers and Sigstore bundles.
fn cosign_kind(kind: ArtifactKind) -> bool {
    matches!(
        kind,
        ArtifactKind::CosignSimpleSigning | ArtifactKind::SigstoreBundle
    )
}

/// Logs the loosest `signed_identity` once, when a verifier is built.
fn identity_rule(mode: &SignedIdentity) -> SignedIdentity {
    if *mode == SignedIdentity::Any {
        tracing::warn!(
            "cosign: signed_identity = \"any\": a signature copied from another repository vouches"
        );
    }
    mode.clone()
}

/// What one vouching layer shows (becomes the [`Evidence`]).
struct Vouch {
    signer: String,
    signed_at: Option<SystemTime>,
    format: &'static str,
    details: Vec<(String, String)>,
}

/// What a verifier's own check of one layer shows: signer, signing time, the bundle's form or
/// the legacy payload's docker-reference, and further details for `check` (keyless: where the
/// signing time came from; key-only: what became of an RFC 3161 timestamp).
struct Signed {
    signer: String,
    signed_at: Option<SystemTime>,
    detail: String,
    more: Vec<(String, String)>,
}

type Checked = Result<Signed, String>;

/// One layer, by its candidate's kind: a Sigstore bundle or a legacy layer, each checked by
/// the verifier's own function; names the format and the details `check` shows.
fn by_format(
    kind: ArtifactKind,
    bundle: impl FnOnce() -> Checked,
    legacy: impl FnOnce() -> Checked,
) -> Result<Vouch, String> {
    let (signed, format, label) = match kind {
        ArtifactKind::SigstoreBundle => (bundle()?, "cosign bundle v0.3", "signature"),
        _ => (legacy()?, "cosign legacy", "docker-reference"),
    };
    let mut details = vec![(label.into(), signed.detail)];
    details.extend(signed.more);
    Ok(Vouch {
        signer: signed.signer,
        signed_at: signed.signed_at,
        format,
        details,
    })
}

/// The loop both verifiers share: every layer of every candidate of an accepted kind is
/// checked by `check` until one vouches; otherwise the verdict lists every refusal.
fn first_vouching(
    subject: &Subject<'_>,
    candidates: &[Candidate],
    accepts: impl Fn(ArtifactKind) -> bool,
    check: impl Fn(&Candidate, &Layer) -> Result<Vouch, String>,
) -> Verdict {
    let mut refusals = Vec::new();
    for c in candidates.iter().filter(|c| accepts(c.kind)) {
        // A candidate whose own manifest names another subject never vouches (discovery
        // checks this too; a verifier does not rely on it).
        if let Some(d) = c.subject.as_ref().filter(|d| *d != subject.digest) {
            refusals.push(format!(
                "{}: its manifest's subject is {d}",
                c.manifest_digest
            ));
            continue;
        }
        for layer in &c.layers {
            match check(c, layer) {
                Ok(v) => {
                    return Verdict::Vouched(Evidence {
                        candidate: c.manifest_digest.clone(),
                        format: v.format.into(),
                        signer: v.signer,
                        signed_at: v.signed_at,
                        details: v.details,
                    });
                }
                Err(why) => refusals.push(format!(
                    "{} layer {}: {why}",
                    c.manifest_digest, layer.digest
                )),
            }
        }
    }
    if refusals.is_empty() {
        Verdict::No("no cosign signature found".into())
    } else {
        Verdict::No(refusals.join("; "))
    }
}
