//! RFC 3161 timestamp countersignatures on Notation signatures, with real envelopes made by
//! notation-go and real tokens from GlobalSign's TSA (tests/fixtures/signatures/
//! notation-timestamp/ORIGIN.md): a `tsa` store lets a signature whose certificate has
//! since expired vouch when the stamped time lies inside its validity, and every way the
//! countersignature can be wrong is refused with its reason.

mod support;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::Engine as _;
use portcullis::refs::{Digest, RepoName};
use portcullis::trust::notation::envelope::{Envelope, Payload};
use portcullis::trust::notation::{NotationConfig, NotationVerifier, cose, jws};
use portcullis::trust::signature::{Candidate, DigestVerifier, Evidence, Subject, Verdict};
use serde_json::Value;
use support::notation_signer::candidate_of;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/signatures/notation-timestamp")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap()
}

fn at(s: &str) -> SystemTime {
    humantime::parse_rfc3339(s).unwrap()
}

fn parse(envelope: &[u8]) -> Envelope {
    jws::parse(envelope)
        .or_else(|_| cose::parse(envelope))
        .unwrap()
}

/// A real envelope attached, as notation attaches it, to the manifest its payload names:
/// the subject digest, the candidate, and the envelope's own signing certificate (which
/// the `ca` store trusts: these test envelopes carry self-signed certificates).
fn case(envelope: Vec<u8>) -> (Digest, Candidate, Vec<u8>) {
    let env = parse(&envelope);
    let target = Payload::parse(&env.payload).unwrap().target_artifact;
    let media = if envelope.first() == Some(&b'{') {
        "application/jose+json"
    } else {
        "application/cose"
    };
    let thumbprints: Vec<String> = env
        .chain
        .iter()
        .map(|c| Digest::sha256_of(c).hex().to_owned())
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.cncf.notary.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": Digest::sha256_of(b"{}").to_string(), "size": 2},
        "layers": [{"mediaType": media, "digest": Digest::sha256_of(&envelope).to_string(), "size": envelope.len()}],
        "subject": {"mediaType": target.media_type, "digest": target.digest, "size": target.size},
        "annotations": {"io.cncf.notary.x509chain.thumbprint#S256": serde_json::to_string(&thumbprints).unwrap()},
    });
    let subject: Digest = target.digest.parse().unwrap();
    let leaf = env.chain[0].clone();
    (
        subject,
        candidate_of(serde_json::to_vec(&manifest).unwrap(), envelope),
        leaf,
    )
}

/// A strict statement with a `ca` store (the envelope's certificate) and, if given, a `tsa`
/// store; `extra` is spliced into `signatureVerification`.
struct Setup {
    _dir: tempfile::TempDir,
    verifier: NotationVerifier,
}

fn setup(extra: &str, ca: &[u8], tsa: Option<&[u8]>) -> Setup {
    try_setup(extra, ca, tsa).unwrap()
}

fn try_setup(extra: &str, ca: &[u8], tsa: Option<&[u8]>) -> anyhow::Result<Setup> {
    let d = tempfile::tempdir().unwrap();
    let mut stores = vec!["\"ca:signer\""];
    if tsa.is_some() {
        stores.push("\"tsa:globalsign\"");
    }
    let policy = format!(
        r#"{{"version": "1.0", "trustPolicies": [{{"name": "ts", "registryScopes": ["*"],
            "signatureVerification": {{"level": "strict"{extra}}},
            "trustStores": [{}], "trustedIdentities": ["*"]}}]}}"#,
        stores.join(", ")
    );
    std::fs::write(d.path().join("trustpolicy.json"), policy).unwrap();
    let put = |ty: &str, name: &str, der: &[u8]| {
        let p = d.path().join("truststore/x509").join(ty).join(name);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("cert.crt"), der).unwrap();
    };
    put("ca", "signer", ca);
    if let Some(t) = tsa {
        put("tsa", "globalsign", t);
    }
    let verifier = NotationVerifier::new(&NotationConfig {
        trust_policy: d.path().join("trustpolicy.json"),
        trust_store: d.path().join("truststore"),
    })?;
    Ok(Setup { _dir: d, verifier })
}

fn verify(s: &Setup, subject: &Digest, cand: &Candidate, now: SystemTime) -> Verdict {
    let repo: RepoName = "e2e".parse().unwrap();
    s.verifier.verify(
        Subject {
            registry: "localhost:5000",
            repository: &repo,
            digest: subject,
        },
        std::slice::from_ref(cand),
        now,
    )
}

fn vouched(v: Verdict) -> Evidence {
    match v {
        Verdict::Vouched(e) => e,
        Verdict::No(why) => panic!("expected to vouch, got: {why}"),
    }
}

