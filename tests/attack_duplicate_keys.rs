//! Parser differential: the served targets.json names `v1` twice in one object, first as
//! other content, then as the signed content (the signature covers the canonical form of a
//! last-wins parse, as Go's decoder reads it). Refusing the document or resolving the signed
//! digest are both safe; resolving the first (unsigned) entry is the attack.

mod support;

use support::evil_notary::{Env, EvilNotary, Role, Target, fixtures, honest_control};

/// Control: the repository both attacks edit, served as signed, is trusted.
#[tokio::test]
async fn honest_repository_is_trusted() {
    honest_control(&fixtures::honest()).await;
}

#[tokio::test]
async fn duplicate_target_name_never_resolves_to_the_unsigned_entry() {
    let (mut repo, v1) = fixtures::honest_repo();
    let evil = Target::manifest("v1", 666);
    let evil_entry = format!(
        r#""v1":{{"hashes":{{"sha256":"{}"}},"length":{}}},"#,
        base64_of(&evil.sha256),
        evil.length
    );
    repo.edit_bytes.push((
        Role::Targets,
        Box::new(move |raw: Vec<u8>| {
            let text = String::from_utf8(raw).unwrap();
            let needle = r#""targets":{"v1":"#;
            assert!(text.contains(needle), "{text}");
            text.replacen(needle, &format!(r#""targets":{{{evil_entry}"v1":"#), 1)
                .into_bytes()
        }),
    ));
    let p = repo.publish();
    assert_eq!(
        std::str::from_utf8(p.get(Role::Targets))
            .unwrap()
            .matches(r#""v1":"#)
            .count(),
        2
    );
    let server = EvilNotary::serving(&p).await;
    let out = Env::new(&server.url()).check("v1").await;
    out.assert_no_digest(&evil.digest());
    match out.code {
        Some(0) => out.assert_trusted(&v1.digest(), "targets"),
        _ => assert_eq!(out.code, Some(1), "{out:#?}"),
    }
}

/// Two `signed` members in the envelope: the first carries other targets.
#[tokio::test]
async fn duplicate_signed_member_never_resolves_to_the_unsigned_one() {
    let (mut repo, v1) = fixtures::honest_repo();
    let evil = Target::manifest("v1", 666);
    let evil_signed = format!(
        r#"{{"_type":"Targets","delegations":{{"keys":{{}},"roles":[]}},"expires":"2099-01-01T00:00:00Z","targets":{{"v1":{{"hashes":{{"sha256":"{}"}},"length":{}}}}},"version":1}}"#,
        base64_of(&evil.sha256),
        evil.length
    );
    repo.edit_bytes.push((
        Role::Targets,
        Box::new(move |raw: Vec<u8>| {
            let text = String::from_utf8(raw).unwrap();
            text.replacen(
                r#"{"signed":"#,
                &format!(r#"{{"signed":{evil_signed},"signed":"#),
                1,
            )
            .into_bytes()
        }),
    ));
    let server = EvilNotary::serving(&repo.publish()).await;
    let out = Env::new(&server.url()).check("v1").await;
    out.assert_no_digest(&evil.digest());
    match out.code {
        Some(0) => out.assert_trusted(&v1.digest(), "targets"),
        _ => assert_eq!(out.code, Some(1), "{out:#?}"),
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
