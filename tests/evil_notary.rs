//! Self-tests of the malicious notary harness (tests/support/evil_notary): the generator's
//! canonical JSON and escaping, and the server's URL layout. These do not need `portcullis`.
//!
//! The fixtures were checked by hand against the testbed's reference verifier; to repeat:
//!   EVIL_NOTARY_DUMP=/tmp/evil cargo test --test evil_notary -- --ignored dump
//!   for d in /tmp/evil/*/; do verify_tuf.py "$d" --gun "$(cat $d/GUN)" --tag v1; done

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::evil_notary::canonical::{canonical, go_html_escape};
use support::evil_notary::{EvilNotary, Role, fixtures, gun};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn canonical_json_sorts_keys_and_keeps_html_and_utf8_raw() {
    let v = json!({"b": 1, "a": {"z": null, "y": [true, "a<b>&c-é"]}});
    let c = String::from_utf8(canonical(&v)).unwrap();
    assert_eq!(c, r#"{"a":{"y":[true,"a<b>&c-é"],"z":null},"b":1}"#);
    let served = String::from_utf8(go_html_escape(c.as_bytes())).unwrap();
    assert_eq!(
        served,
        r#"{"a":{"y":[true,"a\u003cb\u003e\u0026c-é"],"z":null},"b":1}"#
    );
}

#[test]
fn escaping_fixture_is_served_escaped_but_parses_to_the_signed_name() {
    let f = fixtures::escaping();
    let raw = f.publication.get(Role::Targets);
    let text = std::str::from_utf8(raw).unwrap();
    assert!(text.contains(r"a\u003cb\u003e\u0026c-é"), "{text}");
    let v: Value = serde_json::from_slice(raw).unwrap();
    assert!(v["signed"]["targets"].get("a<b>&c-é").is_some());
}

#[test]
fn expiry_is_written_like_go() {
    use support::evil_notary::Expiry;
    let at = time::Date::from_calendar_date(2026, time::Month::December, 8)
        .unwrap()
        .with_hms_nano(19, 1, 31, 270_040_410)
        .unwrap()
        .assume_utc();
    let e = Expiry {
        at,
        offset: time::UtcOffset::UTC,
    };
    assert_eq!(e.rfc3339(), "2026-12-08T19:01:31.27004041Z");
    assert_eq!(
        e.with_offset(-7).rfc3339(),
        "2026-12-08T12:01:31.27004041-07:00"
    );
}

async fn get(url: &str, path: &str) -> (u16, Vec<u8>) {
    let addr = url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let code = head[9..12].parse().unwrap();
    (code, buf[split + 4..].to_vec())
}

#[tokio::test]
async fn server_serves_the_notary_url_layout_and_counts() {
    let f = fixtures::honest();
    let server = EvilNotary::serving(&f.publication).await;
    let base = format!("/v2/{}/_trust/tuf", gun());
    let snap = f.publication.get(Role::Snapshot);
    let (code, body) = get(&server.url(), &format!("{base}/snapshot.json")).await;
    assert_eq!((code, body.as_slice()), (200, snap));
    let h = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, snap));
    let (code, body) = get(&server.url(), &format!("{base}/snapshot.{h}.json")).await;
    assert_eq!((code, body.as_slice()), (200, snap));
    let (code, _) = get(&server.url(), &format!("{base}/1.snapshot.json")).await;
    assert_eq!(code, 200);
    // An unknown checksum gets the current bytes: the server lies, as an attacker would.
    let zeros = "0".repeat(64);
    let (code, body) = get(&server.url(), &format!("{base}/snapshot.{zeros}.json")).await;
    assert_eq!((code, body.as_slice()), (200, snap));
    let (code, _) = get(&server.url(), &format!("{base}/targets/releases.json")).await;
    assert_eq!(code, 404);
    assert_eq!(server.requests("snapshot"), 4);
}

/// Writes every fixture in fetch-tuf.sh's layout under `$EVIL_NOTARY_DUMP/<name>/`, with
/// `GUN` and `EXPECT` files, for a check by hand with the testbed's verify_tuf.py.
#[test]
#[ignore = "writes fixtures for a manual check with verify_tuf.py"]
fn dump() {
    let Ok(out) = std::env::var("EVIL_NOTARY_DUMP") else {
        panic!("set EVIL_NOTARY_DUMP to a directory");
    };
    for f in fixtures::catalogue().into_iter().chain(more_fixtures()) {
        let dir = std::path::Path::new(&out).join(&f.name);
        f.publication.write_dir(&dir).unwrap();
        std::fs::write(dir.join("GUN"), &f.publication.gun).unwrap();
        let expect = if f.valid {
            format!("accept {}", f.target.digest())
        } else {
            "refuse".into()
        };
        std::fs::write(dir.join("EXPECT"), expect).unwrap();
    }
}

