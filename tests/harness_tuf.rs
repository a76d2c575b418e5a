//! Proves the TUF fixtures (tests/harness/mktuf.py, tests/support/real/tuf.rs) against
//! python-tuf's own client, no proxy: the repository of e2e_tuf.rs signs what it says and
//! nothing else, and every attack the attack_tuf_*.rs tests publish is one python-tuf refuses.
//! So when Portcullis and python-tuf disagree, the fixture is not the suspect.

mod support;

use serde_json::{Value, json};
use support::real::proc::http_status;
use support::real::tuf::{fake_target, layered_spec};
use support::real::tuf_attack;
use support::real::*;

/// The names of `layered_spec` and the fake target each is signed with.
const LAYERED: &[(&str, u8)] = &[
    ("demo/app:v1", 1),
    ("demo/app:v1-docker", 2),
    ("demo/app:lies", 3),
    ("demo/app:multi", 4),
    ("demo/app:hidden", 5),
    ("demo/sub/app:v3", 6),
    ("demo/app:v2", 7),
    ("demo/app:binned", 8),
    ("demo/app:ghost", 9),
];

fn fake(name: &str) -> Value {
    let n = LAYERED.iter().find(|(m, _)| *m == name).unwrap().1;
    fake_target(n)
}

#[test]
fn python_tuf_finds_what_the_layered_repository_signs_and_nothing_else() {
    let repo = TufRepo::new(&layered_spec(fake));
    let names: Vec<&str> = LAYERED
        .iter()
        .map(|(n, _)| *n)
        .chain(["demo/app:unsigned"])
        .collect();
    let v = repo.reference(&names);
    assert_eq!(v.refresh, None, "{v:?}");
    for (name, n) in LAYERED {
        // `*` in a TUF path pattern matches within one segment (python-tuf splits on `/` and
        // fnmatches each segment): `demo/*` does not cover `demo/sub/app:v3`. A terminating
        // role that matches and does not list a name ends the search.
        let hidden = ["demo/sub/app:v3", "demo/app:hidden"].contains(name);
        let want = (!hidden).then(|| format!("{n:02x}").repeat(32));
        assert_eq!(v.sha256(name), want, "{name}: {v:?}");
    }
    assert_eq!(v.targets["demo/app:unsigned"], Value::Null, "{v:?}");
    // releases and team sign with ECDSA keys; the rest with ed25519.
    let top: Value =
        serde_json::from_slice(&std::fs::read(repo.metadata_dir().join("1.targets.json")).unwrap())
            .unwrap();
    let keytypes: Vec<&str> = top["signed"]["delegations"]["keys"]
        .as_object()
        .unwrap()
        .values()
        .map(|k| k["keytype"].as_str().unwrap())
        .collect();
    assert!(keytypes.contains(&"ecdsa"), "{keytypes:?}");
    // The requests went to the consistent-snapshot names (the root walk asks for the version
    // after the pinned one).
    let log = repo.requests();
    for f in [
        "2.root.json",
        "timestamp.json",
        "1.snapshot.json",
        "1.releases.json",
        "1.team.json",
    ] {
        assert!(log.contains(&format!("GET /metadata/{f}")), "{f}: {log}");
    }
}

/// The honest repository each attack starts from: `demo/app:v1` in targets, `demo/app:v2` in
/// `releases`.
fn honest() -> Value {
    json!({
        "targets": {"demo/app:v1": fake_target(1)},
        "delegations": [{"name": "releases", "keys": ["releases"], "paths": ["demo/*"],
                         "targets": {"demo/app:v2": fake_target(2)}}]
    })
}

/// `honest()` with the top-level keys of `extra` set.
fn with(extra: Value) -> Value {
    tuf_attack::with(honest(), extra)
}

/// Generations 1 and 2 honest (a python-tuf client sees both), generation 3 = `attack`;
/// python-tuf's verdict on it, from the client that saw generation 2.
fn after(attack: Value) -> Verdict {
    let mut repo = TufRepo::new(&honest());
    let state = support::real::images::scratch();
    let seen = |repo: &TufRepo| repo.reference_in(state.path(), &["demo/app:v1", "demo/app:v2"]);
    assert_eq!(seen(&repo).refresh, None);
    repo.publish(&honest());
    assert_eq!(seen(&repo).refresh, None);
    repo.publish(&attack);
    seen(&repo)
}

