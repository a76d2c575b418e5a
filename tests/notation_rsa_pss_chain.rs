//! Notation chains whose certificates are signed with RSASSA-PSS (a CA may sign that way; the
//! spec forbids only SHA-1): made by the `cryptography` package (`tests/harness/mkpsschain.py`,
//! rcgen cannot sign with PSS), the envelopes by the project's signer with the leaf's key.
//! PSS with SHA-256/384/512, MGF1 over the same hash and a hash-long salt vouches in JWS and
//! COSE; another salt length is refused by name, and a root outside the store still is.

mod support;

use std::process::Command;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use portcullis::refs::Digest;
use portcullis::trust::signature::{ArtifactKind, Verdict};
use support::notation_signer::*;

const MKPSSCHAIN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/harness/mkpsschain.py");

/// A signer over a PSS-signed chain (`hash`, `salt`).
fn pss_signer(hash: &str, salt: u32) -> NotationSigner {
    let python = support::real::tuf::tuf_python();
    let out = Command::new(python)
        .args([MKPSSCHAIN, hash, &salt.to_string()])
        .output()
        .expect("run mkpsschain.py");
    assert!(
        out.status.success(),
        "mkpsschain.py {hash} {salt}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let b64 = |s: &serde_json::Value| STANDARD.decode(s.as_str().unwrap()).unwrap();
    let chain = v["chain"].as_array().unwrap().iter().map(b64).collect();
    NotationSigner::from_rsa_chain(
        &b64(&v["leaf_pkcs8"]),
        chain,
        v["root_pem"].as_str().unwrap().to_owned(),
    )
}

fn verdicts(signer: &NotationSigner, store_root_pem: &str) -> Vec<Verdict> {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_trust(dir.path(), "strict", SCOPE, "ca", store_root_pem);
    let digest = Digest::sha256_of(b"image");
    [ArtifactKind::NotationJws, ArtifactKind::NotationCose]
        .into_iter()
        .map(|kind| {
            let cand = signer.candidate(&digest, &SignOptions::default(), kind, None);
            verify_in_scope(&cfg, &digest, &[cand], SystemTime::now())
        })
        .collect()
}

#[test]
fn pss_signed_chains_vouch_with_each_hash() {
    for (hash, salt) in [("sha256", 32), ("sha384", 48), ("sha512", 64)] {
        let signer = pss_signer(hash, salt);
        for v in verdicts(&signer, &signer.root_pem) {
            assert!(
                matches!(v, Verdict::Vouched(_)),
                "{hash} salt {salt}: {v:?}"
            );
        }
    }
}

#[test]
fn a_salt_other_than_the_hash_length_is_refused_by_name() {
    let signer = pss_signer("sha256", 20);
    for v in verdicts(&signer, &signer.root_pem) {
        let why = refusal(v);
        assert!(
            why.contains("RSASSA-PSS SHA-256 with salt length 20"),
            "{why}"
        );
    }
}

#[test]
fn a_pss_chain_to_a_root_outside_the_store_is_refused() {
    let signer = pss_signer("sha256", 32);
    let other = pss_signer("sha256", 32);
    for v in verdicts(&signer, &other.root_pem) {
        let why = refusal(v);
        assert!(why.contains("is in trust store ca:test"), "{why}");
    }
}
