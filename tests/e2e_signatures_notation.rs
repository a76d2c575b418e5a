//! Notation signatures end to end with the real parts: the Distribution registry 2.8 (no
//! referrers API), JWS and COSE signatures made by the project's Notation test signer and
//! stored as notation does there (the signature manifest by digest, the referrers tag schema
//! index `sha256-<hex>` listing it), Portcullis enforcing a `[[policy]]` with a `notation`
//! source, and skopeo, podman and containerd pulling through it. Both signed images pull; one
//! signed under a CA outside the trust store is refused with the proxy's reason. A verifier
//! behind the mirror reads the tag schema tag through the proxy: it gets an index the proxy
//! built from what discovery checked, never the registry's own.

mod support;

use ::portcullis::refs::Digest;
use support::notation_signer::*;
use support::real::artifacts::{
    Artifact, proxy_with_source, pull_with_every_client, push_referrers, push_tags, schema_tag,
    through,
};
use support::real::images::ImageInfo;
use support::real::*;

const REPO: &str = "team/app";

/// A Notation signature of `img` by `signer`: JWS, or COSE.
fn sign(signer: &NotationSigner, img: &ImageInfo, cose: bool) -> Artifact {
    let d: Digest = img.digest.parse().unwrap();
    let o = SignOptions {
        size: img.size,
        ..SignOptions::default()
    };
    let (envelope, ty) = if cose {
        (signer.cose(&d, &o), "application/cose")
    } else {
        (signer.jws(&d, &o), "application/jose+json")
    };
    Artifact {
        manifest: signer.manifest(&d, img.size, &envelope, ty, None),
        blobs: vec![envelope, b"{}".to_vec()],
    }
}

#[test]
fn notation_jws_and_cose_pull_through_the_tag_schema_and_an_untrusted_ca_is_refused() {
    let reg = Registry::start(RegistryAuth::None);
    let [jws, cose, other] = push_tags(&reg, REPO, "notation e2e", ["jws", "cose", "other-ca"]);
    let trusted = NotationSigner::new(LeafKey::EcP256, "ci");
    let untrusted = NotationSigner::new(LeafKey::Rsa2048, "someone");
    let (jws_sig, cose_sig) = (sign(&trusted, &jws, false), sign(&trusted, &cose, true));
    // The jws image's index also lists the cose image's signature (subject: another digest):
    // discovery drops it, and the proxy's index must not list it.
    let upstream_index = push_referrers(&reg, REPO, &jws.digest, &[&jws_sig, &cose_sig]);
    push_referrers(&reg, REPO, &cose.digest, &[&cose_sig]);
    push_referrers(
        &reg,
        REPO,
        &other.digest,
        &[&sign(&untrusted, &other, false)],
    );

    let dir = tempfile::tempdir().unwrap();
    let scope = format!("{}/{REPO}", reg.addr());
    let trust = write_trust(dir.path(), "strict", &scope, "ca", &trusted.root_pem);
    let keys = format!(
        "type = \"notation\"\ntrust_policy = {:?}\ntrust_store = {:?}",
        trust.trust_policy.display().to_string(),
        trust.trust_store.display().to_string()
    );
    let proxy = proxy_with_source(&reg, "acme", &keys);

    // skopeo, podman, ctr: both signed images pull; the untrusted CA is refused, saying why.
    pull_with_every_client(
        &proxy.addr(),
        &format!("{}/{REPO}", reg.addr()),
        &[("jws", &jws.digest), ("cose", &cose.digest)],
        "other-ca",
        &["acme: ", "is in trust store", &other.digest],
    );

    let at = |method: &str, path: &str| through(&proxy.url(), REPO, method, path);
    // The tag schema tag through the proxy: the index the proxy built from the verified
    // signatures (the signature of another subject that the registry's index lists is gone).
    let (status, headers, body) = at("GET", &format!("manifests/{}", schema_tag(&jws.digest)));
    assert_eq!(status, 200, "{headers}{body}");
    assert!(
        headers.contains("content-type: application/vnd.oci.image.index.v1+json"),
        "{headers}"
    );
    let served_digest = format!(
        "sha256:{}",
        support::real::registry::sha256_hex(body.as_bytes())
    );
    assert!(
        headers.contains(&format!("docker-content-digest: {served_digest}")),
        "{headers}"
    );
    assert_ne!(
        body.as_bytes(),
        upstream_index.as_slice(),
        "never the registry's index"
    );
    let idx: serde_json::Value = serde_json::from_str(&body).unwrap();
    let listed = idx["manifests"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{body}");
    assert_eq!(listed[0]["digest"], jws_sig.digest().as_str(), "{body}");
    assert_eq!(listed[0]["artifactType"], SIGNATURE_TYPE, "{body}");
    let (status, headers, _) = at("HEAD", &format!("manifests/{}", schema_tag(&jws.digest)));
    assert_eq!(status, 200, "{headers}");
    assert!(
        headers.contains(&format!("docker-content-digest: {served_digest}")),
        "{headers}"
    );
    // What the index lists is served: the signature manifest and its envelope.
    let (status, _, manifest) = at("GET", &format!("manifests/{}", jws_sig.digest()));
    assert_eq!(status, 200, "{manifest}");
    assert_eq!(manifest.as_bytes(), jws_sig.manifest.as_slice());
    let envelope = Digest::sha256_of(&jws_sig.blobs[0]);
    let (status, _, body) = at("GET", &format!("blobs/{envelope}"));
    assert_eq!(
        status,
        200,
        "envelope {envelope} of {}: {body}\n{}",
        jws_sig.digest(),
        proxy.log()
    );
    assert_eq!(body.as_bytes(), jws_sig.blobs[0].as_slice());
    // The referrers API answer says the same.
    let (status, _, body) = at("GET", &format!("referrers/{}", jws.digest));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&jws_sig.digest()), "{body}");
    // An untrusted subject, or one the registry has never seen: DENIED, as for /referrers.
    let (status, _, body) = at("GET", &format!("manifests/{}", schema_tag(&other.digest)));
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("DENIED") && body.contains(&other.digest),
        "{body}"
    );
    let unknown = Digest::sha256_of(b"never pushed").to_string();
    let (status, _, body) = at("GET", &format!("manifests/{}", schema_tag(&unknown)));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("DENIED"), "{body}");
}
