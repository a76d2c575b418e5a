//! Notation signatures with RFC 3161 timestamps, end to end with the real parts: the
//! Distribution registry 2.8 (tag schema path), envelopes made by the project's Notation test
//! signer with a certificate that expired in 2021, timestamp tokens made by OpenSSL's own TSA
//! (`openssl ts -reply`, tests/support/tsa.rs) at chosen times, Portcullis enforcing a
//! `[[policy]]` whose Notation trust policy names a `tsa` store, and skopeo, podman and ctr.
//!
//! The signature stamped while the certificate was valid pulls; one stamped after it expired
//! is refused, as is one with no timestamp, and a stamp by a TSA outside the `tsa` store.

mod support;

use ::portcullis::refs::Digest;
use support::notation_signer::*;
use support::real::artifacts::{
    Artifact, proxy_with_source, pull_with_every_client, push_referrers, push_tags,
};
use support::real::images::ImageInfo;
use support::real::*;
use support::tsa::{TestTsa, at, der_to_pem as pem, unix, with_jws_timestamp};

const REPO: &str = "team/app";
const HEADER: &str = "io.cncf.notary.timestampSignature";

/// The JWS envelope with a token over its signature in the unsigned header.
fn stamp_jws(envelope: &[u8], tsa: &TestTsa, when: &str) -> Vec<u8> {
    with_jws_timestamp(envelope, |sig| tsa.stamp_at(sig, unix(when)))
}

/// The COSE envelope with a token over its signature in the unprotected header.
fn stamp_cose(envelope: &[u8], tsa: &TestTsa, when: &str) -> Vec<u8> {
    use coset::TaggedCborSerializable as _;
    let mut s = coset::CoseSign1::from_tagged_slice(envelope).unwrap();
    let token = tsa.stamp_at(&s.signature, unix(when));
    s.unprotected.rest.push((
        coset::Label::Text(HEADER.into()),
        coset::cbor::Value::Bytes(token),
    ));
    s.to_tagged_vec().unwrap()
}

fn artifact(signer: &NotationSigner, img: &ImageInfo, envelope: Vec<u8>, cose: bool) -> Artifact {
    let d: Digest = img.digest.parse().unwrap();
    let ty = if cose {
        "application/cose"
    } else {
        "application/jose+json"
    };
    Artifact {
        manifest: signer.manifest(&d, img.size, &envelope, ty, None),
        blobs: vec![envelope, b"{}".to_vec()],
    }
}

#[test]
fn a_signature_stamped_while_its_certificate_was_valid_pulls_after_it_expired() {
    let reg = Registry::start(RegistryAuth::None);
    let [jws, cose, late, bare, foreign] = push_tags(
        &reg,
        REPO,
        "notation timestamp e2e",
        ["jws", "cose", "late", "bare", "foreign"],
    );
    // The certificate lived through 2020; it is long expired now.
    let signer = NotationSigner::with_validity(
        LeafKey::EcP256,
        "ci",
        at("2020-01-01T00:00:00Z"),
        at("2021-01-01T00:00:00Z"),
    );
    let tsa_dir = tempfile::tempdir().unwrap();
    let tsa = TestTsa::new(&tsa_dir.path().join("trusted"));
    let other_tsa = TestTsa::new(&tsa_dir.path().join("other"));
    let envelope = |img: &ImageInfo, cose: bool| {
        let d: Digest = img.digest.parse().unwrap();
        let o = SignOptions {
            size: img.size,
            signing_time: at("2020-06-01T00:00:00Z"),
            ..SignOptions::default()
        };
        if cose {
            signer.cose(&d, &o)
        } else {
            signer.jws(&d, &o)
        }
    };
    let in_2020 = "2020-06-01T00:00:00Z";
    let sigs = [
        (
            &jws,
            artifact(
                &signer,
                &jws,
                stamp_jws(&envelope(&jws, false), &tsa, in_2020),
                false,
            ),
        ),
        (
            &cose,
            artifact(
                &signer,
                &cose,
                stamp_cose(&envelope(&cose, true), &tsa, in_2020),
                true,
            ),
        ),
        (
            &late,
            artifact(
                &signer,
                &late,
                stamp_jws(&envelope(&late, false), &tsa, "2022-06-01T00:00:00Z"),
                false,
            ),
        ),
        (
            &bare,
            artifact(&signer, &bare, envelope(&bare, false), false),
        ),
        (
            &foreign,
            artifact(
                &signer,
                &foreign,
                stamp_jws(&envelope(&foreign, false), &other_tsa, in_2020),
                false,
            ),
        ),
    ];
    for (img, sig) in &sigs {
        push_referrers(&reg, REPO, &img.digest, &[sig]);
    }

    let dir = tempfile::tempdir().unwrap();
    let scope = format!("{}/{REPO}", reg.addr());
    let trust = write_trust_policy(
        dir.path(),
        &serde_json::json!({"version": "1.0", "trustPolicies": [{
            "name": "stamped", "registryScopes": [scope],
            "signatureVerification": {"level": "strict"},
            "trustStores": ["ca:test", "tsa:test"], "trustedIdentities": ["*"]}]}),
        &[
            ("ca", "test", &signer.root_pem),
            ("tsa", "test", &pem(tsa.root_der())),
        ],
    );
    let keys = format!(
        "type = \"notation\"\ntrust_policy = {:?}\ntrust_store = {:?}",
        trust.trust_policy.display().to_string(),
        trust.trust_store.display().to_string()
    );
    let proxy = proxy_with_source(&reg, "acme", &keys);
    let image = format!("{}/{REPO}", reg.addr());

    // skopeo, podman, ctr: both stamped-in-time signatures pull; the late stamp is refused.
    pull_with_every_client(
        &proxy.addr(),
        &image,
        &[("jws", &jws.digest), ("cose", &cose.digest)],
        "late",
        &["acme: ", "is not within certificate", &late.digest],
    );
    skopeo_pull(&proxy.addr(), &format!("{image}:bare"), None).assert_refused(
        "no timestamp, certificate expired",
        "no timestamp countersignature was found",
    );
    skopeo_pull(&proxy.addr(), &format!("{image}:foreign"), None).assert_refused(
        "stamped by a TSA outside the tsa store",
        "does not lead to a certificate of the tsa stores",
    );
}
