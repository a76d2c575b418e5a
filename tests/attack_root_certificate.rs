//! The root key is a certificate, and notary checks it (`ValidateRoot`): its CN must be the
//! GUN, and it must be within its validity window, whatever root.json's own `expires` says.

mod support;

use support::evil_notary::{Env, EvilNotary, fixtures, honest_control};

#[tokio::test]
async fn root_certificate_for_the_gun_is_trusted() {
    honest_control(&fixtures::honest()).await;
}

/// A root certificate whose CN is another GUN (a root lifted from another repository).
#[tokio::test]
async fn root_certificate_cn_not_the_gun_is_refused() {
    let f = fixtures::root_cn_mismatch();
    let server = EvilNotary::serving(&f.publication).await;
    let out = Env::new(&server.url()).check(f.tag).await;
    out.assert_refused(&["cn", "common name", "gun", "certificate"], Some("root"));
    out.assert_no_digest(&f.target.digest());
}

/// The certificate expired yesterday; root.json itself would be valid for ten more years.
#[tokio::test]
async fn root_certificate_expired_under_valid_root_json_is_refused() {
    let f = fixtures::root_cert_expired();
    let server = EvilNotary::serving(&f.publication).await;
    let out = Env::new(&server.url()).check(f.tag).await;
    out.assert_refused(&["certificate", "cert "], Some("root"));
    out.assert_no_digest(&f.target.digest());
}

/// The certificate is not valid until two days from now (notary allows one day of skew).
#[tokio::test]
async fn root_certificate_not_yet_valid_is_refused() {
    let (mut repo, v1) = fixtures::honest_repo();
    let now = time::OffsetDateTime::now_utc();
    repo.root_keys = vec![support::evil_notary::Key::root_cert(
        &support::evil_notary::gun(),
        now + time::Duration::days(2),
        now + time::Duration::days(3650),
    )];
    let server = EvilNotary::serving(&repo.publish()).await;
    let out = Env::new(&server.url()).check("v1").await;
    out.assert_refused(&["certificate", "cert "], Some("root"));
    out.assert_no_digest(&v1.digest());
}
