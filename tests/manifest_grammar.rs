//! Which grammar reads manifests for the closure of trusted content. Until this comparison the
//! closure used a hand-written grammar (kept below as [`hand`]: any object, only the `digest` of
//! `manifests`, `config`, `layers`, `blobs` and `subject`, unknown fields ignored); the design
//! card names the `oci-spec` crate. Every manifest the tests and fixtures hold or generate is
//! parsed by both, and the table below records what each does with it. `closure::children` now
//! reads with oci-spec, and must read every row as the oci-spec column says. An oci-spec upgrade
//! that changes a verdict fails here, so the decision in README.md ("Dependencies, and why each
//! is there") is re-examined rather than silently outdated.
//!
//! Validity is judged by the OCI image spec v1.1 (image-manifest.md, image-index.md,
//! descriptor.md) and Docker's Image Manifest V2 Schema 2 (distribution's manifest-v2-2.md).
//! Real manifests are files (tests/fixtures/manifests/README.md says where each comes from);
//! shapes the tests generate and the edge cases are inline, next to the reason for their row.

use std::collections::BTreeSet;
use std::path::Path;

use oci_spec::image::{ArtifactManifest, Descriptor, ImageIndex, ImageManifest};
use portcullis::closure::children;
use portcullis::refs::Digest;
use serde::Deserialize;

/// Whether a registry serves these bytes as a manifest and a client pulls them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Content {
    /// Valid by the OCI image spec or Docker's manifest v2 schema 2.
    Valid,
    /// A real, older format (Docker schema 1, the withdrawn OCI artifact manifest): registries
    /// may hold it; Portcullis does not ask for it (`Accept` in src/api/mod.rs).
    Legacy,
    /// Breaks a MUST of the specs (a missing required field, a malformed digest, not JSON).
    Invalid,
}

/// What the hand-written grammar does: refuses, or yields (child manifests, blobs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hand {
    Refuses,
    Yields(usize, usize),
}

/// What oci-spec does, read the way a client reads a manifest (see [`oci`]): which type parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Oci {
    Rejects,
    Manifest,
    Index,
    Artifact,
}

struct Row {
    name: String,
    bytes: Vec<u8>,
    content: Content,
    hand: Hand,
    oci: Oci,
    /// oci-spec reads the document as the one type its `mediaType` names, where the hand grammar
    /// follows every field it knows; so it finds fewer references.
    oci_follows_less: bool,
}

impl Row {
    fn oci_follows_less(mut self) -> Row {
        self.oci_follows_less = true;
        self
    }
}

const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

fn file(path: &str, content: Content, hand: Hand, oci: Oci) -> Row {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let bytes = std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()));
    Row {
        name: path.to_string(),
        bytes,
        content,
        hand,
        oci,
        oci_follows_less: false,
    }
}

fn inline(name: &str, text: &str, content: Content, hand: Hand, oci: Oci) -> Row {
    Row {
        name: name.to_string(),
        bytes: text.as_bytes().to_vec(),
        content,
        hand,
        oci,
        oci_follows_less: false,
    }
}

/// A valid OCI image manifest with `extra` spliced in at the top level.
fn oci_manifest_with(extra: &str) -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{A}","size":2}},"layers":[{{"mediaType":"{OCI_LAYER}","digest":"{B}","size":3}}]{extra}}}"#
    )
}

