//! NotarySource behaviour: root of trust (pins, TOFU persisted, refusal without either), root
//! rotation, corrupt state, single-flight refresh, offline fallback until expiry.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use portcullis::config::{NotaryConfig, TrustPinning};
use portcullis::refs::{RepoName, Tag};
use portcullis::trust::notary::fetch::{Fetch, FetchError};
use portcullis::trust::notary::metadata::parse_time;
use portcullis::trust::notary::update::Limits;
use portcullis::trust::notary::{CheckReport, Error, NotarySource};
use portcullis::trust::{TrustError, TrustSource};
use time::{Duration, OffsetDateTime};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/notary")
}

/// Serves a fixture directory, counts fetches per role path, can go "down" and can stall.
struct Server {
    dir: Mutex<PathBuf>,
    down: AtomicBool,
    delay_ms: u64,
    timestamp_fetches: AtomicUsize,
}

impl Server {
    fn new(dir: &str, delay_ms: u64) -> Arc<Server> {
        Arc::new(Server {
            dir: Mutex::new(fixtures().join(dir)),
            down: AtomicBool::new(false),
            delay_ms,
            timestamp_fetches: AtomicUsize::new(0),
        })
    }
    fn serve(&self, dir: &str) {
        *self.dir.lock().unwrap() = fixtures().join(dir);
    }
}

#[async_trait]
impl Fetch for Server {
    async fn fetch(&self, _gun: &str, role_path: &str, max_len: u64) -> Result<Bytes, FetchError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(FetchError::Unreachable("connection refused".into()));
        }
        if role_path == "timestamp" {
            self.timestamp_fetches.fetch_add(1, Ordering::SeqCst);
        }
        tokio::time::sleep(std::time::Duration::from_millis(self.delay_ms)).await;
        let role = match role_path.rsplit_once('.') {
            Some((r, hex)) if hex.len() == 64 => r,
            _ => role_path,
        };
        let dir = self.dir.lock().unwrap().clone();
        let bytes = std::fs::read(dir.join(format!("{}.json", role.replace('/', "_"))))
            .map_err(|_| FetchError::NotFound)?;
        if bytes.len() as u64 > max_len {
            return Err(FetchError::TooLarge { limit: max_len });
        }
        Ok(Bytes::from(bytes))
    }
    fn describe(&self) -> String {
        "https://notary.test".into()
    }
}

fn cfg(template: &str, pinning: TrustPinning) -> NotaryConfig {
    NotaryConfig {
        server: "https://notary.test".into(),
        ca_file: None,
        gun_template: template.into(),
        trust_pinning: pinning,
        required_signers: vec![],
        refresh_interval_secs: 30,
        fetch: Default::default(),
        offline_grace: None,
    }
}

fn tofu() -> TrustPinning {
    TrustPinning {
        tofu: true,
        ..TrustPinning::default()
    }
}

type Now = Arc<Mutex<OffsetDateTime>>;

fn source(server: &Arc<Server>, cfg: &NotaryConfig, cache: &Path, now: &Now) -> NotarySource {
    let now = now.clone();
    NotarySource::with_fetcher(
        "127.0.0.1:5000",
        cfg,
        cache,
        server.clone(),
        Arc::new(move || *now.lock().unwrap()),
        Limits::default(),
    )
}

fn at(s: &str) -> Now {
    Arc::new(Mutex::new(parse_time(s).unwrap()))
}

fn repo(s: &str) -> RepoName {
    s.parse().unwrap()
}
fn tag(s: &str) -> Tag {
    s.parse().unwrap()
}

fn timestamp_expiry(report: &CheckReport) -> OffsetDateTime {
    report
        .roles
        .iter()
        .find(|r| r.role == "timestamp")
        .unwrap()
        .expires
}

/// Resolves demo/app:v1 expecting a refusal; its message.
async fn refusal(src: &NotarySource) -> String {
    src.resolve(&repo("demo/app"), &tag("v1"))
        .await
        .unwrap_err()
        .to_string()
}

const DEMO_NOW: &str = "2026-11-24T19:12:12Z";

#[tokio::test]
async fn no_pin_and_no_tofu_is_refused_with_how_to_pin() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::new("signer-ecdsa", 0);
    let src = source(
        &server,
        &cfg("{registry}/{repository}", TrustPinning::default()),
        tmp.path(),
        &at(DEMO_NOW),
    );
    let e = src
        .resolve(&repo("demo/app"), &tag("v1"))
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("trust_pinning.certs") && msg.contains("tofu = true"),
        "{msg}"
    );
    assert!(
        !tmp.path().join("notary").exists(),
        "nothing may be persisted"
    );
}