#[test]
fn python_tuf_refuses_every_attack_the_attack_tests_publish() {
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "timestamp replayed",
            with(json!({"replay": [{"generation": 1, "file": "timestamp.json"}]})),
            "New timestamp version 1 must be >= 2",
        ),
        (
            "timestamp re-signed lower",
            with(json!({"versions": {"timestamp": 1}})),
            "New timestamp version 1 must be >= 2",
        ),
        (
            "snapshot rollback",
            with(json!({"versions": {"snapshot": 1}})),
            "New snapshot version must be >= 2",
        ),
        (
            "targets rollback",
            with(json!({"versions": {"targets": 1}})),
            "BadVersionNumberError",
        ),
        (
            "freeze",
            with(json!({"expires": {"timestamp": "-1h"}})),
            "timestamp.json is expired",
        ),
        (
            "bad signature",
            with(json!({"bad_signature": ["targets"]})),
            "targets was signed by 0/1 keys",
        ),
        (
            "key not in root",
            with(json!({"sign_with": {"targets": ["rogue"]}})),
            "targets was signed by 0/1 keys",
        ),
        (
            "below threshold",
            with(
                json!({"roles": {"targets": {"keys": ["targets", "targets2"], "threshold": 2}},
                        "sign_with": {"targets": ["targets"]}}),
            ),
            "targets was signed by 1/2 keys",
        ),
        (
            "mix and match",
            with(
                json!({"replay": [{"generation": 2, "file": "2.targets.json", "as": "3.targets.json"}]}),
            ),
            "Expected targets v3, got v2",
        ),
        (
            "forged root",
            with(json!({"roles": {"root": {"keys": ["root2"]}}, "sign_with": {"root": ["root2"]}})),
            "root was signed by 0/1 keys",
        ),
        (
            "snapshot missing",
            with(json!({"delete": ["3.snapshot.json"]})),
            "404",
        ),
    ];
    for (what, attack, error) in cases {
        let v = after(attack);
        let got = v.refresh.clone().unwrap_or_default();
        assert!(got.contains(error), "{what}: python-tuf said {v:?}");
    }
}

#[test]
fn python_tuf_accepts_rotation_expired_unused_roles_and_succinct_roles() {
    // A valid root rotation: 2.root.json signed by the old and the new root key.
    let v = after(with(json!({"roles": {"root": {"keys": ["root2"]}}})));
    assert_eq!(v.refresh, None, "{v:?}");
    assert_eq!(v.sha256("demo/app:v1"), Some("01".repeat(32)));
    // An expired delegated role fails only the lookups that need it.
    let v = after(with(json!({"expires": {"releases": "-1h"}})));
    assert_eq!(v.refresh, None, "{v:?}");
    assert_eq!(v.sha256("demo/app:v1"), Some("01".repeat(32)));
    let err = v.targets["demo/app:v2"]["error"].as_str().unwrap_or("");
    assert!(err.contains("expired"), "{v:?}");
    // TAP 15 succinct_roles: python-tuf finds targets in the bins.
    let repo = TufRepo::new(&json!({
        "succinct": {"keys": ["bins"], "bit_length": 4, "name_prefix": "bin",
                     "targets": {"demo/app:v1": fake_target(1)}}
    }));
    let v = repo.reference(&["demo/app:v1"]);
    assert_eq!(v.sha256("demo/app:v1"), Some("01".repeat(32)), "{v:?}");
}

#[test]
fn repository_goes_offline_and_comes_back_on_the_same_url() {
    let mut repo = TufRepo::new(&honest());
    let url = format!("{}timestamp.json", repo.metadata_url());
    assert_eq!(http_status(&url, &[]), Some(200));
    repo.stop();
    assert_eq!(http_status(&url, &[]), None);
    repo.start();
    assert_eq!(http_status(&url, &[]), Some(200));
    // Without consistent snapshots the files have no version in their names.
    let plain = TufRepo::new(&with(json!({"consistent_snapshot": false})));
    for f in [
        "1.root.json",
        "snapshot.json",
        "targets.json",
        "releases.json",
    ] {
        assert!(plain.metadata_dir().join(f).exists(), "{f}");
    }
    assert_eq!(
        plain.reference(&["demo/app:v2"]).sha256("demo/app:v2"),
        Some("02".repeat(32))
    );
    // The proxy config names the repository and the pinned root.
    let reg = Registry::start(RegistryAuth::None);
    let cfg = repo.portcullis_config(&reg, "enforce");
    assert!(cfg.contains(&repo.metadata_url()), "{cfg}");
    assert!(
        cfg.contains(&repo.root_file().display().to_string()),
        "{cfg}"
    );
}