/// Every manifest the repository holds or its tests generate, with what each grammar does.
fn table() -> Vec<Row> {
    use Content::*;
    use Hand::*;
    use Oci::*;
    let mut rows = Vec::new();

    // Pushed by skopeo from mkoci.py layouts and served by docker-registry 2.8 (testbed samples,
    // signed with real notary): OCI manifests and an index, and one Docker schema 2 manifest.
    for signer in ["local-ed25519", "signer-ecdsa"] {
        let dir = format!("tests/fixtures/notary/{signer}/manifests");
        for (f, hand, oci) in [
            ("v1.json", Yields(0, 2), Manifest),
            ("unsigned.json", Yields(0, 2), Manifest),
            ("qa-only.json", Yields(0, 2), Manifest),
            ("large.json", Yields(0, 3), Manifest),
            ("v1-docker.json", Yields(0, 2), Manifest),
            ("multi.json", Yields(2, 0), Index),
            (
                "multi-child-6a73ad067d3864e2c26b2f100f53e4015a53d9c3aded3f0db54d671b6559ed46.json",
                Yields(0, 2),
                Manifest,
            ),
            (
                "multi-child-fb48859fc78cb336c2a87dd5a57cfc3ec96d2a2c70f02ad768c15ed62d68383f.json",
                Yields(0, 2),
                Manifest,
            ),
        ] {
            rows.push(file(&format!("{dir}/{f}"), Valid, hand, oci));
        }
    }

    // Notation's e2e layouts: an image, a signature artifact with `subject`, an empty-config
    // artifact with `artifactType` and inline `data`, a referrers index, an OCI layout index.
    let n = "tests/fixtures/manifests/notation";
    rows.push(file(
        &format!("{n}/image-manifest.json"),
        Valid,
        Yields(0, 2),
        Manifest,
    ));
    rows.push(file(
        &format!("{n}/signature-with-subject.json"),
        Valid,
        Yields(1, 2),
        Manifest,
    ));
    rows.push(file(
        &format!("{n}/artifact-empty-config.json"),
        Valid,
        Yields(0, 2),
        Manifest,
    ));
    rows.push(file(
        &format!("{n}/referrers-index.json"),
        Valid,
        Yields(1, 0),
        Index,
    ));
    rows.push(file(
        &format!("{n}/oci-layout-index.json"),
        Valid,
        Yields(1, 0),
        Index,
    ));
    // containers/image's cosign fixtures: Docker schema 2, and OCI with `layers: []`.
    let c = "tests/fixtures/manifests/cosign";
    rows.push(file(
        &format!("{c}/docker-v2-manifest.json"),
        Valid,
        Yields(0, 2),
        Manifest,
    ));
    rows.push(file(
        &format!("{c}/oci-manifest.json"),
        Valid,
        Yields(0, 1),
        Manifest,
    ));
    // Docker's own spec examples (manifest-v2-2.md), and a schema 1 manifest.
    let d = "tests/fixtures/manifests/docker-spec";
    rows.push(file(
        &format!("{d}/docker-manifest-v2.json"),
        Valid,
        Yields(0, 4),
        Manifest,
    ));
    rows.push(file(
        &format!("{d}/docker-manifest-list.json"),
        Valid,
        Yields(2, 0),
        Index,
    ));
    rows.push(file(
        &format!("{d}/docker-manifest-v1.json"),
        Legacy,
        Yields(0, 0),
        Rejects,
    ));

    // The fuzz seeds and the kept fuzz reproducers of manifest_children (fuzz/README.md).
    rows.push(file(
        "fuzz/seeds/manifest_children/index",
        Invalid,
        Yields(1, 1),
        Rejects,
    ));
    rows.push(file(
        "fuzz/seeds/manifest_children/manifest",
        Invalid,
        Yields(1, 2),
        Rejects,
    ));
    // Not valid JSON, but serde skips the fields closure.rs does not read without checking them.
    let kept = "fuzz/artifacts-kept/manifest_children";
    rows.push(file(
        &format!("{kept}/invalid-utf8-in-ignored-field.json"),
        Invalid,
        Yields(1, 1),
        Rejects,
    ));
    rows.push(file(
        &format!("{kept}/number-out-of-range-in-skipped-field.json"),
        Invalid,
        Yields(0, 0),
        Rejects,
    ));

    // What the tests generate. tests/proxy_core.rs `image()` and its index:
    rows.push(inline(
        "proxy_core image()",
        &oci_manifest_with(""),
        Valid,
        Yields(0, 2),
        Manifest,
    ));
    rows.push(inline(
        "proxy_core index",
        &format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{A}","size":1,"platform":{{"architecture":"arm64","os":"linux"}}}}]}}"#
        ),
        Valid,
        Yields(1, 0),
        Index,
    ));
    // proxy_core's "other bytes under the signed digest": no config, no layers.
    rows.push(inline(
        "proxy_core other bytes",
        r#"{"schemaVersion":2}"#,
        Invalid,
        Yields(0, 0),
        Rejects,
    ));
    // tests/support/evil_notary/repo.rs `manifest()`: signed, never pulled; no config or layers.
    rows.push(inline(
        "evil_notary manifest()",
        &format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","annotations":{{"tag":"v1","seed":"7"}}}}"#
        ),
        Invalid,
        Yields(0, 0),
        Rejects,
    ));
    // src/closure.rs unit test: Docker shape with bare `{"digest"}` descriptors (no size).
    rows.push(inline(
        "closure unit: bare descriptors",
        &format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"digest":"{A}"}},"layers":[{{"digest":"{B}"}}],"subject":{{"digest":"{B}"}}}}"#
        ),
        Invalid,
        Yields(1, 2),
        Rejects,
    ));

    // Edge cases. Unknown fields: OCI says readers MUST NOT error on unknown properties.
    rows.push(inline(
        "unknown fields",
        &oci_manifest_with(r#","futureField":{"x":[1,2]},"layersV2":null"#),
        Valid,
        Yields(0, 2),
        Manifest,
    ));
    // The OCI 1.1-rc artifact manifest (withdrawn before 1.1): `blobs`, no config.
    rows.push(inline(
        "OCI 1.1-rc artifact manifest",
        &format!(
            r#"{{"mediaType":"application/vnd.oci.artifact.manifest.v1+json","artifactType":"application/x-test","blobs":[{{"mediaType":"{OCI_LAYER}","digest":"{B}","size":3}}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{A}","size":5}}}}"#
        ),
        Legacy,
        Yields(1, 1),
        Artifact,
    ));
    // An index that also carries a manifest's fields (unknown fields are allowed in both): a
    // client goes by `mediaType` and walks only `manifests`.
    rows.push(
        inline(
            "index with a manifest's fields too",
            &format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{A}","size":1}}],"config":{{"mediaType":"{OCI_CONFIG}","digest":"{B}","size":2}},"layers":[]}}"#
            ),
            Valid,
            Yields(1, 1),
            Index,
        )
        .oci_follows_less(),
    );
    // schemaVersion is REQUIRED and MUST be 2.
    rows.push(inline(
        "schemaVersion missing",
        &oci_manifest_with("").replacen(r#""schemaVersion":2,"#, "", 1),
        Invalid,
        Yields(0, 2),
        Rejects,
    ));
    rows.push(inline(
        "schemaVersion 1 on a v2 shape",
        &oci_manifest_with("").replacen(r#""schemaVersion":2"#, r#""schemaVersion":1"#, 1),
        Invalid,
        Yields(0, 2),
        Manifest,
    ));
    rows.push(inline(
        "schemaVersion 3",
        &oci_manifest_with("").replacen(r#""schemaVersion":2"#, r#""schemaVersion":3"#, 1),
        Invalid,
        Yields(0, 2),
        Manifest,
    ));
    // A descriptor without its REQUIRED mediaType.
    rows.push(inline(
        "descriptor without mediaType",
        &oci_manifest_with("").replacen(&format!(r#""mediaType":"{OCI_LAYER}","#), "", 1),
        Invalid,
        Yields(0, 2),
        Rejects,
    ));
    // Digests: upper-case hex and a short sha256 break the digest grammar.
    rows.push(inline(
        "upper-case digest",
        &oci_manifest_with("").replacen(B, &B.to_uppercase().replacen("SHA256", "sha256", 1), 1),
        Invalid,
        Yields(0, 1),
        Rejects,
    ));
    rows.push(inline(
        "short digest",
        &oci_manifest_with("").replacen(B, "sha256:abcd", 1),
        Invalid,
        Yields(0, 1),
        Rejects,
    ));
    // An unregistered algorithm that is still grammatical: refs::Digest has sha256/sha512 only.
    rows.push(inline(
        "unregistered digest algorithm",
        &oci_manifest_with("").replacen(B, "md5:d41d8cd98f00b204e9800998ecf8427e", 1),
        Invalid,
        Yields(0, 1),
        Manifest,
    ));
    // A manifest index without platform os/architecture, which both specs require when present.
    rows.push(inline(
        "platform without os",
        &format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{A}","size":1,"platform":{{"architecture":"arm64"}}}}]}}"#
        ),
        Invalid,
        Yields(1, 0),
        Rejects,
    ));
    // Wrong JSON types, duplicate keys, not an object, not JSON.
    rows.push(inline(
        "layers is an object",
        &oci_manifest_with("")
            .replacen(r#""layers":["#, r#""layers":{"x":"#, 1)
            .replacen("}]}", "}}}", 1),
        Invalid,
        Refuses,
        Rejects,
    ));
    rows.push(inline(
        "duplicate config key",
        &oci_manifest_with(&format!(
            r#","config":{{"mediaType":"{OCI_CONFIG}","digest":"{B}","size":2}}"#
        )),
        Invalid,
        Refuses,
        Rejects,
    ));
    rows.push(inline(
        "empty JSON array",
        "[]",
        Invalid,
        Yields(0, 0),
        Rejects,
    ));
    rows.push(inline("JSON null", "null", Invalid, Refuses, Rejects));
    rows.push(inline("not JSON", "not json", Invalid, Refuses, Rejects));
    rows.push(inline("empty body", "", Invalid, Refuses, Rejects));
    rows
}

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
