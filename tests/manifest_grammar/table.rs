//! The table of tests/manifest_grammar.rs: every manifest the repository holds or its tests
//! generate, what it is by the specs, and what each grammar does with it.

use std::path::Path;

/// Whether a registry serves these bytes as a manifest and a client pulls them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
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
pub enum Hand {
    Refuses,
    Yields(usize, usize),
}

/// What oci-spec does, read the way a client reads a manifest (see `oci` in manifest_grammar.rs): which type parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oci {
    Rejects,
    Manifest,
    Index,
    Artifact,
}

pub struct Row {
    pub name: String,
    pub bytes: Vec<u8>,
    pub content: Content,
    pub hand: Hand,
    pub oci: Oci,
    /// oci-spec reads the document as the one type its `mediaType` names, where the hand grammar
    /// follows every field it knows; so it finds fewer references.
    pub oci_follows_less: bool,
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
pub fn table() -> Vec<Row> {
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
