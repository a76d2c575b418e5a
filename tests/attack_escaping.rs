//! Go HTML-escapes `<`, `>` and `&` when notary-server serialises an envelope, so the served
//! bytes of a targets file with such a target name differ from the canonical bytes that were
//! signed (testbed `samples/escaping/`). A verifier must re-canonicalise before verifying,
//! and hash the served bytes for snapshot and timestamp: both must hold here.

mod support;

use support::evil_notary::{Env, EvilNotary, Role, Target, fixtures, honest_control};

#[tokio::test]
async fn target_names_served_html_escaped_verify() {
    let f = fixtures::escaping();
    let served = std::str::from_utf8(f.publication.get(Role::Targets)).unwrap();
    assert!(served.contains(r"a\u003cb\u003e\u0026c-é"), "{served}");
    honest_control(&f).await;
}

/// The same repository with targets signed over the served, escaped bytes instead of the
/// canonical form: a verifier that checks the raw slice would accept it; notary does not.
#[tokio::test]
async fn signature_over_the_escaped_bytes_is_refused() {
    let (mut repo, v1) = fixtures::honest_repo();
    repo.sign_tag("a<b>&c-é", Target::manifest("escaped", 3));
    repo.sign_served_bytes.push(Role::Targets);
    let server = EvilNotary::serving(&repo.publish()).await;
    let out = Env::new(&server.url()).check("v1").await;
    out.assert_refused(&["signature", "threshold"], Some("targets"));
    out.assert_no_digest(&v1.digest());
}
