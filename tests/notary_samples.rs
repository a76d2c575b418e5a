//! Real Notary v1 metadata (testbed samples and 29 sets from the wild) verifies and resolves as
//! the reference verifier and notary do; the inconsistent sets are refused for the right reason.
//! Expected results come from `tests/fixtures/notary/expected.tsv`, generated from each set's
//! PROVENANCE, not from this library.

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
use bytes::Bytes;
use portcullis::trust::notary::Error;
use portcullis::trust::notary::fetch::{Fetch, FetchError};
use portcullis::trust::notary::metadata::parse_time;
use portcullis::trust::notary::resolve::resolve;
use portcullis::trust::notary::update::{Limits, Prior, Trusted, update};
use portcullis::trust::notary::verify::RootAnchor;
use time::{Duration, OffsetDateTime};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/notary")
}

/// Serves a fixture directory as notary-server would: `snapshot.<hex>` -> `snapshot.json`,
/// `targets/releases.<hex>` -> `targets_releases.json`.
struct DirFetcher(PathBuf);

#[async_trait]
impl Fetch for DirFetcher {
    async fn fetch(&self, _gun: &str, role_path: &str, max_len: u64) -> Result<Bytes, FetchError> {
        let role = match role_path.rsplit_once('.') {
            Some((r, hex)) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => r,
            _ => role_path,
        };
        let file = self.0.join(format!("{}.json", role.replace('/', "_")));
        let bytes = std::fs::read(&file).map_err(|_| FetchError::NotFound)?;
        if bytes.len() as u64 > max_len {
            return Err(FetchError::TooLarge { limit: max_len });
        }
        Ok(Bytes::from(bytes))
    }
    fn describe(&self) -> String {
        self.0.display().to_string()
    }
}

#[derive(Debug, Clone)]
struct Row {
    dir: String,
    gun: String,
    now: OffsetDateTime,
    verdict: String,
    reason: String,
    tag: String,
    digest: String,
    length: String,
    role: String,
}

fn rows() -> Vec<Row> {
    let text = std::fs::read_to_string(fixtures().join("expected.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 10, "{l}");
            Row {
                dir: f[1].into(),
                gun: f[2].into(),
                now: parse_time(f[3]).unwrap(),
                verdict: f[4].into(),
                reason: f[5].into(),
                tag: f[6].into(),
                digest: f[7].into(),
                length: f[8].into(),
                role: f[9].into(),
            }
        })
        .collect()
}

async fn verify_dir(dir: &str, gun: &str, now: OffsetDateTime) -> Result<Trusted, Error> {
    let fetcher = DirFetcher(fixtures().join(dir));
    let wanted = vec![
        "targets/releases".to_string(),
        "targets".to_string(),
        "targets/role/foo".to_string(),
    ];
    update(
        &fetcher,
        gun,
        &RootAnchor::Tofu,
        &Prior::default(),
        &Limits::default(),
        &wanted,
        now,
    )
    .await
}

fn by_dir(verdicts: &[&str]) -> BTreeMap<String, Vec<Row>> {
    let mut m: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for r in rows()
        .into_iter()
        .filter(|r| verdicts.contains(&r.verdict.as_str()))
    {
        m.entry(r.dir.clone()).or_default().push(r);
    }
    m
}

#[tokio::test]
async fn accepted_sets_verify_and_resolve_every_expected_tag() {
    let sets = by_dir(&["accept", "unsigned"]);
    assert!(sets.len() >= 26, "only {} sets", sets.len());
    let mut tags = 0;
    for (dir, rows) in sets {
        let trusted = verify_dir(&dir, &rows[0].gun, rows[0].now)
            .await
            .unwrap_or_else(|e| panic!("{dir}: {e}"));
        for r in rows {
            let got = resolve(&trusted, &format!("x:{}", r.tag), &r.tag, &[]);
            if r.verdict == "unsigned" {
                let e = got.expect_err(&r.tag);
                assert!(matches!(e, Error::NotSigned(_)), "{dir} {}: {e}", r.tag);
                assert!(
                    e.to_string()
                        .contains("not signed in targets/releases or targets")
                );
                continue;
            }
            let t = got.unwrap_or_else(|e| panic!("{dir} {}: {e}", r.tag));
            assert_eq!(t.digest.to_string(), r.digest, "{dir} {}", r.tag);
            assert_eq!(
                t.length.map(|l| l.to_string()),
                Some(r.length.clone()),
                "{dir} {}",
                r.tag
            );
            assert_eq!(t.signer, r.role, "{dir} {}", r.tag);
            assert_eq!(t.name, r.tag);
            tags += 1;
        }
    }
    assert!(tags >= 55, "{tags}");
}