/// A GUN the notary server has nothing for (404 on its root): the label people alert on must
/// say "not signed", not "invalid metadata", and the message must ask whether it is signed.
#[tokio::test]
async fn a_repository_never_signed_is_refused_as_not_signed() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::new("no-such-fixture-dir", 0);
    let src = source(
        &server,
        &cfg("{registry}/{repository}", tofu()),
        tmp.path(),
        &at(DEMO_NOW),
    );
    let e = src
        .resolve(&repo("demo/never"), &tag("v1"))
        .await
        .unwrap_err();
    assert!(matches!(e, TrustError::NotSigned(_)), "{e:?}");
    assert_eq!(e.reason().as_str(), "not_signed");
    assert!(e.to_string().contains("is the repository signed?"), "{e}");
}

#[tokio::test]
async fn pinned_by_canonical_id_or_root_json_id() {
    // moby-alpine: the Docker Official Images pin (canonical public-key ID) must be accepted.
    let now = at("2018-07-25T00:00:00Z");
    let server = Server::new("real/moby-alpine", 0);
    for (ids, ok) in [
        (
            vec!["c15164663f80d58bf3d8d5a0cd08b8086cba02065feb00421fc2a5436c563210"],
            true,
        ),
        (
            vec!["0000000000000000000000000000000000000000000000000000000000000000"],
            false,
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let mut p = TrustPinning::default();
        p.certs.insert(
            "docker.io/library/*".into(),
            ids.iter().map(|s| s.to_string()).collect(),
        );
        let c = NotaryConfig {
            gun_template: "docker.io/{repository}".into(),
            ..cfg("x", p)
        };
        let src = source(&server, &c, tmp.path(), &now);
        let r = src.resolve(&repo("library/alpine"), &tag("3.8")).await;
        assert_eq!(r.is_ok(), ok, "{r:?}");
        if !ok {
            let msg = r.unwrap_err().to_string();
            assert!(msg.contains("trust_pinning"), "{msg}");
        }
    }
    // The key ID as root.json lists it (the x509 key's ID) is accepted too, like notary.
    let root: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixtures().join("real/moby-alpine/root.json")).unwrap(),
    )
    .unwrap();
    let listed = root["signed"]["roles"]["root"]["keyids"][0]
        .as_str()
        .unwrap()
        .to_string();
    let tmp = tempfile::tempdir().unwrap();
    let mut p = TrustPinning::default();
    p.certs
        .insert("docker.io/library/alpine".into(), vec![listed]);
    let c = NotaryConfig {
        gun_template: "docker.io/{repository}".into(),
        ..cfg("x", p)
    };
    source(&server, &c, tmp.path(), &now)
        .resolve(&repo("library/alpine"), &tag("3.8"))
        .await
        .unwrap();
}

#[tokio::test]
async fn tofu_root_is_persisted_and_then_anchors_without_tofu() {
    let tmp = tempfile::tempdir().unwrap();
    let now = at(DEMO_NOW);
    let server = Server::new("signer-ecdsa", 0);
    let t = source(
        &server,
        &cfg("{registry}/{repository}", tofu()),
        tmp.path(),
        &now,
    )
    .resolve(&repo("demo/app"), &tag("v1"))
    .await
    .unwrap();
    assert_eq!(t.signer, "targets/releases");
    // A restart with TOFU off: the persisted root is the anchor now.
    let src = source(
        &server,
        &cfg("{registry}/{repository}", TrustPinning::default()),
        tmp.path(),
        &now,
    );
    src.resolve(&repo("demo/app"), &tag("v1")).await.unwrap();
    // A different root for the same GUN (another notary-server's keys) is a rotation that the
    // trusted root did not sign: refused, even with TOFU on.
    server.serve("local-ed25519");
    let src = source(
        &server,
        &cfg("{registry}/{repository}", tofu()),
        tmp.path(),
        &at("2026-11-24T19:11:59Z"),
    );
    let e = src
        .resolve(&repo("demo/app"), &tag("v1"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("root rotation refused"), "{e}");
}

#[tokio::test]
async fn root_rotation_signed_by_the_old_root_is_accepted_and_rollback_refused() {
    // kolide-greeter-darwin root1 -> root2: root v1 -> v2 (timestamp key rotated), signed by
    // the unchanged root certificate.
    let tmp = tempfile::tempdir().unwrap();
    let now = at("2017-07-05T00:00:00Z");
    let server = Server::new("real/kolide-greeter-darwin-root1", 0);
    let c = cfg("{repository}", tofu());
    let gun = "kolide/greeter/darwin";
    let first = source(&server, &c, tmp.path(), &now)
        .current(gun)
        .await
        .unwrap();
    assert_eq!(first.trusted.root.env.signed.version, 1);
    server.serve("real/kolide-greeter-darwin-root2");
    let fresh = source(&server, &c, tmp.path(), &now)
        .current(gun)
        .await
        .unwrap();
    assert_eq!(fresh.trusted.root.env.signed.version, 2);
    assert!(fresh.offline.is_none());
    let all = source(&server, &c, tmp.path(), &now)
        .trusted_targets(&repo("kolide/greeter/darwin"))
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    // Going back to the v1 publication is a rollback (root v1 < trusted v2).
    server.serve("real/kolide-greeter-darwin-root1");
    let e = source(&server, &c, tmp.path(), &now)
        .current(gun)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Rollback { role, .. } if role == "root"),
        "{e}"
    );
    assert!(e.to_string().contains("rollback"), "{e}");
}

