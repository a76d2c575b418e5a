//! A delegation may only sign target names under its `paths` (notary enforces the prefixes;
//! TUF 5.6.7). `targets/releases` with paths `["prod/"]` signing `v1` is ignored for `v1`.

mod support;

use support::evil_notary::{Env, EvilNotary, Pinning, fixtures, honest_control_with};

/// Control: paths `[""]` covers everything, and Docker's order takes the release.
#[tokio::test]
async fn release_inside_its_paths_is_trusted() {
    let f = fixtures::delegation_inside_paths();
    honest_control_with(&f, Pinning::Tofu, "targets/releases").await;
}

/// Only the out-of-paths release signs `v1`: it is signed nowhere that counts.
#[tokio::test]
async fn release_outside_its_paths_is_refused() {
    let (f, rel) = fixtures::delegation_outside_paths(false);
    let server = EvilNotary::serving(&f.publication).await;
    let out = Env::new(&server.url()).check(f.tag).await;
    out.assert_refused(&["not signed", "path", "no trust data", "unsigned"], None);
    out.assert_no_digest(&rel.digest());
}

/// `targets` also signs `v1` (other content): the answer is targets' digest, never the
/// out-of-paths release's.
#[tokio::test]
async fn release_outside_its_paths_falls_back_to_targets() {
    let (f, rel) = fixtures::delegation_outside_paths(true);
    let server = EvilNotary::serving(&f.publication).await;
    let out = Env::new(&server.url()).check(f.tag).await;
    out.assert_trusted(&f.target.digest(), "targets");
    out.assert_no_digest(&rel.digest());
    // The line that names the digest names `targets`, not the release (each role's expiry
    // may be listed elsewhere in the output).
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains(&f.target.digest()))
        .unwrap_or_default();
    assert!(!line.contains("targets/releases"), "{out:#?}");
}