#[tokio::test]
async fn inconsistent_sets_are_refused_for_the_right_reason() {
    let sets = by_dir(&["reject"]);
    assert!(sets.len() >= 11);
    for (dir, rows) in sets {
        let r = &rows[0];
        let e = verify_dir(&dir, &r.gun, r.now).await.expect_err(&dir);
        let msg = e.to_string();
        match r.reason.as_str() {
            // kolide-agent: targets.json is from a later publication than the snapshot.
            "mix-and-match" => assert!(
                matches!(&e, Error::Invalid { role, .. } if role == "targets")
                    && msg.contains("does not match snapshot's record"),
                "{dir}: {msg}"
            ),
            "hash-mismatch" => assert!(msg.contains("does not match"), "{dir}: {msg}"),
            "no-timestamp" => assert!(
                matches!(&e, Error::NotFound { role, .. } if role == "timestamp"),
                "{dir}: {msg}"
            ),
            other => panic!("unknown reason {other}"),
        }
    }
}

#[tokio::test]
async fn every_accepted_set_is_refused_after_its_timestamp_expires() {
    for (dir, rows) in by_dir(&["accept"]) {
        let r = &rows[0];
        let trusted = verify_dir(&dir, &r.gun, r.now).await.unwrap();
        let after = trusted.timestamp.signed.expires + Duration::seconds(1);
        let e = verify_dir(&dir, &r.gun, after).await.expect_err(&dir);
        let msg = e.to_string();
        assert!(
            matches!(e, Error::Expired { .. }) || msg.contains("certificate is valid only"),
            "{dir}: {msg}"
        );
        // At the very instant of expiry it is already refused (expires must be after now).
        let at = trusted.timestamp.signed.expires;
        assert!(verify_dir(&dir, &r.gun, at).await.is_err(), "{dir}");
    }
}

#[tokio::test]
async fn root_cert_cn_must_be_the_gun() {
    let r = &by_dir(&["accept"])["signer-ecdsa"][0];
    let e = verify_dir("signer-ecdsa", "127.0.0.1:5000/other/app", r.now)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("is not the GUN"), "{e}");
}

#[tokio::test]
async fn root_cert_validity_is_checked_whatever_root_expires_says() {
    // harbor-2020-02-24: metadata until 2030+, root certificate until 2030-02-21.
    let dir = "real/harbor-2020-02-24";
    let gun = "jt-dev.local.goharbor.io/library/busybox";
    let late = parse_time("2030-02-23T00:00:00Z").unwrap();
    let e = verify_dir(dir, gun, late).await.unwrap_err();
    assert!(
        matches!(&e, Error::Invalid { role, .. } if role == "root"),
        "{e}"
    );
    assert!(e.to_string().contains("certificate is valid only"), "{e}");
}

#[tokio::test]
async fn size_limits_are_enforced() {
    let r = &by_dir(&["accept"])["signer-ecdsa"][0];
    let fetcher = DirFetcher(fixtures().join("signer-ecdsa"));
    let limits = Limits {
        timestamp: 100,
        ..Limits::default()
    };
    let e = update(
        &fetcher,
        &r.gun,
        &RootAnchor::Tofu,
        &Prior::default(),
        &limits,
        &[],
        r.now,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, Error::Fetch { role, source: FetchError::TooLarge { .. }, .. } if role == "timestamp"),
        "{e}"
    );
}

#[tokio::test]
async fn nested_delegations_resolve_for_required_signers() {
    // kolide-greeter-darwin-deleg3: targets/role/foo (paths ["edge","v1"]) under targets/role,
    // and targets/bar (paths ["edge","latest"]).
    let rows = &by_dir(&["accept"])["real/kolide-greeter-darwin-deleg3"];
    let trusted = verify_dir(&rows[0].dir, &rows[0].gun, rows[0].now)
        .await
        .unwrap();
    let foo = vec!["targets/role/foo".to_string()];
    let t = resolve(&trusted, "edge/target", "edge/target", &foo).unwrap();
    assert_eq!(t.signer, "targets/role/foo");
    let e = resolve(&trusted, "latest/target", "latest/target", &foo).unwrap_err();
    assert!(
        e.to_string().contains("required signer targets/role/foo"),
        "{e}"
    );
    let both = vec!["targets".to_string(), "targets/role".to_string()];
    let t = resolve(&trusted, "latest/target", "latest/target", &both).unwrap();
    assert_eq!(t.signer, "targets+targets/role");
    let d = trusted
        .delegations
        .iter()
        .find(|(d, _)| d.name == "targets/role/foo")
        .unwrap();
    assert_eq!(d.0.paths, vec!["edge".to_string(), "v1".to_string()]);
}
