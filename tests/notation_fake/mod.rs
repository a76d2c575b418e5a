//! Notation-signed images on the fake registry (the notation helper's test signer), shared by
//! the tests that need a registry with the referrers API. A test crate that uses it also has
//! `mod fake;` and `mod support;`.
#![allow(dead_code)]

use bytes::Bytes;
use portcullis::refs::Digest;

use crate::fake::{Behaviour, FakeRegistry};
use crate::support::notation_signer::*;

pub const REG: &str = "fake.example:5000";
pub const REPO: &str = "team/app";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

pub fn image(reg: &FakeRegistry, tag: &str) -> (Digest, u64) {
    let config = reg.blob(REPO, format!("{{\"tag\":\"{tag}\"}}").as_bytes());
    let m = format!(
        r#"{{"schemaVersion":2,"mediaType":"{MANIFEST_TYPE}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":1}},"layers":[]}}"#
    );
    let d = reg.manifest(REPO, Some(tag), m.as_bytes(), MANIFEST_TYPE);
    (d.parse().unwrap(), m.len() as u64)
}

/// Attaches a Notation signature by `signer` to `d` as a referrer, on the second page of the
/// referrers answer (the first page is empty but links on); returns the signature manifest's
/// digest.
pub fn attach(
    reg: &FakeRegistry,
    signer: &NotationSigner,
    d: &Digest,
    size: u64,
    cose: bool,
) -> String {
    let (md, entry) = signature(reg, signer, d, size, cose);
    let index = |entries: serde_json::Value| {
        Bytes::from(serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})).unwrap())
    };
    reg.set(
        &format!("/v2/{REPO}/referrers/{d}"),
        Behaviour::Pages {
            pages: vec![
                index(serde_json::json!([])),
                index(serde_json::json!([entry])),
            ],
            content_type: OCI_INDEX.into(),
        },
    );
    md
}

/// A Notation signature manifest for `d` in the registry: its digest and index entry.
pub fn signature(
    reg: &FakeRegistry,
    signer: &NotationSigner,
    d: &Digest,
    size: u64,
    cose: bool,
) -> (String, serde_json::Value) {
    let o = SignOptions {
        size,
        ..SignOptions::default()
    };
    let (envelope, ty) = if cose {
        (signer.cose(d, &o), "application/cose")
    } else {
        (signer.jws(d, &o), "application/jose+json")
    };
    reg.blob(REPO, &envelope);
    reg.blob(REPO, b"{}");
    let manifest = signer.manifest(d, size, &envelope, ty, None);
    let md = reg.manifest(REPO, None, &manifest, MANIFEST_TYPE);
    let entry = serde_json::json!({"mediaType": MANIFEST_TYPE, "digest": md, "size": manifest.len(), "artifactType": SIGNATURE_TYPE});
    (md, entry)
}
