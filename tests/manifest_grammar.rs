//! Which grammar reads manifests for the closure of trusted content. Until this comparison the
//! closure used a hand-written grammar (kept below as [`hand`]: any object, only the `digest` of
//! `manifests`, `config`, `layers`, `blobs` and `subject`, unknown fields ignored); the design
//! card names the `oci-spec` crate. Every manifest the tests and fixtures hold or generate is
//! parsed by both, and the table (manifest_grammar/table.rs) records what each does with it. `closure::children` now
//! reads with oci-spec, and must read every row as the oci-spec column says. An oci-spec upgrade
//! that changes a verdict fails here, so the decision in README.md ("Dependencies, and why each
//! is there") is re-examined rather than silently outdated.
//!
//! Validity is judged by the OCI image spec v1.1 (image-manifest.md, image-index.md,
//! descriptor.md) and Docker's Image Manifest V2 Schema 2 (distribution's manifest-v2-2.md).
//! Real manifests are files (tests/fixtures/manifests/README.md says where each comes from);
//! shapes the tests generate and the edge cases are inline, next to the reason for their row.

use std::collections::BTreeSet;

use oci_spec::image::{ArtifactManifest, Descriptor, ImageIndex, ImageManifest};
use portcullis::closure::children;
use portcullis::refs::Digest;
use serde::Deserialize;

// A test crate root looks for modules beside it, in tests/; the table is this test's alone.
#[path = "manifest_grammar/table.rs"]
mod table;
use table::{Content, Hand, Oci, Row, table};

/// The closure's grammar before oci-spec (src/closure.rs until this comparison), as the
/// reference the table's `hand` column describes.
#[derive(Deserialize)]
struct HandDesc {
    digest: String,
}

#[derive(Deserialize)]
struct HandRefs {
    #[serde(default)]
    manifests: Vec<HandDesc>,
    #[serde(default)]
    config: Option<HandDesc>,
    #[serde(default)]
    layers: Vec<HandDesc>,
    #[serde(default)]
    blobs: Vec<HandDesc>,
    #[serde(default)]
    subject: Option<HandDesc>,
}

/// The hand-written grammar's verdict and the references it follows (digests that
/// [`Digest`] refuses skipped).
fn hand_refs(bytes: &[u8]) -> (Hand, BTreeSet<String>) {
    let Ok(m) = serde_json::from_slice::<HandRefs>(bytes) else {
        return (Hand::Refuses, BTreeSet::new());
    };
    let ok = |d: &&HandDesc| d.digest.parse::<Digest>().is_ok();
    let manifests: Vec<&HandDesc> = m.manifests.iter().chain(&m.subject).filter(ok).collect();
    let blobs: Vec<&HandDesc> = m
        .config
        .iter()
        .chain(&m.layers)
        .chain(&m.blobs)
        .filter(ok)
        .collect();
    let refs = manifests.iter().chain(&blobs).map(|d| d.digest.clone());
    (Hand::Yields(manifests.len(), blobs.len()), refs.collect())
}

fn hand(bytes: &[u8]) -> Hand {
    hand_refs(bytes).0
}

/// A set of digests, as the closure can follow them.
fn followable(ds: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    ds.into_iter()
        .filter(|d| d.parse::<Digest>().is_ok())
        .collect()
}

/// Only the document's own `mediaType`, to pick the type to read it as.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
}

/// How closure.rs uses oci-spec: as the type the document's `mediaType` names (it must match the
/// media type clients go by); without one (an OCI index may omit it), as an image manifest if it
/// parses as one, else as an index. Written against oci-spec's types directly, so this column
/// does not depend on closure.rs.
fn oci(bytes: &[u8]) -> (Oci, Option<BTreeSet<String>>) {
    let digests = |ds: Vec<&Descriptor>| Some(ds.iter().map(|d| d.digest().to_string()).collect());
    let manifest = || {
        let m = serde_json::from_slice::<ImageManifest>(bytes).ok()?;
        let ds = std::iter::once(m.config())
            .chain(m.layers())
            .chain(m.subject())
            .collect();
        Some((Oci::Manifest, digests(ds)))
    };
    let index = || {
        let i = serde_json::from_slice::<ImageIndex>(bytes).ok()?;
        let ds = i.manifests().iter().chain(i.subject()).collect();
        Some((Oci::Index, digests(ds)))
    };
    let artifact = || {
        let a = serde_json::from_slice::<ArtifactManifest>(bytes).ok()?;
        let ds = a.blobs().iter().chain(a.subject()).collect();
        Some((Oci::Artifact, digests(ds)))
    };
    let media_type = serde_json::from_slice::<Probe>(bytes)
        .ok()
        .and_then(|p| p.media_type);
    let read = match media_type.as_deref() {
        Some(
            "application/vnd.oci.image.index.v1+json"
            | "application/vnd.docker.distribution.manifest.list.v2+json",
        ) => index(),
        Some(
            "application/vnd.oci.image.manifest.v1+json"
            | "application/vnd.docker.distribution.manifest.v2+json",
        ) => manifest(),
        Some("application/vnd.oci.artifact.manifest.v1+json") => artifact(),
        _ => manifest().or_else(index),
    };
    read.unwrap_or((Oci::Rejects, None))
}

