//! The request path under a `[[policy]]` (README "Signatures on the digest"), against the fake
//! registry and a toy digest verifier (the real cosign / Notation verifiers have their own
//! tests; here the question is what the proxy does with their verdicts): a tag vouched for
//! by a signature on its digest is served with its signature artifacts, an unsigned tag or
//! one signed by another key is refused with the source's reason, a 500 on `/referrers`
//! fails closed, two tag-binding sources that disagree are refused naming both, and many
//! concurrent pulls make one discovery.

mod fake;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use fake::toy::{REPO, ToyKey, image, legacy_sig};
use fake::{Behaviour, FakeRegistry, TableTrust};
use portcullis::config::SourceConfig;
use portcullis::refs::Digest;
use portcullis::trust::TrustSource;
use portcullis::trust::set::VerifierFactory;
use portcullis::trust::signature::{ArtifactKind, Candidate, DigestVerifier, Subject, Verdict};

const REG: &str = "fake.example:5000";

fn policy(any_of: &str) -> String {
    policy_with(&format!("any_of = [{any_of}]"))
}

/// The sources, and one `[[policy]]` entry for team/* with `rule` (any_of / all_of / mode).
fn policy_with(rule: &str) -> String {
    format!(
        r#"
[trust.ci-key]
type = "cosign-key"
keys = ["/unused.pub"]
transparency_log = "not-required"

[trust.notary-a]
type = "notary"
server = "https://a.example"

[trust.notary-b]
type = "notary"
server = "https://b.example"

[[policy]]
repositories = ["{REG}/team/*"]
{rule}
"#
    )
}

/// A proxy with `any_of` over `ci-key` (ToyKey("ci")) and two table-backed Notary sources.
async fn proxy(reg: &FakeRegistry, any_of: &str, a: Arc<TableTrust>, b: Arc<TableTrust>) -> String {
    proxy_with(reg, &policy(any_of), a, b).await
}

async fn proxy_with(
    reg: &FakeRegistry,
    policy: &str,
    a: Arc<TableTrust>,
    b: Arc<TableTrust>,
) -> String {
    proxy_verifying(reg, policy, a, b, &fake::toy::ci_verifier).await
}

/// [`proxy_with`] with another factory for the digest-vouching sources.
async fn proxy_verifying(
    reg: &FakeRegistry,
    policy: &str,
    a: Arc<TableTrust>,
    b: Arc<TableTrust>,
    make_verifier: &VerifierFactory<'_>,
) -> String {
    let addr = reg.start().await;
    let toml = fake::config(addr, "enforce", false, policy);
    let make_trust = move |_: &str, s: SourceConfig<'_>| -> anyhow::Result<Arc<dyn TrustSource>> {
        match s {
            SourceConfig::Notary(n) if n.server.contains("a.example") => {
                Ok(a.clone() as Arc<dyn TrustSource>)
            }
            SourceConfig::Notary(_) => Ok(b.clone() as Arc<dyn TrustSource>),
            SourceConfig::Tuf(_) => anyhow::bail!("no tuf here"),
        }
    };
    fake::start_proxy_with(&toml, &make_trust, make_verifier)
        .await
        .0
}

