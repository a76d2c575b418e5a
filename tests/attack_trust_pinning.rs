//! Trust pinning (`trust_pinning.certs`, `tofu = false`): only a root whose certificate key
//! ID is pinned for the GUN is trusted, even on first contact; without a pin and without TOFU
//! nothing is trusted.

mod support;

use support::evil_notary::{Env, EvilNotary, Key, Pinning, fixtures, gun, honest_control_with};

const NOT_PINNED: &[&str] = &["pin", "not trusted", "untrusted", "certs"];

fn pin(ids: Vec<String>) -> Pinning {
    Pinning::Certs {
        glob: "127.0.0.1:5000/demo/*".to_string(),
        ids,
    }
}

/// Pinned by the ID root.json lists for the certificate key (notary's `certsCheck`:
/// `CertBundleToKey(leaf).ID()`).
#[tokio::test]
async fn root_pinned_by_its_root_json_key_id_is_trusted() {
    let (repo, v1) = fixtures::honest_repo();
    let id = repo.root_keys[0].id();
    let control = fixtures::control(repo.publish(), &v1);
    honest_control_with(&control, pin(vec![id]), "targets").await;
}

/// Pinned by the canonical public-key ID (`notary key list`, Docker's doi-keys; testbed
/// samples/real README, fact 11).
#[tokio::test]
async fn root_pinned_by_its_canonical_public_key_id_is_trusted() {
    let (repo, v1) = fixtures::honest_repo();
    let id = repo.root_keys[0].canonical_id();
    assert_ne!(id, repo.root_keys[0].id());
    let control = fixtures::control(repo.publish(), &v1);
    honest_control_with(&control, pin(vec![id]), "targets").await;
}

/// The server offers a valid, self-consistent repository whose root is not the pinned one:
/// refused on first contact (no TOFU).
#[tokio::test]
async fn root_other_than_the_pinned_one_is_refused() {
    let pinned = Key::root_for(&gun());
    let (repo, v1) = fixtures::honest_repo();
    let server = EvilNotary::serving(&repo.publish()).await;
    let env = Env::with_pinning(&server.url(), pin(vec![pinned.id(), pinned.canonical_id()]));
    let out = env.check("v1").await;
    out.assert_refused(NOT_PINNED, Some("root"));
    out.assert_no_digest(&v1.digest());
}

/// No pin covers the GUN and TOFU is off: refused.
#[tokio::test]
async fn gun_without_pin_and_without_tofu_is_refused() {
    let (repo, v1) = fixtures::honest_repo();
    let server = EvilNotary::serving(&repo.publish()).await;
    let env = Env::with_pinning(
        &server.url(),
        Pinning::Certs {
            glob: "127.0.0.1:5000/other/*".to_string(),
            ids: vec![repo.root_keys[0].id()],
        },
    );
    let out = env.check("v1").await;
    out.assert_refused(
        &[NOT_PINNED, &["tofu", "trust on first use"]].concat(),
        None,
    );
    out.assert_no_digest(&v1.digest());
}
