//! The referrers API path with a real verifier: Notation signatures (the notation helper's test
//! signer, JWS and COSE) attached as referrers in a registry that answers `/referrers` with
//! paging (the fake; Distribution 2.8 has no referrers API), verified by the Notation source
//! under a `[[policy]]`. Signed images pull, with their referrers answered; an image signed by
//! an untrusted CA and an unsigned one are refused with the source's reason.

mod fake;
mod notation_fake;
mod support;

use std::sync::Arc;

use bytes::Bytes;
use fake::{Behaviour, FakeRegistry};
use notation_fake::{OCI_INDEX, REG, REPO, attach, image, signature};
use portcullis::refs::Digest;
use support::notation_signer::*;

#[tokio::test]
async fn notation_signed_images_pull_through_the_referrers_api() {
    let reg = FakeRegistry::default();
    let trusted = NotationSigner::new(LeafKey::EcP256, "ci");
    let untrusted = NotationSigner::new(LeafKey::EcP256, "someone");
    let (jws, jws_size) = image(&reg, "jws");
    let (cose, cose_size) = image(&reg, "cose");
    let (other, other_size) = image(&reg, "other-ca");
    let (unsigned, _) = image(&reg, "unsigned");
    // A registry without the referrers API for this one: the tag schema holds the index.
    let (schema, schema_size) = image(&reg, "schema");
    let (schema_sig, entry) = signature(&reg, &trusted, &schema, schema_size, false);
    reg.set(
        &format!("/v2/{REPO}/manifests/sha256-{}", schema.hex()),
        Behaviour::Serve {
            body: Bytes::from(serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]})).unwrap()),
            content_type: OCI_INDEX.into(),
        },
    );
    attach(&reg, &trusted, &jws, jws_size, false);
    attach(&reg, &trusted, &cose, cose_size, true);
    attach(&reg, &untrusted, &other, other_size, false);
    reg.set(
        &format!("/v2/{REPO}/referrers/{unsigned}"),
        Behaviour::Serve {
            body: Bytes::from(format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[]}}"#
            )),
            content_type: OCI_INDEX.into(),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_trust(
        dir.path(),
        "strict",
        &format!("{REG}/{REPO}"),
        "ca",
        &trusted.root_pem,
    );
    let policy = format!(
        "[trust.acme]\ntype = \"notation\"\ntrust_policy = {:?}\ntrust_store = {:?}\n\n[[policy]]\nrepositories = [\"{REG}/team/*\"]\nany_of = [\"acme\"]\n",
        cfg.trust_policy.display().to_string(),
        cfg.trust_store.display().to_string()
    );
    let toml = fake::config(reg.start().await, "enforce", false, &policy);
    let no_tags = |_: &str,
                   _: portcullis::config::SourceConfig<'_>|
     -> anyhow::Result<Arc<dyn portcullis::trust::TrustSource>> {
        anyhow::bail!("no tag-binding source in this test")
    };
    let (url, _) =
        fake::start_proxy_with(&toml, &no_tags, &portcullis::trust::set::build_verifier).await;
    let get = |path: String| {
        let url = url.clone();
        async move { fake::get_accepting(&format!("{url}/v2/{REPO}/{path}"), MANIFEST_TYPE).await }
    };
    for (tag, d) in [("jws", &jws), ("cose", &cose)] {
        let (status, body) = get(format!("manifests/{tag}")).await;
        assert_eq!(status, 200, "{tag}: {body}");
        assert_eq!(&Digest::sha256_of(body.as_bytes()), d);
        // The referrers of a trusted digest are answered (here by the registry's own API).
        let (status, body) = get(format!("referrers/{d}")).await;
        assert_eq!(status, 200, "{body}");
    }
    // Found through the tag schema; the proxy answers `/referrers` from what it verified.
    let (status, body) = get("manifests/schema".into()).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(format!("referrers/{schema}")).await;
    assert_eq!(status, 200, "{body}");
    let idx: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(idx["manifests"][0]["digest"], schema_sig.as_str(), "{body}");
    assert_eq!(
        idx["manifests"][0]["artifactType"], SIGNATURE_TYPE,
        "{body}"
    );
    let (status, body) = get(format!(
        "referrers/{schema}?artifactType=application/spdx%2Bjson"
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"manifests\":[]"), "filtered: {body}");

    let (status, body) = get("manifests/other-ca".into()).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("acme: "), "{body}");
    let (status, body) = get("manifests/unsigned".into()).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("acme: no signature found (referrers API: none"),
        "{body}"
    );
    assert!(
        reg.hits(&format!("/v2/{REPO}/referrers/{jws}")) >= 2,
        "both pages were read"
    );
    let (status, _) = get(format!("referrers/{unsigned}")).await;
    assert_eq!(status, 403, "referrers of an untrusted digest are refused");
}
