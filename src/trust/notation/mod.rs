//! Notation (Notary Project v2) signatures on a digest, verified offline as a pure function
//! of the signature manifests, Notation's own trust policy and trust store, and a fixed
//! "now", following notaryproject/specifications v1.1.0. No Rust crate does this; each
//! concern has its file:
//! - `config`: `[trust.<name>]` with `type = "notation"`.
//! - `policy` (+ `dn`): `trustpolicy.json` version 1.0, validated; the statement for a
//!   repository; levels and `override`; trusted identities.
//! - `store`: the trust store directory.
//! - `manifest`: the signature manifest (type, subject, one layer, thumbprint annotation).
//! - `jws`, `cose` (+ `envelope`): the two envelope formats, parsed to one model.
//! - `crypto`, `certs`: signature math (aws-lc-rs) and certificate chain requirements.
//! - `verify`: the spec's steps for one signature; `timestamp`: its RFC 3161
//!   countersignature against the statement's `tsa` stores (tokens: `trust::rfc3161`).
//!
//! Not here: fetching (discovery hands in [`Candidate`]s), CRL/OCSP fetching (a chain, the
//! signer's or the TSA's, that names revocation locations does not vouch while revocation
//! is enforced), plugins.

mod certs;
pub mod config;
// The envelope parsers and the policy parser are public for the fuzz targets
// (fuzz/fuzz_targets/notation_*.rs); nothing else uses them from outside.
pub mod cose;
mod crypto;
mod dn;
pub mod envelope;
pub mod jws;
mod manifest;
pub mod policy;
mod store;
mod timestamp;
mod verify;

use std::time::SystemTime;

use anyhow::Context;

pub use config::NotationConfig;
use policy::{Action, Level, TrustPolicy};
use store::TrustStore;

use super::signature::{ArtifactKind, Candidate, DigestVerifier, Subject, Verdict};

/// Largest trust policy document read.
const MAX_POLICY_BYTES: u64 = 1 << 20;

/// A Notation trust source: vouches for a digest when one of its Notation signatures passes
/// the steps of the statement that covers the repository, at `strict` or `permissive`.
#[derive(Debug)]
pub struct NotationVerifier {
    policy: TrustPolicy,
    store: TrustStore,
}

impl NotationVerifier {
    /// Reads and validates the trust policy and the named stores it uses (each error names
    /// the file and the key at fault).
    pub fn new(cfg: &NotationConfig) -> anyhow::Result<Self> {
        let path = &cfg.trust_policy;
        let len = std::fs::metadata(path)
            .with_context(|| format!("trust_policy {}: cannot read", path.display()))?
            .len();
        if len > MAX_POLICY_BYTES {
            anyhow::bail!(
                "trust_policy {}: larger than {MAX_POLICY_BYTES} bytes",
                path.display()
            );
        }
        let bytes = std::fs::read(path)
            .with_context(|| format!("trust_policy {}: cannot read", path.display()))?;
        let policy = TrustPolicy::parse(&bytes)
            .with_context(|| format!("trust_policy {}", path.display()))?;
        let store = TrustStore::load(
            &cfg.trust_store,
            policy.statements.iter().flat_map(|s| s.stores.iter()),
        )
        .with_context(|| format!("trust_store {}", cfg.trust_store.display()))?;
        for st in &policy.statements {
            tracing::info!(
                statement = %st.name,
                level = st.level.as_str(),
                scopes = ?if st.global { vec!["*".to_owned()] } else { st.scopes.clone() },
                "Notation trust policy statement loaded"
            );
        }
        Ok(NotationVerifier { policy, store })
    }

    /// Why a statement cannot vouch whatever the signatures say, if so.
    fn never_vouches(st: &policy::Statement) -> Option<String> {
        match st.level {
            Level::Skip => Some(format!(
                "trust policy statement {:?} is at level skip: it verifies nothing, so it never vouches",
                st.name
            )),
            Level::Audit => Some(format!(
                "trust policy statement {:?} is at level audit: it enforces integrity only (anyone's self-signed certificate would pass), so it never vouches",
                st.name
            )),
            _ if st.actions.authenticity != Action::Enforce => Some(format!(
                "trust policy statement {:?} overrides authenticity to {:?}: without enforced authenticity it never vouches",
                st.name, st.actions.authenticity
            )),
            _ => None,
        }
    }
}

impl DigestVerifier for NotationVerifier {
    fn accepts(&self, kind: ArtifactKind) -> bool {
        matches!(kind, ArtifactKind::NotationJws | ArtifactKind::NotationCose)
    }

    fn verify(&self, subject: Subject<'_>, candidates: &[Candidate], now: SystemTime) -> Verdict {
        let uri = format!("{}/{}", subject.registry, subject.repository.as_str());
        let Some(st) = self.policy.statement_for(&uri) else {
            return Verdict::No(format!(
                "no Notation trust policy statement covers {uri} (no exact scope and no \"*\")"
            ));
        };
        if let Some(why) = Self::never_vouches(st) {
            return Verdict::No(why);
        }
        let mut reasons = Vec::new();
        for cand in candidates.iter().filter(|c| self.accepts(c.kind)) {
            match verify::candidate(&self.store, st, subject, cand, now) {
                Ok(evidence) => return Verdict::Vouched(evidence),
                Err(e) => reasons.push(format!("{}: {e:#}", cand.manifest_digest)),
            }
        }
        if reasons.is_empty() {
            return Verdict::No("no Notation signature found".to_owned());
        }
        Verdict::No(format!(
            "no Notation signature vouches under statement {:?}: {}",
            st.name,
            reasons.join("; ")
        ))
    }
}
