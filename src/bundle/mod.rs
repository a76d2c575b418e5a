//! Air-gap bundles: `portcullis bundle export IMAGE... -o FILE` on a connected machine, and
//! `portcullis bundle import FILE` on a node that never sees the network.
//!
//! Map:
//! - this file: the bundle's format (an OCI image layout in a tar, plus `portcullis/bundle.json`
//!   with the trust metadata) and what export and import share
//! - `export`: pulls each image through an in-process proxy (the same trust gate and digest
//!   checks as `serve`), then writes the tar; a partial bundle never has the final name
//! - `import`: unpacks into a staging directory, verifies everything against the node's own
//!   pinned roots and stored trust state, and only then fills the cache and the trust state
//! - `signatures`: cosign / Notation evidence in a bundle (export from the export's own
//!   verified pull, import verified with the node's own verifiers)
//! - `tuf`: TUF sources in a bundle (export per repository, import verified once per
//!   repository on the node)
//!
//! ```text
//! oci-layout                  {"imageLayoutVersion": "1.0.0"}
//! index.json                  OCI index: one descriptor per exported image, with its
//!                             registry, repository and tag in annotations
//! blobs/sha256/<hex>          every manifest and blob reachable from the signed digests
//! portcullis/bundle.json      the images and, per Notary GUN (`trust`) and per TUF
//!                             repository (`tuf`), the exact bytes of the metadata; per
//!                             signature-vouched image (`signatures`), the evidence
//! ```
//!
//! A bundle is not trusted because it exists: the metadata is verified on import as if a
//! notary server (or the TUF repository) had served it, and every manifest and blob by its
//! digest.

mod export;
mod import;
mod signatures;
mod tuf;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use export::export;
pub use import::import;
use tuf::TufTrust;

/// `format` of bundle.json: a reader refuses any other.
pub const FORMAT: &str = "portcullis-bundle/1";
pub const BUNDLE_JSON: &str = "portcullis/bundle.json";

/// `portcullis/bundle.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleJson {
    pub format: String,
    /// RFC 3339, when it was written (informational: freshness comes from the metadata).
    pub created: String,
    pub images: Vec<Image>,
    pub trust: Vec<GunMetadata>,
    /// Per TUF repository, the exact bytes of its metadata. Absent from bundles without a
    /// TUF source (and from bundles written before TUF sources were carried).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tuf: Vec<TufMetadata>,
    /// Per image under a `[[policy]]` entry with a cosign or Notation source, the evidence
    /// that vouched for its digest. Absent from bundles without one (and from bundles written
    /// before signatures were carried, which therefore still import).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<SignatureEvidence>,
    /// Media type of each manifest in `blobs/`, as the registry served it.
    pub manifests: BTreeMap<String, String>,
}

/// One exported image: the signed tag and the digest it resolved to at export.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    pub registry: String,
    pub repository: String,
    pub tag: String,
    pub digest: String,
}

/// One GUN's metadata: role path -> base64 of the exact bytes the server served.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GunMetadata {
    pub registry: String,
    pub gun: String,
    pub files: BTreeMap<String, String>,
}

/// One TUF repository's metadata: store name (`root_history/1.root.json`, `timestamp.json`,
/// `snapshot.json`, `targets.json`, `<role>.json`) -> base64 of the exact bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TufMetadata {
    pub registry: String,
    /// Where the exporting machine read it (informational: a node uses its own config).
    pub metadata_url: String,
    /// The image repositories of this bundle it signs tags of.
    pub repositories: Vec<String>,
    pub files: BTreeMap<String, String>,
}

/// One image's signature evidence: the evidence file of `trust::evidence`, base64 of its
/// exact bytes (its signature manifests and blobs are inside it, checked on import).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureEvidence {
    pub registry: String,
    pub repository: String,
    pub digest: String,
    pub evidence: String,
}

/// Progress lines on stderr, only for a person at a terminal (a CI log gets the summary).
pub(crate) struct Progress {
    on: bool,
}

impl Progress {
    pub(crate) fn new() -> Progress {
        use std::io::IsTerminal;
        Progress {
            on: std::io::stderr().is_terminal(),
        }
    }

    pub(crate) fn say(&self, line: impl std::fmt::Display) {
        if self.on {
            eprintln!("  {line}");
        }
    }
}

/// Bytes for people: `12.3 MiB`.
pub(crate) fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bundle.json as written before TUF sources were carried.
    const WITHOUT_TUF: &str = r#"{"format":"portcullis-bundle/1","created":"2026-12-01T00:00:00Z",
        "images":[{"registry":"r","repository":"demo/app","tag":"v1","digest":"sha256:00"}],
        "trust":[{"registry":"r","gun":"r/demo/app","files":{"root":"e30="}}],
        "manifests":{}}"#;

    #[test]
    fn bundles_without_tuf_metadata_read_and_write_as_before() {
        let b: BundleJson = serde_json::from_str(WITHOUT_TUF).unwrap();
        assert!(b.tuf.is_empty());
        let out = serde_json::to_value(&b).unwrap();
        assert!(out.get("tuf").is_none(), "{out}");
        let back: BundleJson = serde_json::from_value(out).unwrap();
        assert_eq!(back.trust.len(), 1);
    }

    #[test]
    fn tuf_metadata_round_trips_and_unknown_fields_are_refused() {
        let mut b: BundleJson = serde_json::from_str(WITHOUT_TUF).unwrap();
        b.tuf.push(TufMetadata {
            registry: "r".into(),
            metadata_url: "https://tuf.example.com/metadata/".into(),
            repositories: vec!["demo/app".into()],
            files: [("timestamp.json".to_owned(), "e30=".to_owned())].into(),
        });
        let v = serde_json::to_value(&b).unwrap();
        let back: BundleJson = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back.tuf[0].repositories, ["demo/app"]);
        let mut odd = v;
        odd["tuf"][0]["extra"] = serde_json::json!(1);
        assert!(serde_json::from_value::<BundleJson>(odd).is_err());
    }
}
