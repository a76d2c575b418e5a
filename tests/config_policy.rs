//! `[trust.<name>]`, `[[policy]]` and `[signatures]` (README "Signatures on the digest"): each
//! mistake is one config error naming its key; a config without them loads as before.

use portcullis::config::{Config, Mode, TrustSourceConfig};

const REGISTRY: &str = "[[registries]]\nname = \"registry.example.com\"\nupstream = \"https://registry.example.com\"\n";

const SOURCES: &str = r#"
[trust.notary-prod]
type = "notary"
server = "https://notary.example.com:4443"
trust_pinning = { tofu = true }

[trust.ci-key]
type = "cosign-key"
keys = ["/etc/portcullis/cosign/ci.pub"]
transparency_log = "not-required"
"#;

fn load(text: &str) -> Result<Config, String> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("portcullis.toml");
    std::fs::write(&p, text).unwrap();
    Config::load(Some(&p)).map_err(|e| e.to_string())
}

fn refused(text: &str, needles: &[&str]) {
    let e = load(text).expect_err(text);
    for n in needles {
        assert!(e.contains(n), "{n:?} not in: {e}");
    }
}

#[test]
fn named_sources_and_an_any_of_policy_load() {
    let c = load(&format!(
        "{REGISTRY}{SOURCES}\n[[policy]]\nrepositories = [\"registry.example.com/team/*\"]\nmode = \"audit\"\nany_of = [\"notary-prod\", \"ci-key\"]\n"
    ))
    .unwrap();
    assert!(matches!(
        c.trust["notary-prod"],
        TrustSourceConfig::Notary(_)
    ));
    assert!(c.trust["notary-prod"].binds_tags());
    assert!(!c.trust["ci-key"].binds_tags());
    let r = c.rule_for("registry.example.com", "team/app").unwrap();
    assert_eq!(r.any_of, ["notary-prod", "ci-key"]);
    assert_eq!(r.mode, Some(Mode::Audit));
    assert!(c.rule_for("registry.example.com", "other/app").is_none());
    assert!(
        c.rule_for("registry.example.com", "team/app/deep")
            .is_none()
    );
    assert_eq!(c.signatures.recheck(), std::time::Duration::from_secs(300));
}

#[test]
fn without_policy_nothing_changes() {
    let c = load(REGISTRY).unwrap();
    assert!(c.trust.is_empty() && c.policy.is_empty());
    assert!(c.rule_for("registry.example.com", "team/app").is_none());
}

#[test]
fn an_unknown_source_name_is_an_error_naming_it() {
    refused(
        &format!(
            "{REGISTRY}{SOURCES}\n[[policy]]\nrepositories = [\"registry.example.com/team/*\"]\nany_of = [\"ci-key\", \"relase\"]\n"
        ),
        &["policy[0].any_of", "\"relase\"", "ci-key, notary-prod"],
    );
    refused(
        &format!(
            "{REGISTRY}{SOURCES}\n[[policy]]\nrepositories = [\"registry.example.com/team/*\"]\nall_of = [\"nope\"]\n"
        ),
        &["policy[0].all_of", "\"nope\""],
    );
}

#[test]
fn unknown_keys_and_types_are_errors_naming_them() {
    refused(
        &format!(
            "{REGISTRY}[trust.k]\ntype = \"cosign-key\"\nkeys = [\"/k.pub\"]\ntransparency_log = \"not-required\"\nkeyz = 1\n"
        ),
        &["trust.k", "keyz"],
    );
    refused(
        &format!("{REGISTRY}[trust.k]\ntype = \"gpg\"\n"),
        &["trust.k", "gpg"],
    );
    refused(
        &format!("{REGISTRY}[trust.n]\ntype = \"notary\"\nserver = \"https://n\"\nserverr = 1\n"),
        &["trust.n", "serverr"],
    );
    refused(
        &format!(
            "{REGISTRY}{SOURCES}\n[[policy]]\nrepositories = [\"registry.example.com/team/*\"]\nany_of = [\"ci-key\"]\nanyof = []\n"
        ),
        &["policy", "anyof"],
    );
}

#[test]
fn rules_must_say_something() {
    refused(
        &format!(
            "{REGISTRY}{SOURCES}\n[[policy]]\nrepositories = [\"registry.example.com/team/*\"]\n"
        ),
        &["policy[0].any_of", "at least one source"],
    );
    refused(
        &format!(
            "{REGISTRY}{SOURCES}\n[[policy]]\nrepositories = [\"team/*/\"]\nany_of = [\"ci-key\"]\n"
        ),
        &["policy[0].repositories", "<registry>/<repository glob>"],
    );
    refused(
        &format!("{REGISTRY}{SOURCES}\n[[policy]]\nrepositories = []\nany_of = [\"ci-key\"]\n"),
        &["policy[0].repositories"],
    );
    refused(
        &format!(
            "{REGISTRY}[trust.registry]\ntype = \"cosign-key\"\nkeys = [\"/k\"]\ntransparency_log = \"not-required\"\n"
        ),
        &["trust.registry", "reserved"],
    );
    refused(
        &format!("{REGISTRY}[trust.k]\ntype = \"cosign-key\"\nkeys = []\n"),
        &["trust.k.keys"],
    );
    refused(
        &format!("{REGISTRY}[signatures]\nrecheck_interval = \"soon\"\n"),
        &["signatures.recheck_interval"],
    );
    refused(
        &format!("{REGISTRY}[trust.n]\ntype = \"notary\"\nserver = \"ftp://n\"\n"),
        &["trust.n.server"],
    );
}

#[test]
fn the_registry_name_means_its_own_source() {
    let c = load(&format!(
        "{REGISTRY}[registries.notary]\nserver = \"https://n.example\"\n{SOURCES}\n[[policy]]\nrepositories = [\"registry.example.com/**\"]\nany_of = [\"registry\", \"ci-key\"]\n"
    ))
    .unwrap();
    assert_eq!(
        c.rule_for("registry.example.com", "a/b/c").unwrap().any_of[0],
        "registry"
    );
}

#[test]
fn offline_tag_memory_is_a_duration_on_a_rule_with_a_signature_source() {
    let rule = |extra: &str, any_of: &str| {
        format!(
            "{REGISTRY}{SOURCES}\n[[policy]]\nrepositories = [\"registry.example.com/team/*\"]\nany_of = [{any_of}]\n{extra}\n"
        )
    };
    let c = load(&rule("offline_tag_memory = \"7d\"", "\"ci-key\"")).unwrap();
    let r = c.rule_for("registry.example.com", "team/app").unwrap();
    assert_eq!(
        r.offline_tag_memory(),
        Some(std::time::Duration::from_secs(7 * 86400))
    );
    // Off unless set.
    let c = load(&rule("", "\"ci-key\"")).unwrap();
    assert_eq!(
        c.rule_for("registry.example.com", "team/app")
            .unwrap()
            .offline_tag_memory(),
        None
    );
    refused(
        &rule("offline_tag_memory = \"soon\"", "\"ci-key\""),
        &["policy[0].offline_tag_memory", "not a duration"],
    );
    refused(
        &rule("offline_tag_memory = \"0s\"", "\"ci-key\""),
        &["policy[0].offline_tag_memory"],
    );
    // Notary binds its own tags (and works offline from its metadata): nothing to remember.
    refused(
        &rule("offline_tag_memory = \"7d\"", "\"notary-prod\""),
        &["policy[0].offline_tag_memory", "cosign or notation source"],
    );
}
