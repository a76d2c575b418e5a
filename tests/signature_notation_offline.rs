//! Stored Notation evidence with the real Notation verifier (README "Evidence on disk, and
//! offline"): an image signed by the notation helper's test signer is pulled once through a
//! fake registry with the referrers API; a fresh proxy whose registry cannot be reached then
//! serves it by digest from the cache, the stored signature re-verified under the configured
//! trust policy and store; with a trust store that holds another root, the same evidence no
//! longer vouches.

mod fake;
mod notation_fake;
mod support;

use std::path::Path;
use std::sync::Arc;

use fake::FakeRegistry;
use notation_fake::{REG, REPO, attach, image};
use portcullis::refs::Digest;
use support::notation_signer::*;

/// A fresh in-process proxy (nothing in memory) in front of `upstream`, `cache` as its
/// `cache.dir`, the Notation source `acme` trusting `root_pem`'s CA as the only source.
async fn proxy(
    upstream: std::net::SocketAddr,
    cache: &Path,
    trust: &Path,
    root_pem: &str,
) -> String {
    let cfg = write_trust(trust, "strict", &format!("{REG}/{REPO}"), "ca", root_pem);
    let policy = format!(
        "[trust.acme]\ntype = \"notation\"\ntrust_policy = {:?}\ntrust_store = {:?}\n\n[[policy]]\nrepositories = [\"{REG}/team/*\"]\nany_of = [\"acme\"]\n\n[cache]\ndir = {:?}\n",
        cfg.trust_policy.display().to_string(),
        cfg.trust_store.display().to_string(),
        cache.display().to_string(),
    );
    let toml = fake::config(upstream, "enforce", false, &policy);
    let no_tags = |_: &str,
                   _: portcullis::config::SourceConfig<'_>|
     -> anyhow::Result<Arc<dyn portcullis::trust::TrustSource>> {
        anyhow::bail!("no tag-binding source in this test")
    };
    fake::start_proxy_with(&toml, &no_tags, &portcullis::trust::set::build_verifier)
        .await
        .0
}

async fn get(url: &str, d: &Digest) -> (u16, String) {
    fake::get_accepting(&format!("{url}/v2/{REPO}/manifests/{d}"), MANIFEST_TYPE).await
}

#[tokio::test]
async fn stored_notation_evidence_vouches_offline_under_the_configured_trust_store_only() {
    let reg = FakeRegistry::default();
    let trusted = NotationSigner::new(LeafKey::EcP256, "ci");
    let (d, size) = image(&reg, "jws");
    attach(&reg, &trusted, &d, size, false);
    let addr = reg.start().await;
    let cache = tempfile::tempdir().unwrap();

    let online = tempfile::tempdir().unwrap();
    let url = proxy(addr, cache.path(), online.path(), &trusted.root_pem).await;
    let (status, body) = get(&url, &d).await;
    assert_eq!(status, 200, "registry up: {body}");

    // Nothing listens where the registry was.
    let gone = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let same = tempfile::tempdir().unwrap();
    let url = proxy(gone, cache.path(), same.path(), &trusted.root_pem).await;
    let (status, body) = get(&url, &d).await;
    assert_eq!(status, 200, "offline, evidence re-verified: {body}");
    assert_eq!(Digest::sha256_of(body.as_bytes()), d);

    // Another CA in the trust store: the stored signature no longer verifies.
    let other = NotationSigner::new(LeafKey::EcP256, "someone");
    let changed = tempfile::tempdir().unwrap();
    let url = proxy(gone, cache.path(), changed.path(), &other.root_pem).await;
    let (status, body) = get(&url, &d).await;
    assert_eq!(status, 403, "trust store changed: {body}");
    assert!(
        body.contains("does not vouch now") && body.contains("acme: "),
        "{body}"
    );
}