fn refused(v: Verdict) -> String {
    match v {
        Verdict::No(why) => why,
        Verdict::Vouched(e) => panic!("expected a refusal, got {e:?}"),
    }
}

fn globalsign() -> Vec<u8> {
    read("globalsignRoot.cer")
}

/// GlobalSign's TSA certificates name CRL and OCSP locations, which Portcullis does not
/// fetch: the operator says so explicitly for these statements.
const NO_REVOCATION: &str = r#", "override": {"revocation": "log"}"#;
/// 2026: every testTSA signing certificate of these fixtures has expired by then.
const LATER: &str = "2026-12-01T00:00:00Z";

fn timestamp_detail(e: &Evidence) -> String {
    e.details
        .iter()
        .find(|(k, _)| k == "authentic timestamp")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no timestamp in {:?}", e.details))
}

#[test]
fn jws_and_cose_timestamps_from_globalsign_verify() {
    for file in ["jwsWithTimestamp.sig", "coseWithTimestamp.sig"] {
        let (subject, cand, leaf) = case(read(file));
        let s = setup(NO_REVOCATION, &leaf, Some(&globalsign()));
        let e = vouched(verify(&s, &subject, &cand, at(LATER)));
        let ts = timestamp_detail(&e);
        assert!(ts.starts_with("2024-06-18T"), "{file}: {ts}");
        assert!(ts.contains("Globalsign TSA for Advanced"), "{file}: {ts}");
        assert!(ts.contains("tsa:globalsign"), "{file}: {ts}");
    }
}

#[test]
fn expired_certificate_vouches_only_through_a_timestamp() {
    for file in [
        "jwsExpiredWithTimestamp.sig",
        "coseExpiredWithTimestamp.sig",
    ] {
        let (subject, cand, leaf) = case(read(file));
        // The certificate lived ten minutes on 2024-06-18; the TSA stamped inside them.
        let s = setup(NO_REVOCATION, &leaf, Some(&globalsign()));
        vouched(verify(&s, &subject, &cand, at(LATER)));
        let after = format!(r#"{NO_REVOCATION}, "verifyTimestamp": "afterCertExpiry""#);
        let s = setup(&after, &leaf, Some(&globalsign()));
        vouched(verify(&s, &subject, &cand, at(LATER)));
        // Without a tsa store the timestamp is not looked at, and the certificate is expired.
        let s = setup(NO_REVOCATION, &leaf, None);
        let why = refused(verify(&s, &subject, &cand, at(LATER)));
        assert!(why.contains("is not valid at now"), "{file}: {why}");
        assert!(why.contains("names no tsa store"), "{file}: {why}");
    }
}

#[test]
fn after_cert_expiry_does_not_need_a_timestamp_while_the_certificate_is_valid() {
    let (subject, cand, leaf) = case(read("withoutTimestamp.sig"));
    let now = at("2025-06-01T00:00:00Z");
    let after = r#", "verifyTimestamp": "afterCertExpiry""#;
    vouched(verify(
        &setup(after, &leaf, Some(&globalsign())),
        &subject,
        &cand,
        now,
    ));
    // `always` (the default) requires the countersignature.
    let why = refused(verify(
        &setup("", &leaf, Some(&globalsign())),
        &subject,
        &cand,
        now,
    ));
    assert!(
        why.contains("no timestamp countersignature was found"),
        "{why}"
    );
}

#[test]
fn timestamp_outside_the_certificate_validity_is_refused() {
    // Stamped after the certificate's notAfter / before its notBefore (the certificate
    // was made for the test to be valid 2099-2100).
    for (file, now) in [
        ("timestampAfterNotAfter.sig", LATER),
        ("timestampBeforeNotBefore.sig", "2099-12-01T00:00:00Z"),
    ] {
        let (subject, cand, leaf) = case(read(file));
        let s = setup(NO_REVOCATION, &leaf, Some(&globalsign()));
        let why = refused(verify(&s, &subject, &cand, at(now)));
        assert!(why.contains("is not within certificate"), "{file}: {why}");
        assert!(why.contains("CN=testTSA"), "{file}: {why}");
    }
}

#[test]
fn tsa_of_another_root_is_refused() {
    let (subject, cand, leaf) = case(read("jwsWithTimestamp.sig"));
    let s = setup(
        NO_REVOCATION,
        &leaf,
        Some(&read("DigiCertTSARootSHA384.cer")),
    );
    let why = refused(verify(&s, &subject, &cand, at(LATER)));
    assert!(
        why.contains("does not lead to a certificate of the tsa stores"),
        "{why}"
    );
    assert!(why.contains("Globalsign TSA for Advanced"), "{why}");
}

#[test]
fn enforced_revocation_refuses_a_tsa_chain_it_cannot_check() {
    let (subject, cand, leaf) = case(read("jwsWithTimestamp.sig"));
    let s = setup("", &leaf, Some(&globalsign()));
    let why = refused(verify(&s, &subject, &cand, at("2024-06-18T07:00:00Z")));
    assert!(
        why.contains("timestamping chain's revocation status cannot be determined"),
        "{why}"
    );
    assert!(why.contains("override.revocation"), "{why}");
}

/// The JWS envelope with its unsigned timestamp header replaced (the envelope signature
/// stays valid: the header is not signed).
fn with_token(token: &[u8]) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&read("jwsWithTimestamp.sig")).unwrap();
    v["header"]["io.cncf.notary.timestampSignature"] =
        Value::from(base64::engine::general_purpose::STANDARD.encode(token));
    serde_json::to_vec(&v).unwrap()
}

