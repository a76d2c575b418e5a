//! Pure parsing for discovery: a referrers index (the API's answer or the tag schema's index)
//! into hints, and a candidate signature manifest into what it says it is ([`ArtifactKind`],
//! its `subject`, its layers). Nothing here trusts an index entry: the manifest's own fields
//! decide, once its bytes matched the digest it was fetched by.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::refs::Digest;
use crate::trust::signature::{ArtifactKind, FoundVia};

/// OCI image index (the referrers API answers one; the tag schema stores one).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// cosign's legacy payload layer.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Notation's artifact type and config media type.
pub const NOTATION_SIGNATURE: &str = "application/vnd.cncf.notary.signature";
/// Sigstore bundles: `application/vnd.dev.sigstore.bundle.v0.3+json` (and v0.1, v0.2, and the
/// unversioned `application/vnd.dev.sigstore.bundle+json;version=0.x`).
const SIGSTORE_BUNDLE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";

/// One descriptor of a referrers index: a hint where a signature manifest may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    pub digest: Digest,
    pub size: u64,
    /// The entry's own `artifactType` (shown in logs only; the manifest decides its kind).
    pub artifact_type: Option<String>,
}

#[derive(Deserialize)]
struct RawDescriptor {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    digest: String,
    size: u64,
    #[serde(rename = "artifactType", default)]
    artifact_type: Option<String>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct RawIndex {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    manifests: Vec<RawDescriptor>,
}

/// Parses a referrers index. distribution-spec "Listing Referrers": an image index whose
/// `manifests` are descriptors. A document that is not one (wrong schema version, another
/// media type, a descriptor without digest or size, a digest we cannot name) is an error: a
/// malformed answer is never read as "no signatures".
pub fn index(bytes: &[u8]) -> Result<Vec<Hint>, String> {
    let raw: RawIndex =
        serde_json::from_slice(bytes).map_err(|e| format!("not an OCI image index: {e}"))?;
    if raw.schema_version != 2 {
        return Err(format!("schemaVersion {} (want 2)", raw.schema_version));
    }
    if let Some(mt) = raw.media_type.as_deref()
        && mt != OCI_INDEX
    {
        return Err(format!("mediaType {mt} (want {OCI_INDEX})"));
    }
    raw.manifests
        .into_iter()
        .map(|d| {
            let digest = d
                .digest
                .parse::<Digest>()
                .map_err(|e| format!("index entry: {e}"))?;
            // Unused beyond parsing: present so a malformed entry fails here.
            let _ = (d.media_type, d.annotations);
            Ok(Hint {
                digest,
                size: d.size,
                artifact_type: d.artifact_type,
            })
        })
        .collect()
}

/// A candidate signature manifest, parsed.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub kind: ArtifactKind,
    pub subject: Option<Digest>,
    pub annotations: BTreeMap<String, String>,
    pub layers: Vec<LayerRef>,
}

/// A layer the manifest names (bytes not yet fetched).
#[derive(Debug, Clone)]
pub struct LayerRef {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RawManifest {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "artifactType", default)]
    artifact_type: Option<String>,
    config: RawDescriptor,
    #[serde(default)]
    layers: Vec<RawDescriptor>,
    #[serde(default)]
    subject: Option<RawDescriptor>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

