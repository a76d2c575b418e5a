//! Trust policy and trust store files for the test signer's chains, and the verification
//! helpers the attack tests share.

use std::path::Path;
use std::time::SystemTime;

use portcullis::refs::Digest;
use portcullis::trust::notation::NotationConfig;
use portcullis::trust::signature::Candidate;

/// Writes `trustpolicy.json` with one statement (`level`, `scope`, one store
/// `<store_type>:test` holding `root_pem`, identities `*`) and the trust store under `dir`.
pub fn write_trust(
    dir: &Path,
    level: &str,
    scope: &str,
    store_type: &str,
    root_pem: &str,
) -> NotationConfig {
    write_trust_policy(
        dir,
        &serde_json::json!({"version": "1.0", "trustPolicies": [{
            "name": "test", "registryScopes": [scope],
            "signatureVerification": {"level": level},
            "trustStores": [format!("{store_type}:test")], "trustedIdentities": ["*"]}]}),
        &[(store_type, "test", root_pem)],
    )
}

/// Like [`write_trust`] at level strict with a `ca:test` store, plus an `override` map.
pub fn write_trust_override(
    dir: &Path,
    overrides: serde_json::Value,
    root_pem: &str,
) -> NotationConfig {
    write_trust_policy(
        dir,
        &serde_json::json!({"version": "1.0", "trustPolicies": [{"name": "test",
            "registryScopes": [SCOPE], "signatureVerification": {"level": "strict",
            "override": overrides},
            "trustStores": ["ca:test"], "trustedIdentities": ["*"]}]}),
        &[("ca", "test", root_pem)],
    )
}

/// Writes any trust policy document and named stores (`(type, name, PEM)`).
pub fn write_trust_policy(
    dir: &Path,
    policy: &serde_json::Value,
    stores: &[(&str, &str, &str)],
) -> NotationConfig {
    let trust_policy = dir.join("trustpolicy.json");
    std::fs::write(&trust_policy, serde_json::to_vec_pretty(policy).unwrap()).unwrap();
    let trust_store = dir.join("truststore");
    for (ty, name, pem) in stores {
        let d = trust_store.join("x509").join(ty).join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("root.pem"), pem).unwrap();
    }
    NotationConfig {
        trust_policy,
        trust_store,
    }
}

/// The repository the attack tests verify in, and its trust policy scope.
pub const REGISTRY: &str = "registry.example.com";
pub const REPOSITORY: &str = "team/app";
pub const SCOPE: &str = "registry.example.com/team/app";

/// Builds the verifier from `cfg` and verifies `candidates` for `digest` in
/// `registry.example.com/team/app` at `now`.
pub fn verify_in_scope(
    cfg: &NotationConfig,
    digest: &Digest,
    candidates: &[Candidate],
    now: SystemTime,
) -> portcullis::trust::signature::Verdict {
    use portcullis::trust::signature::DigestVerifier as _;
    let repo: portcullis::refs::RepoName = REPOSITORY.parse().unwrap();
    let subject = portcullis::trust::signature::Subject {
        registry: REGISTRY,
        repository: &repo,
        digest,
    };
    portcullis::trust::notation::NotationVerifier::new(cfg)
        .unwrap()
        .verify(subject, candidates, now)
}

/// The refusal's reason; panics if it vouched.
pub fn refusal(v: portcullis::trust::signature::Verdict) -> String {
    match v {
        portcullis::trust::signature::Verdict::No(why) => why,
        portcullis::trust::signature::Verdict::Vouched(e) => {
            panic!("expected a refusal, got {e:?}")
        }
    }
}
