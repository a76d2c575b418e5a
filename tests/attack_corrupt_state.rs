//! The persisted trust state (the TOFU root, last seen versions) is corrupted between two
//! checks. The check must refuse with a message that says how to reset it, and must never
//! silently fall back to trusting whatever root the server offers next (a second TOFU).

mod support;

use std::path::Path;

use support::evil_notary::{Key, Target, fixtures, gun, honest_control};

const HOW_TO_RESET: &[&str] = &["delete", "remove", "reset", "rm "];

/// Every regular file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else if p.is_file() {
            out.push(p);
        }
    }
    out
}

/// Checks once (trusted), applies `corrupt` to every state file, then serves an attacker's
/// self-consistent repository (new root key) and checks again.
async fn refused_after(corrupt: impl Fn(&Path)) {
    let (mut repo, v1) = fixtures::honest_repo();
    let c = honest_control(&fixtures::control(repo.publish(), &v1)).await;
    let env = &c.env;

    let state = files(&env.cache_dir());
    assert!(
        !state.is_empty(),
        "the check persisted nothing under [cache] dir"
    );
    for f in &state {
        corrupt(f);
    }
    repo.root_keys = vec![Key::root_for(&gun())];
    repo.targets_key = Key::ecdsa();
    repo.snapshot_key = Key::ecdsa();
    repo.timestamp_key = Key::ed25519();
    let evil = Target::manifest("v1", 666);
    repo.sign_tag("v1", evil.clone()).bump_all();
    let out = c.serve_and_check(&[repo.publish()], "v1").await;
    out.assert_refused(HOW_TO_RESET, None);
    out.assert_no_digest(&evil.digest());
    // Still refused on the next run: the failed check did not replace the state.
    let again = env.check("v1").await;
    again.assert_refused(HOW_TO_RESET, None);
    again.assert_no_digest(&evil.digest());
}

#[tokio::test]
async fn garbage_state_is_refused_with_reset_instructions() {
    refused_after(|f| std::fs::write(f, b"\x00garbage{{not json").unwrap()).await;
}

#[tokio::test]
async fn truncated_state_is_refused_with_reset_instructions() {
    refused_after(|f| {
        let len = std::fs::metadata(f).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(f).unwrap();
        file.set_len(len / 2).unwrap();
    })
    .await;
}

#[tokio::test]
async fn emptied_state_is_refused_with_reset_instructions() {
    refused_after(|f| std::fs::write(f, b"").unwrap()).await;
}

/// Only the stored trusted root is damaged (state layout of `trust::notary::state`:
/// `<cache>/notary/<escaped GUN>/root.json` next to `state.json`); the index still names it.
#[tokio::test]
async fn corrupted_trusted_root_is_refused_with_reset_instructions() {
    refused_after(|f| {
        if f.file_name().is_some_and(|n| n == "root.json") {
            std::fs::write(f, b"{\"signed\":{\"_type\":\"Root\"},\"signatures\":[]}").unwrap();
        }
    })
    .await;
}

/// The stored trusted root is removed: not a reason to trust on first use again.
#[tokio::test]
async fn missing_trusted_root_is_refused_with_reset_instructions() {
    refused_after(|f| {
        if f.file_name().is_some_and(|n| n == "root.json") {
            std::fs::remove_file(f).unwrap();
        }
    })
    .await;
}