#[test]
fn every_manifest_is_read_by_both_grammars_as_the_table_says() {
    let mut wrong = Vec::new();
    for r in table() {
        let got = (hand(&r.bytes), oci(&r.bytes).0);
        if got != (r.hand, r.oci) {
            wrong.push(format!(
                "{}: table says hand {:?}, oci-spec {:?}; got {:?}",
                r.name, r.hand, r.oci, got
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn where_both_read_a_manifest_they_find_the_same_references() {
    for r in table() {
        let (_, Some(oci)) = oci(&r.bytes) else {
            continue;
        };
        let (Hand::Yields(..), hand) = hand_refs(&r.bytes) else {
            panic!(
                "{}: oci-spec reads it, the hand-written grammar refuses it",
                r.name
            )
        };
        let oci = followable(oci);
        if r.oci_follows_less {
            assert!(oci.is_subset(&hand) && oci != hand, "{}", r.name);
        } else {
            assert_eq!(hand, oci, "{}", r.name);
        }
    }
}

#[test]
fn the_closure_reads_every_row_as_oci_spec_does() {
    for r in table() {
        let got = children(&r.bytes)
            .ok()
            .map(|ch| followable(ch.all().iter().map(|d| d.to_string())));
        assert_eq!(got, oci(&r.bytes).1.map(followable), "{}", r.name);
    }
}

/// The verdict the table supports, as properties of it. README.md ("Dependencies") explains the
/// decision taken on it.
#[test]
fn verdict_oci_spec_reads_all_valid_content_and_refuses_at_least_what_the_hand_grammar_refuses() {
    let rows = table();
    // README.md quotes this count.
    assert_eq!(rows.len(), 52);
    let names = |keep: &dyn Fn(&Row) -> bool| -> Vec<&str> {
        rows.iter()
            .filter(|r| keep(r))
            .map(|r| r.name.as_str())
            .collect()
    };
    // 1. It reads every valid manifest and index, Docker's media types included.
    assert_eq!(
        names(&|r| r.content == Content::Valid && r.oci == Oci::Rejects),
        Vec::<&str>::new()
    );
    // 2. It refuses everything the hand-written grammar refuses.
    assert_eq!(
        names(&|r| r.hand == Hand::Refuses && r.oci != Oci::Rejects),
        Vec::<&str>::new()
    );
    // 3. It refuses invalid content that the hand-written grammar follows: missing required
    //    fields, malformed digests, bytes that are not JSON in fields the closure skips.
    assert_eq!(
        names(&|r| r.content == Content::Invalid
            && r.hand != Hand::Refuses
            && r.oci == Oci::Rejects)
        .len(),
        13
    );
    // 4. Where it is loose, the hand-written grammar is as loose: schemaVersion is a bare u32
    //    (never checked to be 2), and any grammatical digest algorithm parses (refs::Digest
    //    then drops it, as today).
    assert_eq!(
        names(&|r| r.content == Content::Invalid && r.oci != Oci::Rejects),
        [
            "schemaVersion 1 on a v2 shape",
            "schemaVersion 3",
            "unregistered digest algorithm"
        ]
    );
    assert!(
        rows.iter()
            .all(|r| r.oci == Oci::Rejects || r.hand != Hand::Refuses)
    );
    // 5. The legacy formats: the withdrawn OCI artifact manifest reads as oci-spec's
    //    ArtifactManifest; Docker schema 1 has nothing either grammar follows.
    assert_eq!(
        names(&|r| r.content == Content::Legacy && r.oci == Oci::Rejects),
        ["tests/fixtures/manifests/docker-spec/docker-manifest-v1.json"]
    );
}
