//! `cosign-keyless` with `sigstore_tuf`: the trusted root is the target `trusted_root.json` of
//! a real TUF repository (python-tuf's Metadata API, served by a real HTTP server), verified
//! from a pinned root through the same client and store as the `tuf` trust source. The keyless
//! test signer (our own Fulcio-like CA and Rekor-like log) makes the signatures.
//!
//! What must hold: a root the repository signs is used; a new root replaces it at the next
//! refresh (the old instance's signatures stop vouching); offline, a restarted node uses the
//! stored, re-verified copy; bytes that do not match the signed entry, and expired metadata,
//! leave no root in use, so nothing vouches, with a reason.

mod support;

use std::time::Duration;

use portcullis::refs::Digest;
use portcullis::trust::cosign::{
    CosignKeylessConfig, CosignKeylessVerifier, KeylessIdentity, SctPolicy, SignedIdentity,
    SigstoreTuf,
};
use portcullis::trust::signature::DigestVerifier;
use serde_json::json;
use support::cosign::fixtures::{assert_refused, verify_local, vouched};
use support::cosign::keyless_signer::{TestSigstore, Timing};
use support::real::tuf::{TufRepo, target_entry};

const EMAIL: &str = "release@example.com";
const ISSUER: &str = "https://issuer.example";

fn config(repo: &TufRepo) -> CosignKeylessConfig {
    let c = CosignKeylessConfig {
        trusted_root: None,
        sigstore_tuf: Some(SigstoreTuf {
            metadata_url: repo.metadata_url(),
            targets_url: Some(repo.targets_url()),
            root_file: repo.root_file(),
            root_sha256: None,
            // Tests publish and expect the next refresh to see it soon (the default is 1h).
            refresh_interval: "1s".into(),
            ca_file: None,
        }),
        sct: SctPolicy::NotRequired,
        identities: vec![KeylessIdentity {
            issuer: ISSUER.into(),
            subject: Some(EMAIL.into()),
            subject_regex: None,
            claims: Default::default(),
        }],
        signed_identity: SignedIdentity::MatchRepository,
    };
    c.validate("trust.release").expect("valid config");
    c
}

fn verifier(repo: &TufRepo, state: &std::path::Path) -> CosignKeylessVerifier {
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .ok();
    CosignKeylessVerifier::new(&config(repo), state).expect("verifier")
}

/// Publishes `root_json` as the signed `trusted_root.json` and serves it.
fn publish_root(repo: &mut TufRepo, root_json: &str, extra: serde_json::Value) {
    let mut spec = json!({"targets": {"trusted_root.json": target_entry(root_json.as_bytes())}});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    repo.serve_target("trusted_root.json", root_json.as_bytes());
    repo.publish(&spec);
}

