//! Signatures on the digest end to end with the real parts: the Distribution registry 2.8 (no
//! referrers API, so discovery takes the referrers tag schema and cosign's `.sig` paths),
//! notary-server for a Notary source in the same `any_of`, cosign `.sig` artifacts made by the
//! project's cosign test signer and pushed byte for byte, Portcullis enforcing a `[[policy]]`,
//! and skopeo, podman and containerd pulling through it. A tag signed by the trusted key and a
//! Notary-only tag pull; an unsigned tag and a tag signed by another key are refused with the
//! proxy's reason.

mod support;

use std::path::Path;

use support::cosign::signer::{CosignTestKey, SignedSig};
use support::real::images::{self, ImageSpec};
use support::real::*;

const REPO: &str = "team/app";

fn push_sig(reg: &Registry, sig: &SignedSig) {
    support::real::cosign::push_sig(reg, REPO, sig);
}

fn config(reg: &Registry, notary: &Notary, key: &Path) -> String {
    format!(
        r#"{registry}
[trust.notary-prod]
type = "notary"
server = "{server}"
ca_file = "{ca}"
trust_pinning = {{ tofu = true }}

{ci_key}
[[policy]]
repositories = ["{host}/team/*"]
any_of = ["notary-prod", "ci-key"]
"#,
        registry = Portcullis::registry_section(reg, "enforce"),
        server = notary.url(),
        ca = notary.ca_path().display(),
        ci_key = support::real::cosign::ci_key_source(key),
        host = reg.addr(),
    )
}

#[test]
fn key_signed_and_notary_signed_tags_pull_and_the_rest_are_refused() {
    let reg = Registry::start(RegistryAuth::None);
    let notary = Notary::start(TrustService::Remote);
    let push = |tag: &str| {
        images::push(
            &reg,
            REPO,
            tag,
            &ImageSpec::single(&format!("sig e2e {tag}")),
            Format::Oci,
        )
    };
    let (signed, notary_only, unsigned, other) = (
        push("signed"),
        push("notary-only"),
        push("unsigned"),
        push("other"),
    );
    let trusted = CosignTestKey::generate();
    let attacker = CosignTestKey::generate();
    let reference = format!("{}/{REPO}", reg.addr());
    push_sig(&reg, &trusted.sign_image(&reference, &signed.digest));
    push_sig(&reg, &attacker.sign_image(&reference, &other.digest));
    Signer::new(&notary).sign(&reg.gun(REPO), "notary-only", &notary_only, &Role::Targets);
    let keydir = tempfile::tempdir().unwrap();
    let key = keydir.path().join("ci.pub");
    trusted.write_public_key(&key);
    let proxy = Portcullis::start_with(&config(&reg, &notary, &key), Portcullis::opts_for(&reg));

    let mirror = proxy.addr();
    let r = |tag: &str| format!("{}/{REPO}:{tag}", reg.addr());
    // skopeo
    let got = skopeo_pull(&mirror, &r("signed"), None);
    got.assert_ok("skopeo signed by the trusted key");
    assert_eq!(got.digest.as_deref(), Some(signed.digest.as_str()));
    let got = skopeo_pull(&mirror, &r("notary-only"), None);
    got.assert_ok("skopeo signed in notary only");
    assert_eq!(got.digest.as_deref(), Some(notary_only.digest.as_str()));
    skopeo_pull(&mirror, &r("unsigned"), None)
        .assert_refused("skopeo unsigned", "ci-key: no signature found")
        .assert_refused("skopeo unsigned: the digest is named", &unsigned.digest);
    skopeo_pull(&mirror, &r("other"), None)
        .assert_refused("skopeo signed by another key", "ci-key: ");

    // podman
    let podman = Podman::new();
    podman
        .pull(&mirror, &r("signed"), None)
        .assert_ok("podman signed");
    podman
        .pull(&mirror, &r("notary-only"), None)
        .assert_ok("podman notary-only");
    podman
        .pull(&mirror, &r("unsigned"), None)
        .assert_refused("podman unsigned", "ci-key: no signature found");
    podman
        .pull(&mirror, &r("other"), None)
        .assert_refused("podman other key", "ci-key: ");

    // containerd: HEAD first, so a refusal shows only the status.
    let c = Containerd::start();
    let p = c.pull(&mirror, &r("signed"), None);
    p.assert_ok("ctr signed");
    assert_eq!(p.digest.as_deref(), Some(signed.digest.as_str()));
    c.pull(&mirror, &r("notary-only"), None)
        .assert_ok("ctr notary-only");
    c.pull(&mirror, &r("unsigned"), None)
        .assert_refused("ctr unsigned", "403");
    c.pull(&mirror, &r("other"), None)
        .assert_refused("ctr other key", "403");

    // The signature artifact is served by digest for clients that verify behind the proxy.
    let in_registry = reg.get_manifest(REPO, &support::cosign::signer::sig_tag(&signed.digest));
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "-m",
            "10",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
        ])
        .arg(format!(
            "{}/v2/{REPO}/manifests/{}",
            proxy.url(),
            in_registry.digest
        ))
        .output()
        .expect("curl runs");
    let served = String::from_utf8_lossy(&out.stdout);
    assert!(
        served.contains("dev.cosignproject.cosign/signature"),
        "{served}"
    );

    // `portcullis check` resolves as the proxy does and shows each source's verdict.
    let check = |tag: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["check", "--config"])
            .arg(proxy.config_path())
            .arg(r(tag))
            .env("PORTCULLIS_CACHE__DIR", proxy.dir().join("check-cache"))
            .output()
            .expect("portcullis check runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, text) = check("signed");
    println!("{text}");
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!(
            "{}  (tag bound by: upstream registry, not signed)",
            signed.digest
        )),
        "{text}"
    );
    assert!(text.contains("TRUSTED by any_of: ci-key"), "{text}");
    let (ok, text) = check("notary-only");
    assert!(
        ok && text.contains("(tag bound by: notary-prod)")
            && text.contains("TRUSTED by any_of: notary-prod"),
        "{text}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check", "--json", "--config"])
        .arg(proxy.config_path())
        .arg(r("signed"))
        .env("PORTCULLIS_CACHE__DIR", proxy.dir().join("check-cache"))
        .output()
        .expect("portcullis check --json runs");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert!(out.status.success(), "{v}");
    assert_eq!(v["digest"], signed.digest.as_str(), "{v}");
    assert_eq!(v["tag_bound_by"], "upstream registry, not signed", "{v}");
    assert_eq!(v["sources"][1]["source"], "ci-key", "{v}");
    assert_eq!(v["sources"][1]["vouched"], true, "{v}");
    assert_eq!(v["trusted"], true, "{v}");
    let (ok, text) = check("other");
    println!("{text}");
    assert!(
        !ok && text.contains("REFUSED: any_of: notary-prod, ci-key not satisfied"),
        "{text}"
    );
    assert!(text.contains("ci-key       no"), "{text}");

    let log = proxy.log();
    assert!(log.contains("tag bound by upstream, not signed"), "{log}");
    let metrics = http_get(&format!("{}/metrics", proxy.admin_url()));
    assert!(
        metrics.contains("portcullis_signature_verdicts_total{source=\"ci-key\",verdict=\"yes\",reason=\"signature\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("verdict=\"no\",reason=\"refused\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_tag_bound_by_upstream_total{"),
        "{metrics}"
    );
}