fn token_of(envelope: &[u8]) -> Vec<u8> {
    parse(envelope).timestamp_token.unwrap()
}

fn refusal_with_token(token: &[u8]) -> String {
    let (subject, cand, leaf) = case(with_token(token));
    let s = setup(NO_REVOCATION, &leaf, Some(&globalsign()));
    refused(verify(&s, &subject, &cand, at(LATER)))
}

#[test]
fn broken_or_foreign_tokens_are_refused_with_their_reason() {
    // notation-go's own bad tokens.
    let why = refusal_with_token(&read("TimeStampTokenWithInvalidTSTInfo.p7s"));
    assert!(why.contains("TSTInfo is malformed"), "{why}");
    let why = refusal_with_token(&read("TimeStampTokenWithInvalideContentType.p7s"));
    assert!(why.contains("not id-ct-TSTInfo"), "{why}");
    // A genuine GlobalSign token, for another signature.
    let why = refusal_with_token(&read("TimeStampToken.p7s"));
    assert!(why.contains("message imprint mismatch"), "{why}");
    let other = token_of(&read("coseWithTimestamp.sig"));
    let why = refusal_with_token(&other);
    assert!(why.contains("message imprint mismatch"), "{why}");
    let why = refusal_with_token(b"not a token");
    assert!(why.contains("not CMS"), "{why}");
}

#[test]
fn altered_token_bytes_are_refused() {
    let good = token_of(&read("jwsWithTimestamp.sig"));
    // The TSA's signature is the token's last large OCTET STRING: flip its last byte.
    let mut sig = good.clone();
    let n = sig.len();
    sig[n - 1] ^= 1;
    let why = refusal_with_token(&sig);
    assert!(why.contains("signature does not verify"), "{why}");
    // genTime inside TSTInfo: the signed message-digest no longer matches.
    let pos = good
        .windows(8)
        .position(|w| w == b"20240618")
        .expect("genTime in the token");
    let mut t = good.clone();
    t[pos + 3] = b'5';
    let why = refusal_with_token(&t);
    assert!(why.contains("TSTInfo was altered"), "{why}");
}

#[test]
fn microsoft_token_does_not_chain_to_globalsign() {
    // notation's e2e envelope stamped by Microsoft's TSA, whose root this project does not
    // carry: with a GlobalSign tsa store it must be refused, naming the chain it found.
    let layout = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/signatures/notation/registry/oci_layout/e2e-with-timestamped-signature/blobs/sha256");
    let envelope = std::fs::read(
        layout.join("603ff134e97a79cd7a15560b76137c2c4a10451daab11327a7c6f86dac250fee"),
    )
    .unwrap();
    let (subject, cand, leaf) = case(envelope);
    // Its signature expiry (2025-01-21T12:39:46Z) has passed too: logged, to reach the TSA.
    let extra = r#", "override": {"revocation": "log", "expiry": "log"}"#;
    let s = setup(extra, &leaf, Some(&globalsign()));
    let why = refused(verify(&s, &subject, &cand, at(LATER)));
    assert!(
        why.contains("Microsoft Public RSA Time Stamping Authority"),
        "{why}"
    );
    assert!(
        why.contains("does not lead to a certificate of the tsa stores"),
        "{why}"
    );
}

#[test]
fn tsa_stores_hold_root_cas_only() {
    // notation-go's own bad tsa stores: a CA that is not self-issued, and a leaf.
    let leaf = case(read("jwsWithTimestamp.sig")).2;
    for (file, subject) in [
        ("nonSelfIssued.crt", "Revokable RSA Chain Cert 2"),
        ("wabbit-networks.io.crt", "wabbit-networks.io"),
    ] {
        let err = try_setup("", &leaf, Some(&read(file))).err().unwrap();
        let err = format!("{err:#}");
        assert!(err.contains("trust store tsa:globalsign"), "{err}");
        assert!(err.contains("is not a self-signed root CA"), "{err}");
        assert!(err.contains(subject), "{err}");
    }
}