/// Variants that the attack tests build inline, plus each stage of the stateful attacks
/// (every stage must verify standing alone; only the order makes them attacks).
fn more_fixtures() -> Vec<fixtures::Fixture> {
    use support::evil_notary::{Key, Repo, Target};
    let mk = |name: &str, p, t: &Target, valid| fixtures::Fixture {
        name: name.to_string(),
        publication: p,
        tag: "v1",
        target: t.clone(),
        valid,
    };
    let mut out = Vec::new();

    let (mut repo, v1) = fixtures::honest_repo();
    repo.sign_tag("a<b>&c-é", Target::manifest("escaped", 3));
    repo.sign_served_bytes.push(Role::Targets);
    out.push(mk(
        "escaping-signed-over-served-bytes",
        repo.publish(),
        &v1,
        false,
    ));

    let (mut repo, v1) = fixtures::honest_repo();
    repo.sign_with_key_of.insert(Role::Targets, Role::Snapshot);
    out.push(mk(
        "targets-signed-by-snapshot-key",
        repo.publish(),
        &v1,
        false,
    ));

    let (mut repo, v1) = fixtures::honest_repo();
    repo.root_keys.push(Key::root_for(&gun()));
    repo.root_threshold = 2;
    repo.root_signers = Some(vec![0, 0]);
    out.push(mk(
        "root-threshold-2-same-key-twice",
        repo.publish(),
        &v1,
        false,
    ));

    let (mut repo, v1) = fixtures::honest_repo();
    let now = time::OffsetDateTime::now_utc();
    repo.root_keys = vec![Key::root_cert(
        &gun(),
        now + time::Duration::days(2),
        now + time::Duration::days(3650),
    )];
    out.push(mk("root-cert-not-yet-valid", repo.publish(), &v1, false));

    let mut repo = Repo::new(&gun());
    let rel = Target::manifest("v1", 7);
    repo.with_releases(&[""]).sign_release("v1", rel.clone());
    repo.corrupt_signature.push(Role::Releases);
    out.push(mk("bad-signature-releases", repo.publish(), &rel, false));

    let (mut repo, v1) = fixtures::honest_repo();
    repo.shared_key.insert(Role::Timestamp, Role::Snapshot);
    let p = repo.publish();
    out.push(mk("shared-snapshot-timestamp-key", p.clone(), &v1, true));
    let confused = p.clone().with(Role::Timestamp, p.get(Role::Snapshot));
    out.push(mk("snapshot-served-as-timestamp", confused, &v1, false));

    let (mut repo, v1) = fixtures::honest_repo();
    repo.before_sign.push((
        Role::Targets,
        Box::new(|s: &mut Value| s["expires"] = "2099-01-01T00:00:00".into()),
    ));
    out.push(mk(
        "targets-expires-without-offset",
        repo.publish(),
        &v1,
        false,
    ));

    // Rollback stages (attack_rollback.rs): the replayed publication is valid alone.
    let (mut repo, v1) = fixtures::honest_repo();
    let old = repo.publish();
    repo.role(Role::Snapshot).version = 2;
    repo.role(Role::Timestamp).version = 2;
    let new = repo.publish_over(&old, &[Role::Root, Role::Targets]);
    repo.role(Role::Timestamp).version = 3;
    let replay = repo.publish_over(&old, &[Role::Root, Role::Targets, Role::Snapshot]);
    out.push(mk("rollback-snapshot-stage1", new, &v1, true));
    out.push(mk("rollback-snapshot-stage2", replay, &v1, true));

    let (mut repo, v1) = fixtures::honest_repo();
    let old = repo.publish();
    repo.bump_all();
    repo.bump_all();
    let replay = repo.publish_over(&old, &[Role::Root]);
    out.push(mk("rollback-root-stage2", replay, &v1, true));

    // Rotation (attack_root_rotation.rs): the valid rotation, and the forged one (which a
    // TOFU-only check like verify_tuf.py, with no earlier root, cannot tell from a valid one).
    let (mut repo, v1) = fixtures::honest_repo();
    let old = std::mem::replace(&mut repo.root_keys, vec![Key::root_for(&gun())]);
    repo.old_root_keys = old;
    repo.bump_all();
    out.push(mk("rotation-valid-stage2", repo.publish(), &v1, true));
    repo.old_root_keys.clear();
    out.push(mk(
        "rotation-forged-stage2-alone",
        repo.publish(),
        &v1,
        true,
    ));
    out
}
