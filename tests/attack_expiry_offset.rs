//! `expires` written with a local offset, as notary clients write client-signed roles
//! (`-08:00` ... `+08:00` occur in the wild): valid RFC 3339, and compared as an instant. A
//! verifier comparing the wall-clock digits would accept the first refusal below and refuse
//! the acceptance.

mod support;

use support::evil_notary::{Env, EvilNotary, Role, fixtures, honest_control};

/// Expires one hour from now, written in -07:00: its digits are seven hours "earlier" than
/// now in UTC, yet it is in the future.
#[tokio::test]
async fn expiry_ahead_written_minus_seven_is_trusted() {
    let f = fixtures::targets_expiry_with_offset(1, -7);
    assert!(
        f.publication.files["targets"]
            .windows(6)
            .any(|w| w == b"-07:00")
    );
    honest_control(&f).await;
}

/// Expired one hour ago, written in +07:00: its digits are six hours "after" now in UTC.
#[tokio::test]
async fn expiry_past_written_plus_seven_is_refused() {
    let f = fixtures::targets_expiry_with_offset(-1, 7);
    let server = EvilNotary::serving(&f.publication).await;
    let out = Env::new(&server.url()).check(f.tag).await;
    out.assert_refused(&["expired"], Some("targets"));
    out.assert_no_digest(&f.target.digest());
}

/// `expires` without an offset is not RFC 3339: a parser that read it as local time (or as
/// UTC) would accept a date whose instant nobody signed for. Refused.
#[tokio::test]
async fn expiry_without_offset_is_refused() {
    let (mut repo, v1) = fixtures::honest_repo();
    repo.before_sign.push((
        Role::Targets,
        Box::new(|s: &mut serde_json::Value| s["expires"] = "2099-01-01T00:00:00".into()),
    ));
    let server = EvilNotary::serving(&repo.publish()).await;
    let out = Env::new(&server.url()).check("v1").await;
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(out.text().contains("targets"), "{out:#?}");
    out.assert_no_digest(&v1.digest());
}
