//! `sigstore_tuf = "public-good"`: Sigstore's own TUF repository with the root that
//! sigstore-trust-root embeds, pinned by sha256. This machine has no route to Sigstore, so
//! what is shown is the wiring: the name loads (another name, or a table with an unknown key,
//! is refused naming the key), the pinned root is the embedded one, and the source asks
//! `tuf-repo-cdn.sigstore.dev` and, unable to, vouches for nothing and says why.

mod support;

use portcullis::config::{Config, TrustSourceConfig};
use portcullis::refs::Digest;
use portcullis::trust::cosign::{
    CosignKeylessConfig, CosignKeylessVerifier, PUBLIC_GOOD_ROOT, PUBLIC_GOOD_URL,
};
use portcullis::trust::signature::DigestVerifier;
use sha2::Digest as _;
use support::cosign::fixtures::{assert_refused, verify_local};
use support::cosign::keyless_signer::{TestSigstore, Timing};

const REGISTRY: &str = "[[registries]]\nname = \"registry.example.com\"\nupstream = \"https://registry.example.com\"\n";

fn load(tuf: &str) -> Result<Config, String> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("portcullis.toml");
    let text = format!(
        "{REGISTRY}\n[trust.release]\ntype = \"cosign-keyless\"\nsigstore_tuf = {tuf}\n\
         [[trust.release.identities]]\nissuer = \"https://token.actions.githubusercontent.com\"\n\
         subject = \"https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main\"\n"
    );
    std::fs::write(&p, text).unwrap();
    Config::load(Some(&p)).map_err(|e| e.to_string())
}

fn keyless(c: &Config) -> CosignKeylessConfig {
    match &c.trust["release"] {
        TrustSourceConfig::CosignKeyless(k) => k.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn public_good_loads_with_the_embedded_root_pinned() {
    let c = load("\"public-good\"").unwrap();
    let t = keyless(&c).sigstore_tuf.unwrap();
    assert_eq!(t.metadata_url, PUBLIC_GOOD_URL);
    assert_eq!(t.targets_url(), format!("{PUBLIC_GOOD_URL}/targets/"));
    assert_eq!(
        t.root_sha256.as_deref(),
        Some(hex::encode(sha2::Sha256::digest(PUBLIC_GOOD_ROOT)).as_str())
    );
    // The embedded bytes are a TUF root of Sigstore's (not some placeholder).
    let root: serde_json::Value = serde_json::from_slice(PUBLIC_GOOD_ROOT).unwrap();
    assert_eq!(root["signed"]["_type"], "root");
    assert!(root["signed"]["version"].as_u64().unwrap() >= 10);
    // A table still works, and its mistakes are named as before.
    let table = "{ metadata_url = \"https://tuf.example.com\", root_file = \"/etc/root.json\" }";
    assert_eq!(
        keyless(&load(table).unwrap())
            .sigstore_tuf
            .unwrap()
            .metadata_url,
        "https://tuf.example.com"
    );
    let e =
        load("{ metadata_url = \"https://tuf.example.com\", root_file = \"/r\", rootfile = 1 }")
            .unwrap_err();
    assert!(e.contains("rootfile"), "{e}");
}

#[test]
fn another_name_is_refused_naming_the_key() {
    let e = load("\"staging\"").unwrap_err();
    assert!(e.contains("config key `trust.release`"), "{e}");
    assert!(e.contains("sigstore_tuf = \"staging\""), "{e}");
    assert!(
        e.contains("the only named instance is \"public-good\""),
        "{e}"
    );
}

#[tokio::test]
async fn unreachable_public_good_vouches_for_nothing_and_says_where_it_asked() {
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .ok();
    let c = load("\"public-good\"").unwrap();
    let state = tempfile::tempdir().unwrap();
    let v = CosignKeylessVerifier::new(&keyless(&c), state.path()).expect("verifier");
    // The pinned root was written under the state directory, byte for byte the embedded one.
    let written = std::fs::read(state.path().join("tuf/sigstore-public-good-root.json")).unwrap();
    assert_eq!(written, PUBLIC_GOOD_ROOT);
    // Before a refresh nothing vouches; the refresh cannot reach Sigstore and says where
    // it asked; after it nothing vouches still (a signature of our own test instance).
    let sigstore = TestSigstore::new();
    let digest = Digest::sha256_of(b"an image manifest");
    let sig = sigstore.sign_image(
        "release@example.com",
        "https://issuer.example",
        "127.0.0.1:5000/team/app",
        &digest.to_string(),
        Timing::recent(),
    );
    let why = v.prepare().await.expect_err("no network here");
    assert!(
        why.to_string().contains("tuf-repo-cdn.sigstore.dev"),
        "{why}"
    );
    assert_refused(
        verify_local(&v, sig.candidate(), "team/app", &digest),
        "no Sigstore trusted root in use",
    );
}
