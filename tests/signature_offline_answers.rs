//! Which registry failures let stored signature evidence stand in for discovery (README
//! "Evidence on disk, and offline"), against the fake registry and the toy verifier: a
//! registry that ANSWERS with a 500 on `/referrers` is not offline, so a fresh proxy with
//! the evidence on disk still fails closed; a registry that cannot be reached at all
//! (connection refused) is, and the evidence, re-verified, vouches.

mod fake;

use std::sync::Arc;

use fake::toy::{REPO, image, legacy_sig};
use fake::{Behaviour, FakeRegistry};
use portcullis::config::SourceConfig;
use portcullis::trust::TrustSource;

/// A fresh in-process proxy (nothing in memory) in front of `upstream`, with `cache` as its
/// `cache.dir` and `ci-key` (the toy key "ci") as the only source of `team/*`.
async fn proxy(upstream: std::net::SocketAddr, cache: &std::path::Path) -> String {
    let policy = format!(
        r#"
[trust.ci-key]
type = "cosign-key"
keys = ["/unused.pub"]
transparency_log = "not-required"

[[policy]]
repositories = ["fake.example:5000/team/*"]
any_of = ["ci-key"]

[cache]
dir = "{}"
"#,
        cache.display()
    );
    let toml = fake::config(upstream, "enforce", false, &policy);
    let make_trust = |_: &str, _: SourceConfig<'_>| -> anyhow::Result<Arc<dyn TrustSource>> {
        anyhow::bail!("no tag-binding source here")
    };
    fake::start_proxy_with(&toml, &make_trust, &fake::toy::ci_verifier)
        .await
        .0
}

async fn get(url: String) -> (u16, String) {
    fake::get_accepting(&url, fake::toy::OCI_MANIFEST).await
}

#[tokio::test]
async fn a_500_is_an_answer_and_fails_closed_a_refused_connection_uses_the_evidence() {
    let cache = tempfile::tempdir().unwrap();
    let reg = FakeRegistry::default();
    let (signed, _) = image(&reg, "signed", "s");
    legacy_sig(&reg, &signed, &format!("ci:{signed}"));
    let addr = reg.start().await;
    let path = format!("/v2/{REPO}/manifests/{signed}");

    let url = proxy(addr, cache.path()).await;
    let (status, body) = get(format!("{url}{path}")).await;
    assert_eq!(status, 200, "registry up: {body}");
    let stored = std::fs::read_dir(cache.path().join("signatures"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    assert_eq!(stored, 1, "the evidence is on disk");

    // The registry answers 500 on /referrers: not offline. A fresh proxy does not fall back.
    reg.set(
        &format!("/v2/{REPO}/referrers/{signed}"),
        Behaviour::Status {
            status: 500,
            code: "UNKNOWN".into(),
        },
    );
    let url = proxy(addr, cache.path()).await;
    let (status, body) = get(format!("{url}{path}")).await;
    assert_eq!(status, 403, "a 500 fails closed: {body}");
    assert!(
        body.contains("signature discovery failed") && body.contains("500"),
        "{body}"
    );
    assert!(!body.contains("OFFLINE"), "{body}");

    // Nothing listens where the registry was: offline, the evidence re-verified vouches.
    let gone = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = proxy(gone, cache.path()).await;
    let (status, body) = get(format!("{url}{path}")).await;
    assert_eq!(
        status, 200,
        "registry unreachable, evidence on disk: {body}"
    );
    assert_eq!(portcullis::refs::Digest::sha256_of(body.as_bytes()), signed);
}
