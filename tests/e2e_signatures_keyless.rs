//! Keyless cosign end to end with the real parts: the Distribution registry 2.8 (no referrers
//! API), signatures made by the project's Sigstore-like test instance (a Fulcio-like CA, a
//! Rekor-like log key, its `trusted_root.json`) in both of cosign's formats, pushed as cosign
//! stores them there: the legacy `sha256-<hex>.sig` manifest, and a v0.3 bundle as a referrer
//! (by digest, listed in the referrers tag schema index `sha256-<hex>`). Portcullis enforces a
//! `[[policy]]` with a `cosign-keyless` source for one identity; skopeo, podman and containerd
//! pull through it. Both formats pull; signatures by another identity (in either format) are
//! refused with the proxy's reason. In passthrough mode, the tag schema tag goes only to a
//! client whose own credentials the registry accepts.

mod support;

use support::cosign::keyless_signer::{TestSigstore, Timing};
use support::real::artifacts::{
    Artifact, proxy_with_source, pull_with_every_client, push_manifest, push_referrers, push_tags,
    schema_tag, through,
};
use support::real::images::ImageInfo;
use support::real::proc::http_status;
use support::real::*;

const REPO: &str = "team/app";
const EMAIL: &str = "release@example.com";
const ISSUER: &str = "https://issuer.example.com";
const BUNDLE_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// A legacy keyless `.sig` of `img` by `email`, pushed under its tag.
fn push_legacy(reg: &Registry, sigstore: &TestSigstore, img: &ImageInfo, email: &str) {
    let reference = format!("{}/{REPO}", reg.addr());
    let sig = sigstore.sign_image(email, ISSUER, &reference, &img.digest, Timing::recent());
    let a = Artifact {
        manifest: sig.manifest.clone(),
        blobs: vec![sig.config.clone(), sig.payload.clone()],
    };
    push_manifest(reg, REPO, &sig.tag, &a);
}

/// A keyless v0.3 bundle of `img` by `email` as cosign 3 attaches it: a referrer whose one
/// layer is the bundle.
fn bundle_referrer(sigstore: &TestSigstore, img: &ImageInfo, email: &str) -> Artifact {
    let bundle = sigstore.sign_bundle(email, ISSUER, &img.manifest, Timing::recent());
    let layer = format!("sha256:{}", support::real::registry::sha256_hex(&bundle));
    let empty = format!("sha256:{}", support::real::registry::sha256_hex(b"{}"));
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": BUNDLE_TYPE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": BUNDLE_TYPE, "digest": layer, "size": bundle.len()}],
        "subject": {"mediaType": img.media_type, "digest": img.digest, "size": img.size},
        "annotations": {
            "dev.sigstore.bundle.content": "message-signature",
            "dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1",
        },
    }))
    .unwrap();
    Artifact {
        manifest,
        blobs: vec![bundle, b"{}".to_vec()],
    }
}