async fn get(url: String) -> (u16, String) {
    let r = fake::client().get(&url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn denied(status: u16, body: &str, reason: &str) {
    assert_eq!(status, 403, "{body}");
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["errors"][0]["code"], "DENIED", "{body}");
    assert_eq!(v["errors"][0]["detail"]["reason"], reason, "{body}");
}

#[tokio::test]
async fn a_key_signed_tag_is_served_with_its_signature_and_others_are_refused() {
    let reg = FakeRegistry::default();
    let (signed, layer) = image(&reg, "signed", "s");
    let (sig, sig_layer) = legacy_sig(&reg, &signed, &format!("ci:{signed}"));
    let (unsigned, _) = image(&reg, "unsigned", "u");
    let (other, _) = image(&reg, "other", "o");
    legacy_sig(&reg, &other, &format!("attacker:{other}"));
    let url = proxy(&reg, "\"ci-key\"", Arc::default(), Arc::default()).await;
    let base = format!("{url}/v2/{REPO}");

    let (status, body) = get(format!("{base}/manifests/signed")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(Digest::sha256_of(body.as_bytes()), signed);
    assert_eq!(get(format!("{base}/blobs/{layer}")).await.0, 200);
    // The signature artifacts joined the closure: clients behind the proxy can verify.
    assert_eq!(get(format!("{base}/manifests/{sig}")).await.0, 200);
    assert_eq!(get(format!("{base}/blobs/{sig_layer}")).await.0, 200);

    // cosign's `.sig` tag, as `cosign verify` behind the mirror asks for it.
    let (status, body) = get(format!("{base}/manifests/sha256-{}.sig", signed.hex())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(Digest::sha256_of(body.as_bytes()).to_string(), sig);
    let (status, body) = get(format!("{base}/manifests/sha256-{}.sig", other.hex())).await;
    denied(status, &body, "not_in_trusted_closure");
    assert!(body.contains("which is not trusted"), "{body}");

    let (status, body) = get(format!("{base}/manifests/unsigned")).await;
    denied(status, &body, "not_signed");
    assert!(body.contains("ci-key: no signature found"), "{body}");
    assert!(
        body.contains("tag bound by: upstream registry, not signed"),
        "{body}"
    );
    assert!(body.contains(&unsigned.to_string()), "{body}");

    let (status, body) = get(format!("{base}/manifests/other")).await;
    denied(status, &body, "not_signed");
    assert!(
        body.contains("ci-key: none of 1 signatures is by key ci"),
        "{body}"
    );
    // By digest too.
    let (status, body) = get(format!("{base}/manifests/{other}")).await;
    denied(status, &body, "not_in_trusted_closure");
}

#[tokio::test]
async fn a_signed_digest_is_served_by_digest_on_a_fresh_proxy() {
    let reg = FakeRegistry::default();
    let (signed, layer) = image(&reg, "signed", "s");
    legacy_sig(&reg, &signed, &format!("ci:{signed}"));
    let url = proxy(&reg, "\"ci-key\"", Arc::default(), Arc::default()).await;
    let base = format!("{url}/v2/{REPO}");
    // A blob first: nothing vouched reaches it yet.
    denied_blob(&format!("{base}/blobs/{layer}")).await;
    assert_eq!(get(format!("{base}/manifests/{signed}")).await.0, 200);
    assert_eq!(get(format!("{base}/blobs/{layer}")).await.0, 200);
}

async fn denied_blob(url: &str) {
    let (status, body) = get(url.to_owned()).await;
    denied(status, &body, "not_in_trusted_closure");
}

#[tokio::test]
async fn a_500_on_referrers_fails_closed_although_a_sig_exists() {
    let reg = FakeRegistry::default();
    let (signed, _) = image(&reg, "signed", "s");
    legacy_sig(&reg, &signed, &format!("ci:{signed}"));
    reg.set(
        &format!("/v2/{REPO}/referrers/{signed}"),
        Behaviour::Status {
            status: 500,
            code: "UNKNOWN".into(),
        },
    );
    let url = proxy(&reg, "\"ci-key\"", Arc::default(), Arc::default()).await;
    let (status, body) = get(format!("{url}/v2/{REPO}/manifests/signed")).await;
    denied(status, &body, "not_signed");
    assert!(body.contains("signature discovery failed"), "{body}");
    assert!(body.contains("500"), "{body}");
}

#[tokio::test]
async fn a_notary_only_tag_in_an_any_of_repository_needs_no_signature() {
    let reg = FakeRegistry::default();
    image(&reg, "v1", "n");
    let a = Arc::new(TableTrust::default());
    let manifest = reg_manifest_bytes(&reg, "v1").await;
    a.sign("v1", &manifest);
    let url = proxy(&reg, "\"notary-a\", \"ci-key\"", a, Arc::default()).await;
    let (status, got) = get(format!("{url}/v2/{REPO}/manifests/v1")).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        reg.hits(&format!(
            "/v2/{REPO}/referrers/{}",
            Digest::sha256_of(&manifest)
        )),
        0,
        "no discovery for a signed tag binding"
    );
}

/// The manifest bytes the fake serves under `tag`.
async fn reg_manifest_bytes(reg: &FakeRegistry, tag: &str) -> Vec<u8> {
    let addr = reg.start().await;
    fake::client()
        .get(format!("http://{addr}/v2/{REPO}/manifests/{tag}"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn two_tag_binding_sources_that_disagree_are_refused_naming_both() {
    let reg = FakeRegistry::default();
    image(&reg, "v1", "one");
    image(&reg, "v2", "two");
    let (a, b) = (
        Arc::new(TableTrust::default()),
        Arc::new(TableTrust::default()),
    );
    a.sign("v1", &reg_manifest_bytes(&reg, "v1").await);
    b.sign("v1", &reg_manifest_bytes(&reg, "v2").await);
    let url = proxy(&reg, "\"notary-a\", \"notary-b\"", a, b).await;
    let (status, body) = get(format!("{url}/v2/{REPO}/manifests/v1")).await;
    denied(status, &body, "sources_disagree");
    assert!(
        body.contains("notary-a binds it to") && body.contains("notary-b to"),
        "{body}"
    );
}

/// The toy key "ci", counting its verifications.
struct Counted(ToyKey, Arc<AtomicUsize>);

impl DigestVerifier for Counted {
    fn accepts(&self, kind: ArtifactKind) -> bool {
        self.0.accepts(kind)
    }
    fn verify(&self, s: Subject<'_>, candidates: &[Candidate], now: SystemTime) -> Verdict {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.verify(s, candidates, now)
    }
}

/// 200 concurrent cold pulls of one tag (issue 13's benchmark load; the timings are in
/// bench/results/*-signatures.md): one discovery (one referrers request, one `.sig` request)
/// and one verification, all served.
#[tokio::test]
async fn concurrent_cold_pulls_make_one_discovery() {
    let reg = FakeRegistry::default();
    let (signed, _) = image(&reg, "signed", "s");
    legacy_sig(&reg, &signed, &format!("ci:{signed}"));
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let make_verifier = move |_: &str,
                              _: &portcullis::config::TrustSourceConfig,
                              _: &std::path::Path|
          -> anyhow::Result<Arc<dyn DigestVerifier>> {
        Ok(Arc::new(Counted(ToyKey("ci"), counted.clone())))
    };
    let policy = policy("\"ci-key\"");
    let url = proxy_verifying(
        &reg,
        &policy,
        Arc::default(),
        Arc::default(),
        &make_verifier,
    )
    .await;
    let pulls = (0..200).map(|_| get(format!("{url}/v2/{REPO}/manifests/signed")));
    for (status, body) in futures_util::future::join_all(pulls).await {
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(reg.hits(&format!("/v2/{REPO}/referrers/{signed}")), 1);
    assert_eq!(
        reg.hits(&format!("/v2/{REPO}/manifests/sha256-{}.sig", signed.hex())),
        1
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one verification");
}

#[tokio::test]
async fn all_of_needs_every_member_and_audit_mode_serves_what_enforce_refuses() {
    let reg = FakeRegistry::default();
    let (both, _) = image(&reg, "both", "b");
    let (notary_only, _) = image(&reg, "notary-only", "n");
    legacy_sig(&reg, &both, &format!("ci:{both}"));
    let a = Arc::new(TableTrust::default());
    a.sign("both", &reg_manifest_bytes(&reg, "both").await);
    a.sign(
        "notary-only",
        &reg_manifest_bytes(&reg, "notary-only").await,
    );
    let url = proxy_with(
        &reg,
        &policy_with("all_of = [\"notary-a\", \"ci-key\"]"),
        a.clone(),
        Arc::default(),
    )
    .await;
    assert_eq!(get(format!("{url}/v2/{REPO}/manifests/both")).await.0, 200);
    let (status, body) = get(format!("{url}/v2/{REPO}/manifests/notary-only")).await;
    denied(status, &body, "not_signed");
    assert!(
        body.contains("tag bound by: notary-a (notary)")
            && body.contains("ci-key: no signature found"),
        "{body}"
    );
    assert!(body.contains(&notary_only.to_string()), "{body}");

    // The same rule in audit mode serves it (and counts what enforce would refuse).
    let audit = policy_with("mode = \"audit\"\nall_of = [\"notary-a\", \"ci-key\"]");
    let url = proxy_with(&reg, &audit, a, Arc::default()).await;
    assert_eq!(
        get(format!("{url}/v2/{REPO}/manifests/notary-only"))
            .await
            .0,
        200
    );
}