/// Past the 1 s refresh interval, so the next `prepare` asks the repository again.
fn after_interval() {
    std::thread::sleep(Duration::from_millis(1200));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_root_signed_in_tuf_is_used_replaced_kept_offline_and_dropped_when_untrusted() {
    let first = TestSigstore::new();
    let second = TestSigstore::new();
    let digest = Digest::sha256_of(b"image");
    let reference = "127.0.0.1:5000/team/app:v1";
    let by_first = first.sign_image(
        EMAIL,
        ISSUER,
        reference,
        &digest.to_string(),
        Timing::recent(),
    );
    let by_second = second.sign_image(
        EMAIL,
        ISSUER,
        reference,
        &digest.to_string(),
        Timing::recent(),
    );

    // Generation 1 signs the first instance's root.
    let mut repo = TufRepo::new(&json!({"targets": {}}));
    publish_root(&mut repo, &first.trusted_root_json(), json!({}));
    let state = tempfile::tempdir().unwrap();
    let v = verifier(&repo, state.path());
    // Before anything was fetched, nothing vouches.
    assert_refused(
        verify_local(&v, by_first.candidate(), "team/app", &digest),
        "no Sigstore trusted root in use",
    );
    v.prepare().await.expect("trusted root from TUF");
    vouched(verify_local(&v, by_first.candidate(), "team/app", &digest));
    assert_refused(
        verify_local(&v, by_second.candidate(), "team/app", &digest),
        "No log key valid at integrated time",
    );
    assert!(
        repo.requests().contains("trusted_root.json"),
        "the target was downloaded:\n{}",
        repo.requests()
    );

    // The repository rotates to the second instance: at the next refresh the first one's
    // signatures stop vouching and the second's start.
    publish_root(&mut repo, &second.trusted_root_json(), json!({}));
    after_interval();
    v.prepare().await.expect("new trusted root from TUF");
    vouched(verify_local(&v, by_second.candidate(), "team/app", &digest));
    assert_refused(
        verify_local(&v, by_first.candidate(), "team/app", &digest),
        "No log key valid at integrated time",
    );

    // Offline: a restarted node (a new verifier over the same state) re-verifies the stored
    // metadata and the stored trusted root, and uses it while the metadata has not expired.
    repo.stop();
    let restarted = verifier(&repo, state.path());
    restarted
        .prepare()
        .await
        .expect("stored trusted root, re-verified offline");
    vouched(verify_local(
        &restarted,
        by_second.candidate(),
        "team/app",
        &digest,
    ));
    repo.start();

    // Other bytes than the repository signed: refused, and no root stays in use.
    publish_root(&mut repo, &first.trusted_root_json(), json!({}));
    let signed = first.trusted_root_json();
    let tampered = signed.replace("rekor.test", "rekor.evil");
    assert_eq!(tampered.len(), signed.len(), "same length, other bytes");
    let sha = hex_sha(signed.as_bytes());
    std::fs::write(
        repo.dir()
            .join("../www/targets")
            .join(format!("{sha}.trusted_root.json")),
        &tampered,
    )
    .unwrap();
    after_interval();
    let err = v.prepare().await.expect_err("tampered target refused");
    eprintln!("tampered: {err}");
    assert!(err.contains("trusted_root.json: sha256 mismatch"), "{err}");
    // About the bytes, not a refresh: no retry is promised.
    assert!(!err.contains("a refresh is retried"), "{err}");
    assert_refused(
        verify_local(&v, by_second.candidate(), "team/app", &digest),
        "no Sigstore trusted root in use",
    );
    assert_refused(
        verify_local(&v, by_first.candidate(), "team/app", &digest),
        "no Sigstore trusted root in use",
    );

    // Expired metadata: fail closed, naming the role.
    publish_root(
        &mut repo,
        &first.trusted_root_json(),
        json!({"expires": {"timestamp": "-1h"}}),
    );
    after_interval();
    let err = v.prepare().await.expect_err("expired timestamp refused");
    eprintln!("expired: {err}");
    assert!(err.contains("timestamp metadata expired"), "{err}");
    assert_refused(
        verify_local(&v, by_first.candidate(), "team/app", &digest),
        "no Sigstore trusted root in use",
    );
}

fn hex_sha(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn config_names_the_key_for_both_neither_or_a_file_url() {
    let base = |root: Option<&str>, tuf: Option<&str>| {
        let mut text = String::new();
        if let Some(r) = root {
            text.push_str(&format!("trusted_root = {r:?}\n"));
        }
        if let Some(u) = tuf {
            text.push_str(&format!(
                "[sigstore_tuf]\nmetadata_url = {u:?}\nroot_file = \"/etc/root.json\"\n"
            ));
        }
        text.push_str("[[identities]]\nissuer = \"https://i\"\nsubject = \"a@b\"\n");
        let c: CosignKeylessConfig = toml::from_str(&text).expect("parses");
        c.validate("trust.release").map_err(|e| e.to_string())
    };
    let both = base(Some("/r.json"), Some("https://tuf.example/")).unwrap_err();
    assert!(both.contains("trust.release.trusted_root"), "{both}");
    assert!(both.contains("sigstore_tuf"), "{both}");
    let neither = base(None, None).unwrap_err();
    assert!(neither.contains("trust.release.trusted_root"), "{neither}");
    let file = base(None, Some("file:///srv/tuf/")).unwrap_err();
    assert!(
        file.contains("trust.release.sigstore_tuf.metadata_url"),
        "{file}"
    );
    base(None, Some("https://tuf-repo-cdn.sigstore.dev/")).expect("https is fine");
    base(Some("/r.json"), None).expect("a file is fine");
}

/// `cosign-key` with the log required takes its Rekor keys from the same kind of TUF target:
/// containers/image's real key + SET signature vouches with public-good's trusted root served
/// by TUF, and vouches for nothing while the TUF metadata does not verify (expired).
#[tokio::test(flavor = "multi_thread")]
async fn cosign_key_takes_its_rekor_keys_from_tuf_and_fails_closed_when_it_expires() {
    use portcullis::trust::cosign::{CosignKeyConfig, CosignKeyVerifier, TransparencyLog};
    use support::cosign::fixtures::{HOST, ci, trusted_root, verify_dir};
    let public_good = std::fs::read_to_string(trusted_root()).unwrap();
    let mut repo = TufRepo::new(&json!({"targets": {}}));
    publish_root(&mut repo, &public_good, json!({}));
    let mut cfg = config(&repo);
    let tuf = cfg.sigstore_tuf.take();
    let key = CosignKeyConfig {
        keys: vec![ci("cosign2.pub")],
        transparency_log: TransparencyLog::Required,
        trusted_root: None,
        sigstore_tuf: tuf,
        signed_identity: SignedIdentity::MatchRepository,
    };
    key.validate("trust.ci-key").expect("valid");
    let state = tempfile::tempdir().unwrap();
    let v = CosignKeyVerifier::new(&key, state.path()).expect("verifier");
    let (dir, repository) = ("dir-img-cosign-key-rekor-valid", "cosign-signed/key-1");
    assert_refused(
        verify_dir(&v, dir, HOST, repository),
        "no Sigstore trusted root in use",
    );
    v.prepare().await.expect("trusted root from TUF");
    let e = vouched(verify_dir(&v, dir, HOST, repository));
    assert!(e.signed_at.is_some(), "the SET's time: {e:?}");

    publish_root(
        &mut repo,
        &public_good,
        json!({"expires": {"timestamp": "-1h"}}),
    );
    after_interval();
    let err = v.prepare().await.expect_err("expired");
    assert!(err.contains("timestamp metadata expired"), "{err}");
    assert_refused(
        verify_dir(&v, dir, HOST, repository),
        "no Sigstore trusted root in use",
    );
}