#[test]
fn keyless_legacy_and_bundle_pull_and_another_identity_is_refused() {
    let reg = Registry::start(RegistryAuth::None);
    let [legacy, bundle, mallory, mallory_bundle] = push_tags(
        &reg,
        REPO,
        "keyless e2e",
        ["legacy", "bundle", "mallory", "mallory-bundle"],
    );
    let sigstore = TestSigstore::new();
    push_legacy(&reg, &sigstore, &legacy, EMAIL);
    let bundle_sig = bundle_referrer(&sigstore, &bundle, EMAIL);
    push_referrers(&reg, REPO, &bundle.digest, &[&bundle_sig]);
    push_legacy(&reg, &sigstore, &mallory, "mallory@example.com");
    let other = bundle_referrer(&sigstore, &mallory_bundle, "mallory@example.com");
    push_referrers(&reg, REPO, &mallory_bundle.digest, &[&other]);

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("trusted_root.json");
    std::fs::write(&root, sigstore.trusted_root_json()).unwrap();
    let keys = format!(
        "type = \"cosign-keyless\"\ntrusted_root = {:?}\nsct = \"not-required\"\n\
         [[trust.release.identities]]\nissuer = \"{ISSUER}\"\nsubject = \"{EMAIL}\"",
        root.display().to_string()
    );
    let proxy = proxy_with_source(&reg, "release", &keys);

    // skopeo, podman, ctr: both formats pull; another identity is refused, saying why.
    pull_with_every_client(
        &proxy.addr(),
        &format!("{}/{REPO}", reg.addr()),
        &[("legacy", &legacy.digest), ("bundle", &bundle.digest)],
        "mallory",
        &[
            "release: ",
            "no configured identity matches",
            &mallory.digest,
        ],
    );

    // The same for a v0.3 bundle by another identity.
    skopeo_pull(
        &proxy.addr(),
        &format!("{}/{REPO}:mallory-bundle", reg.addr()),
        None,
    )
    .assert_refused(
        "skopeo bundle by another identity",
        "no configured identity matches",
    )
    .assert_refused("skopeo bundle: the digest", &mallory_bundle.digest);

    // cosign 3 behind the mirror finds the bundle through the tag schema tag, then fetches it.
    let at = |method: &str, path: &str| through(&proxy.url(), REPO, method, path);
    let (status, _, body) = at("GET", &format!("manifests/{}", schema_tag(&bundle.digest)));
    assert_eq!(status, 200, "{body}");
    let idx: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        idx["manifests"][0]["digest"],
        bundle_sig.digest().as_str(),
        "{body}"
    );
    assert_eq!(idx["manifests"][0]["artifactType"], BUNDLE_TYPE, "{body}");
    let (status, _, body) = at("GET", &format!("manifests/{}", bundle_sig.digest()));
    assert_eq!(status, 200, "{body}");
    let layer = format!(
        "sha256:{}",
        support::real::registry::sha256_hex(&bundle_sig.blobs[0])
    );
    let (status, _, body) = at("GET", &format!("blobs/{layer}"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.as_bytes(), bundle_sig.blobs[0].as_slice());
    // The legacy image has no referrers: its tag schema index is empty, its `.sig` is served.
    let (status, _, body) = at("GET", &format!("manifests/{}", schema_tag(&legacy.digest)));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"manifests\":[]"), "{body}");
    let (status, _, body) = at(
        "GET",
        &format!("manifests/{}.sig", schema_tag(&legacy.digest)),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("dev.sigstore.cosign/bundle"), "{body}");
}

/// `client_auth = passthrough`: the tag schema index is built from cached verdicts, so the
/// registry must accept the asking client's own credentials first, as for cached manifests.
#[test]
fn passthrough_serves_the_tag_schema_tag_only_to_clients_the_registry_accepts() {
    let reg = Registry::start(RegistryAuth::htpasswd("puller", "pull-pass"));
    let [img] = push_tags(&reg, REPO, "keyless passthrough", ["bundle"]);
    let sigstore = TestSigstore::new();
    let sig = bundle_referrer(&sigstore, &img, EMAIL);
    push_referrers(&reg, REPO, &img.digest, &[&sig]);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("trusted_root.json");
    std::fs::write(&root, sigstore.trusted_root_json()).unwrap();
    // The proxy holds no registry credentials: each client's own are forwarded.
    let config = format!(
        "[server]\nclient_auth = {{ mode = \"passthrough\" }}\n\n[[registries]]\n\
         name = \"{host}\"\nupstream = \"{url}\"\ndefault = true\nmode = \"enforce\"\n\n\
         [trust.release]\ntype = \"cosign-keyless\"\ntrusted_root = {root:?}\n\
         sct = \"not-required\"\n[[trust.release.identities]]\nissuer = \"{ISSUER}\"\n\
         subject = \"{EMAIL}\"\n\n[[policy]]\nrepositories = [\"{host}/team/*\"]\n\
         any_of = [\"release\"]\n",
        host = reg.addr(),
        url = reg.url(),
        root = root.display().to_string(),
    );
    let proxy = Portcullis::start(&config);
    let url = format!(
        "{}/v2/{REPO}/manifests/{}",
        proxy.url(),
        schema_tag(&img.digest)
    );
    let accept = "Accept: application/vnd.oci.image.index.v1+json";
    let puller = ["-u", "puller:pull-pass", "-H", accept];
    assert_eq!(
        http_status(&url, &puller),
        Some(200),
        "the puller reads it: {}",
        proxy.log()
    );
    // The verdict is cached now; a client without credentials, or with wrong ones, still
    // gets the registry's 401, not the index.
    assert_eq!(http_status(&url, &["-H", accept]), Some(401), "anonymous");
    let wrong = ["-u", "puller:wrong", "-H", accept];
    assert_eq!(http_status(&url, &wrong), Some(401), "wrong password");
    assert_eq!(http_status(&url, &puller), Some(200), "the puller again");
}