#[tokio::test]
async fn corrupt_state_is_refused_not_re_tofued() {
    let tmp = tempfile::tempdir().unwrap();
    let now = at(DEMO_NOW);
    let server = Server::new("signer-ecdsa", 0);
    let c = cfg("{registry}/{repository}", tofu());
    source(&server, &c, tmp.path(), &now)
        .resolve(&repo("demo/app"), &tag("v1"))
        .await
        .unwrap();
    let dir = tmp
        .path()
        .join("notary")
        .join("127.0.0.1%3A5000%2Fdemo%2Fapp");
    std::fs::write(dir.join("state.json"), b"garbage").unwrap();
    let e = source(&server, &c, tmp.path(), &now)
        .resolve(&repo("demo/app"), &tag("v1"))
        .await
        .unwrap_err();
    assert!(matches!(e, TrustError::State(_)), "{e}");
    assert!(
        e.to_string().contains(&format!("delete {}", dir.display())),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    source(&server, &c, tmp.path(), &now)
        .resolve(&repo("demo/app"), &tag("v1"))
        .await
        .unwrap();
    std::fs::remove_file(dir.join("root.json")).unwrap();
    let e = source(&server, &c, tmp.path(), &now)
        .resolve(&repo("demo/app"), &tag("v1"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("root.json"), "{e}");
}

#[tokio::test]
async fn fifty_concurrent_resolves_fetch_the_timestamp_once() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::new("signer-ecdsa", 50);
    let src = Arc::new(source(
        &server,
        &cfg("{registry}/{repository}", tofu()),
        tmp.path(),
        &at(DEMO_NOW),
    ));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let src = src.clone();
        let t = if i % 2 == 0 { "v1" } else { "v1-docker" };
        tasks.push(tokio::spawn(async move {
            src.resolve(&repo("demo/app"), &tag(t)).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(server.timestamp_fetches.load(Ordering::SeqCst), 1);
    // check() always asks the server.
    src.check_report(&repo("demo/app"), &tag("v1"))
        .await
        .unwrap();
    assert_eq!(server.timestamp_fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn offline_serves_cache_until_it_expires_then_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let now = at(DEMO_NOW);
    let server = Server::new("signer-ecdsa", 0);
    let c = cfg("{registry}/{repository}", tofu());
    let src = source(&server, &c, tmp.path(), &now);
    // Unreachable and nothing cached: say so.
    server.down.store(true, Ordering::SeqCst);
    let e = src
        .resolve(&repo("demo/app"), &tag("v1"))
        .await
        .unwrap_err();
    assert!(matches!(e, TrustError::Unavailable(_)), "{e}");
    assert!(
        e.to_string()
            .contains("no cached metadata for 127.0.0.1:5000/demo/app"),
        "{e}"
    );
    server.down.store(false, Ordering::SeqCst);
    let want = src.resolve(&repo("demo/app"), &tag("v1")).await.unwrap();
    server.down.store(true, Ordering::SeqCst);
    // A restarted proxy (fresh memory) still serves from disk while metadata is valid.
    let src = source(&server, &c, tmp.path(), &now);
    let report = src
        .check_report(&repo("demo/app"), &tag("v1"))
        .await
        .unwrap();
    assert_eq!(report.target, want);
    assert!(
        report
            .offline
            .as_deref()
            .unwrap_or("")
            .contains("connection refused")
    );
    // Past the timestamp's expiry the cache is refused, naming the role.
    let expires = timestamp_expiry(&report);
    *now.lock().unwrap() = expires + Duration::seconds(1);
    let e = refusal(&src).await;
    assert!(
        e.contains("unreachable") && e.contains("timestamp") && e.contains("expired"),
        "{e}"
    );
}

/// `offline_grace`: with the server unreachable, an expired cached timestamp is used for the
/// configured time past its expiry and not a second longer; the report says so. With the
/// server reachable, the grace never applies (a live server's expired timestamp is refused).
#[tokio::test]
async fn offline_grace_extends_an_expired_timestamp_only_while_offline_and_only_so_long() {
    let tmp = tempfile::tempdir().unwrap();
    let now = at(DEMO_NOW);
    let server = Server::new("signer-ecdsa", 0);
    let mut c = cfg("{registry}/{repository}", tofu());
    c.offline_grace = Some("30d".into());
    let want = source(&server, &c, tmp.path(), &now)
        .resolve(&repo("demo/app"), &tag("v1"))
        .await
        .unwrap();
    let report = source(&server, &c, tmp.path(), &now)
        .check_report(&repo("demo/app"), &tag("v1"))
        .await
        .unwrap();
    assert_eq!(report.grace, None, "online and unexpired: no grace");
    let expires = timestamp_expiry(&report);

    // Online, past the timestamp's expiry: refused although a grace is configured.
    *now.lock().unwrap() = expires + Duration::days(1);
    let e = refusal(&source(&server, &c, tmp.path(), &now)).await;
    assert!(e.contains("timestamp") && e.contains("expired"), "{e}");

    // Offline, 1 day past expiry: trusted under the grace, and the report says so.
    server.down.store(true, Ordering::SeqCst);
    let src = source(&server, &c, tmp.path(), &now);
    assert_eq!(
        src.resolve(&repo("demo/app"), &tag("v1")).await.unwrap(),
        want
    );
    let report = src
        .check_report(&repo("demo/app"), &tag("v1"))
        .await
        .unwrap();
    assert_eq!(
        report.grace,
        Some(std::time::Duration::from_secs(30 * 86_400))
    );
    assert!(report.offline.is_some());

    // The same without the setting: refused (the grace is never the default).
    let mut strict = c.clone();
    strict.offline_grace = None;
    let e = refusal(&source(&server, &strict, tmp.path(), &now)).await;
    assert!(e.contains("timestamp") && e.contains("expired"), "{e}");

    // Offline, past expiry + grace: refused, naming the timestamp.
    *now.lock().unwrap() = expires + Duration::days(30) + Duration::seconds(1);
    let e = refusal(&source(&server, &c, tmp.path(), &now)).await;
    assert!(e.contains("timestamp") && e.contains("expired"), "{e}");
    // A source kept in memory from within the grace stops too (its cached answer expires).
    *now.lock().unwrap() = expires + Duration::days(29);
    let kept = source(&server, &c, tmp.path(), &now);
    kept.resolve(&repo("demo/app"), &tag("v1")).await.unwrap();
    *now.lock().unwrap() = expires + Duration::days(31);
    assert!(kept.resolve(&repo("demo/app"), &tag("v1")).await.is_err());
}

#[tokio::test]
async fn required_signers_must_all_sign_the_same_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::new("signer-ecdsa", 0);
    let mut c = cfg("{registry}/{repository}", tofu());
    c.required_signers = vec!["targets/releases".into(), "targets".into()];
    let src = source(&server, &c, tmp.path(), &at(DEMO_NOW));
    let t = src.resolve(&repo("demo/app"), &tag("v1")).await.unwrap();
    assert_eq!(t.signer, "targets/releases+targets");
    let e = src
        .resolve(&repo("demo/app"), &tag("large"))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("required signer targets/releases"),
        "{e}"
    );
    c.required_signers = vec!["targets/qa".into()];
    let src = source(&server, &c, tmp.path(), &at(DEMO_NOW));
    let t = src
        .resolve(&repo("demo/app"), &tag("qa-only"))
        .await
        .unwrap();
    assert_eq!(t.signer, "targets/qa");
    let all = src.trusted_targets(&repo("demo/app")).await.unwrap();
    assert!(all.iter().any(|t| t.name == "qa-only"));
}