/// Parses a signature manifest (an OCI image manifest; cosign's legacy `.sig` may be a Docker
/// schema 2 manifest, the same shape) and classifies it by its own fields.
pub fn manifest(bytes: &[u8]) -> Result<Manifest, String> {
    let raw: RawManifest =
        serde_json::from_slice(bytes).map_err(|e| format!("not an image manifest: {e}"))?;
    if raw.schema_version != 2 {
        return Err(format!("schemaVersion {} (want 2)", raw.schema_version));
    }
    let subject = raw
        .subject
        .map(|s| s.digest.parse::<Digest>())
        .transpose()
        .map_err(|e| format!("subject: {e}"))?;
    let layers = raw
        .layers
        .into_iter()
        .map(|l| {
            Ok(LayerRef {
                media_type: l.media_type.ok_or("a layer without mediaType")?,
                digest: l.digest.parse().map_err(|e| format!("layer digest: {e}"))?,
                size: l.size,
                annotations: l.annotations.unwrap_or_default(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let config_type = raw.config.media_type.unwrap_or_default();
    let kind = classify(raw.artifact_type.as_deref(), &config_type, &layers);
    Ok(Manifest {
        kind,
        subject,
        annotations: raw.annotations.unwrap_or_default(),
        layers,
    })
}

/// Which hints are fetched: the first of each digest, at most `max_candidates` together with
/// cosign's `.sig` manifest (`sig`, the digest of what its tag served, which always gets a
/// slot: it does not depend on the registry's index). Returns the hints kept, whether the
/// `.sig` manifest is one of them (then it is fetched once, as that hint), and a note for
/// `Discovery::dropped` when hints were cut. Pure, so the bound is fuzzed
/// (`fuzz/fuzz_targets/discover_index.rs`).
pub fn select<V>(
    mut hints: Vec<(Hint, V)>,
    sig: Option<&Digest>,
    max_candidates: usize,
) -> (Vec<(Hint, V)>, bool, Option<String>) {
    let mut seen = std::collections::HashSet::new();
    hints.retain(|(h, _)| seen.insert(h.digest.clone()));
    let sig_extra = sig.is_some_and(|d| !seen.contains(d));
    let total = hints.len() + usize::from(sig_extra);
    let mut note = None;
    if total > max_candidates {
        note = Some(format!(
            "{total} hints, only the first {max_candidates} fetched"
        ));
        // The `.sig` slot is kept even when its digest is also listed further down, so a
        // listed `.sig` cut here is still fetched once, by its tag.
        hints.truncate(max_candidates.saturating_sub(usize::from(sig.is_some())));
    }
    let sig_is_a_hint = sig.is_some_and(|d| hints.iter().any(|(h, _)| &h.digest == d));
    (hints, sig_is_a_hint, note)
}

/// Checks a fetched candidate manifest before anything reads it: its bytes must hash to `d`
/// (the digest it was fetched by: content addressing), and its `subject` must be `asked`
/// (OCI 1.1: a referrer naming another digest was listed for `asked` by mistake or on
/// purpose, and must not vouch for it). Only cosign's `.sig` manifest may have no subject.
pub fn check_candidate(
    d: &Digest,
    bytes: &[u8],
    asked: &Digest,
    via: FoundVia,
) -> Result<Manifest, String> {
    let actual = d.of_same_algorithm(bytes);
    if &actual != d {
        return Err(format!("{d}: bytes hash to {actual}"));
    }
    let m = manifest(bytes).map_err(|e| format!("{d}: {e}"))?;
    if let Some(s) = &m.subject
        && s != asked
    {
        return Err(format!("{d}: its subject is {s}, not {asked}"));
    }
    if m.subject.is_none() && via != FoundVia::CosignTag {
        return Err(format!("{d}: listed as a referrer but has no subject"));
    }
    Ok(m)
}

/// A layer's bytes must hash to its digest and have its size (fetched, or read back from
/// stored evidence).
pub fn check_layer(l: &LayerRef, bytes: &[u8]) -> Result<(), String> {
    let actual = l.digest.of_same_algorithm(bytes);
    if actual != l.digest || bytes.len() as u64 != l.size {
        return Err(format!(
            "layer {}: {} bytes hashing to {actual}, want {} bytes",
            l.digest,
            bytes.len(),
            l.size
        ));
    }
    Ok(())
}

/// What a manifest is, from its own `artifactType`, config media type and layer media types.
/// cosign writes `artifactType: application/vnd.oci.empty.v1+json` in some places, so an
/// unknown artifact type does not decide; the layers do.
pub fn classify(
    artifact_type: Option<&str>,
    config_type: &str,
    layers: &[LayerRef],
) -> ArtifactKind {
    let has = |mt: &str| layers.iter().any(|l| l.media_type == mt);
    // Notation signature spec: artifactType (or, for registries without it, the config media
    // type) is application/vnd.cncf.notary.signature, one layer holding the envelope.
    if artifact_type == Some(NOTATION_SIGNATURE) || config_type == NOTATION_SIGNATURE {
        return match layers {
            [l] if l.media_type == "application/jose+json" => ArtifactKind::NotationJws,
            [l] if l.media_type == "application/cose" => ArtifactKind::NotationCose,
            _ => ArtifactKind::Other,
        };
    }
    let is_bundle = |mt: &str| mt.starts_with(SIGSTORE_BUNDLE_PREFIX);
    if artifact_type.is_some_and(is_bundle) || layers.iter().any(|l| is_bundle(&l.media_type)) {
        return ArtifactKind::SigstoreBundle;
    }
    if has(SIMPLE_SIGNING) {
        return ArtifactKind::CosignSimpleSigning;
    }
    ArtifactKind::Other
}

/// The referrers tag schema's tag for `d` (distribution-spec: `<alg>-<ref>`), and cosign's
/// legacy signature tag (`<alg>-<ref>.sig`).
pub fn schema_tag(d: &Digest) -> String {
    format!("{}-{}", d.algorithm().name(), d.hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn an_index_is_hints() {
        let idx = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
              {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":10,"artifactType":"application/vnd.oci.empty.v1+json"}}]}}"#,
            d('a')
        );
        let h = index(idx.as_bytes()).unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].digest.to_string(), d('a'));
        assert_eq!(h[0].size, 10);
    }

    #[test]
    fn a_malformed_index_is_an_error_not_none() {
        for bad in [
            "not json".to_string(),
            r#"{"schemaVersion":2}"#.to_string(),
            r#"{"schemaVersion":1,"manifests":[]}"#.to_string(),
            r#"{"schemaVersion":2,"mediaType":"application/json","manifests":[]}"#.to_string(),
            r#"{"schemaVersion":2,"manifests":[{"digest":"sha256:zz","size":1}]}"#.to_string(),
            format!(
                r#"{{"schemaVersion":2,"manifests":[{{"digest":"{}"}}]}}"#,
                d('a')
            ),
        ] {
            assert!(index(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(
            index(br#"{"schemaVersion":2,"manifests":[]}"#)
                .unwrap()
                .is_empty()
        );
    }

    fn man(artifact: Option<&str>, config: &str, layers: &[&str], subject: Option<&str>) -> String {
        let layers: Vec<String> = layers
            .iter()
            .map(|mt| format!(r#"{{"mediaType":"{mt}","digest":"{}","size":3}}"#, d('b')))
            .collect();
        let mut v = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": config, "digest": d('c'), "size": 2},
            "layers": serde_json::from_str::<serde_json::Value>(&format!("[{}]", layers.join(","))).unwrap(),
        });
        if let Some(a) = artifact {
            v["artifactType"] = a.into();
        }
        if let Some(s) = subject {
            v["subject"] = serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": s, "size": 5});
        }
        v.to_string()
    }

    #[test]
    fn kinds_come_from_the_manifest_itself() {
        let empty = "application/vnd.oci.empty.v1+json";
        let cases = [
            (
                man(
                    None,
                    "application/vnd.oci.image.config.v1+json",
                    &[SIMPLE_SIGNING],
                    None,
                ),
                ArtifactKind::CosignSimpleSigning,
            ),
            (
                man(
                    Some("application/vnd.dev.sigstore.bundle.v0.3+json"),
                    empty,
                    &["application/vnd.dev.sigstore.bundle.v0.3+json"],
                    None,
                ),
                ArtifactKind::SigstoreBundle,
            ),
            (
                man(
                    Some(empty),
                    empty,
                    &["application/vnd.dev.sigstore.bundle.v0.3+json"],
                    None,
                ),
                ArtifactKind::SigstoreBundle,
            ),
            (
                man(
                    Some(NOTATION_SIGNATURE),
                    empty,
                    &["application/jose+json"],
                    None,
                ),
                ArtifactKind::NotationJws,
            ),
            (
                man(None, NOTATION_SIGNATURE, &["application/cose"], None),
                ArtifactKind::NotationCose,
            ),
            // two envelopes in one Notation manifest: not the spec's shape
            (
                man(
                    Some(NOTATION_SIGNATURE),
                    empty,
                    &["application/cose", "application/cose"],
                    None,
                ),
                ArtifactKind::Other,
            ),
            (
                man(
                    Some("application/spdx+json"),
                    empty,
                    &["application/spdx+json"],
                    None,
                ),
                ArtifactKind::Other,
            ),
        ];
        for (m, want) in cases {
            assert_eq!(manifest(m.as_bytes()).unwrap().kind, want, "{m}");
        }
        let with_subject = man(None, empty, &[SIMPLE_SIGNING], Some(&d('a')));
        assert_eq!(
            manifest(with_subject.as_bytes())
                .unwrap()
                .subject
                .unwrap()
                .to_string(),
            d('a')
        );
        assert!(manifest(b"{}").is_err());
    }

    #[test]
    fn select_bounds_what_is_fetched_and_keeps_the_sig_slot() {
        let hint = |c: char| Hint {
            digest: d(c).parse().unwrap(),
            size: 1,
            artifact_type: None,
        };
        let hints: Vec<_> = "aabcd".chars().map(|c| (hint(c), ())).collect();
        // Deduplicated, in order, within the bound: nothing cut.
        let (kept, listed, note) = select(hints.clone(), None, 4);
        assert_eq!(kept.len(), 4);
        assert!(!listed && note.is_none());
        // Over the bound: the .sig keeps its slot, even when the index lists it beyond.
        let sig: Digest = d('d').parse().unwrap();
        let (kept, listed, note) = select(hints.clone(), Some(&sig), 3);
        let kept: Vec<String> = kept.iter().map(|(h, _)| h.digest.to_string()).collect();
        assert_eq!(kept, [d('a'), d('b')]);
        assert!(!listed, "cut from the hints, so fetched by its tag");
        assert!(note.unwrap().contains("4 hints, only the first 3"));
        // Listed and kept: fetched once, as the hint.
        let sig: Digest = d('b').parse().unwrap();
        let (kept, listed, _) = select(hints, Some(&sig), 10);
        assert_eq!(kept.len(), 4);
        assert!(listed);
    }

    #[test]
    fn tags() {
        let x: Digest = d('a').parse().unwrap();
        assert_eq!(schema_tag(&x), format!("sha256-{}", "a".repeat(64)));
    }
}
