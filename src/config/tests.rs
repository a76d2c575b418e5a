//! Unit tests of `Config` (kept apart so `config.rs` stays a readable size).

use super::*;

fn parse(toml: &str) -> Result<Config, ConfigError> {
    let cfg: Config = Figment::from(Serialized::defaults(Config::default()))
        .merge(Toml::string(toml))
        .extract()
        .map_err(diagnose::from_figment)?;
    cfg.validate()?;
    Ok(cfg)
}

const ONE: &str = r#"
    [[registries]]
    name = "127.0.0.1:5000"
    upstream = "http://127.0.0.1:5000"
    default = true
"#;

#[test]
fn minimal_config_has_safe_defaults() {
    let c = parse(ONE).unwrap();
    assert!(c.server.listen.ip().is_loopback());
    assert_eq!(c.registries[0].mode, Mode::Enforce);
    assert_eq!(c.server.max_manifest_bytes, 4 << 20);
    assert!(c.registry(None).is_some());
    assert!(c.registry(Some("other:1")).is_none());
}

#[test]
fn non_loopback_without_client_auth_is_refused() {
    let e = parse(&format!("[server]\nlisten = \"0.0.0.0:5050\"\n{ONE}")).unwrap_err();
    assert!(e.to_string().contains("server.client_auth"), "{e}");
    let ok = parse(&format!(
        "[server]\nlisten = \"0.0.0.0:5050\"\nclient_auth = {{ mode = \"passthrough\" }}\n{ONE}"
    ));
    assert!(ok.is_ok());
}

#[test]
fn errors_name_the_key() {
    let e = parse("[[registries]]\nname = \"a\"\nupstream = \"ftp://x\"\n").unwrap_err();
    assert!(e.to_string().contains("registries[0].upstream"), "{e}");
    let e = parse(&format!("{ONE}\nmode = \"loose\"")).unwrap_err();
    assert!(e.to_string().contains("loose"), "{e}");
    let e = parse("[server]\nlisten_typo = 1\n").unwrap_err();
    assert!(e.to_string().contains("listen_typo"), "{e}");
}

#[test]
fn passthrough_forbids_proxy_credentials() {
    let e = parse(&format!(
        "[server]\nclient_auth = {{ mode = \"passthrough\" }}\n{ONE}\n[registries.auth]\nusername = \"u\"\npassword_file = \"/p\"\n"
    ))
    .unwrap_err();
    assert!(e.to_string().contains("registries[0].auth"), "{e}");
}

#[test]
fn example_config_is_valid() {
    let text = include_str!("../../config/portcullis.toml");
    parse(text).unwrap();
}
