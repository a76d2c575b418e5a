//! A newcomer's mistakes in the config stop `portcullis` at start, with one message that names
//! the key to fix and the absolute path of the file involved (README "Configuration").
//!
//! Each test runs the built binary on a bad config and checks the exit code and stderr; none of
//! them gets as far as listening on a port.

use std::path::Path;
use std::process::{Command, Output};

/// A registry entry that passes validation; tests add the mistake around it.
const REGISTRY: &str =
    "[[registries]]\nname = \"127.0.0.1:5000\"\nupstream = \"http://127.0.0.1:5000\"\n";

/// Runs `portcullis ARGS` in `cwd` with no `PORTCULLIS_*` variables but `env`.
fn portcullis(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cmd.args(args).current_dir(cwd);
    for (k, _) in std::env::vars() {
        if k.starts_with("PORTCULLIS_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run the portcullis binary")
}

/// Asserts a start-up failure and returns stderr.
fn fails(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "exit code; stderr:\n{stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout");
    stderr
}

/// `portcullis serve -c portcullis.toml` in `dir`, which must fail at start: its stderr.
fn serve_fails(dir: &Path, env: &[(&str, &str)]) -> String {
    fails(&portcullis(dir, &["serve", "-c", "portcullis.toml"], env))
}

/// A tempdir holding `portcullis.toml` with `text`, whose state goes to a cache dir inside it.
fn config(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let text = format!("[cache]\ndir = {:?}\n{text}", cache.display().to_string());
    std::fs::write(dir.path().join("portcullis.toml"), text).unwrap();
    dir
}

#[test]
fn a_typo_in_a_key_is_named_once_with_a_suggestion_and_the_absolute_path() {
    let dir = config(&format!("[server]\nlistn = \"127.0.0.1:5050\"\n{REGISTRY}"));
    // A relative --config, from the parent directory: the message still names the file by its
    // absolute path.
    let parent = dir.path().parent().unwrap();
    let rel = format!(
        "{}/portcullis.toml",
        dir.path().file_name().unwrap().to_str().unwrap()
    );
    let err = fails(&portcullis(parent, &["serve", "--config", &rel], &[]));
    let abs = dir.path().join("portcullis.toml");
    let want = format!(
        "portcullis: config key `server.listn`: unknown; did you mean `listen`? (in {})\n",
        abs.display()
    );
    assert_eq!(err, want, "exactly one line, in the README's form");
}

#[test]
fn a_toml_syntax_error_names_the_file_and_the_spot() {
    let dir = config(&format!("[server\n{REGISTRY}"));
    let err = serve_fails(dir.path(), &[]);
    let want = format!(
        "portcullis: config file {}: TOML parse error at line",
        dir.path().join("portcullis.toml").display()
    );
    assert!(err.starts_with(&want), "{err}");
}

#[test]
fn a_typo_in_an_environment_variable_names_the_variable() {
    let dir = config(REGISTRY);
    let err = serve_fails(dir.path(), &[("PORTCULLIS_CACHE__DRI", "/srv")]);
    assert!(
        err.contains("config key `cache.dri`: unknown; did you mean `dir`?"),
        "{err}"
    );
    assert!(err.contains("PORTCULLIS_CACHE__DRI"), "{err}");
}

#[test]
fn a_bad_value_names_its_key_inside_the_registries_array() {
    let dir = config(&format!("{REGISTRY}mode = \"loose\"\n"));
    let err = serve_fails(dir.path(), &[]);
    assert!(
        err.contains(
            "config key `registries[0].mode`: `loose` is not one of `enforce`, `audit`, `skip`"
        ),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Every file the config names, missing: each error names the key and the absolute path.
#[test]
fn each_missing_file_is_named_by_key_and_absolute_path() {
    let cases: [(&str, &str, &str); 6] = [
        (
            "server.tls_cert",
            "[server]\ntls_cert = \"missing.pem\"\ntls_key = \"missing.pem\"\n",
            "",
        ),
        (
            "server.client_auth.htpasswd",
            "[server]\nclient_auth = { mode = \"basic\", htpasswd = \"missing.pem\" }\n",
            "",
        ),
        ("registries[0].ca_file", "", "ca_file = \"missing.pem\"\n"),
        (
            "registries[0].auth.password_file",
            "",
            "[registries.auth]\nusername = \"u\"\npassword_file = \"missing.pem\"\n",
        ),
        (
            "registries[0].notary.ca_file",
            "",
            "[registries.notary]\nserver = \"https://127.0.0.1:4443\"\nca_file = \"missing.pem\"\n",
        ),
        (
            "registries[0].notary.trust_pinning.ca.\"127.0.0.1:5000/\"",
            "",
            "[registries.notary]\nserver = \"https://127.0.0.1:4443\"\n\
             [registries.notary.trust_pinning.ca]\n\"127.0.0.1:5000/\" = \"missing.pem\"\n",
        ),
    ];
    for (key, before, after) in cases {
        let dir = config(&format!("{before}{REGISTRY}{after}"));
        let missing = dir.path().join("missing.pem");
        for sub in [
            &["serve", "-c", "portcullis.toml"][..],
            &["check", "-c", "portcullis.toml", "127.0.0.1:5000/a:v1"],
        ] {
            let err = fails(&portcullis(dir.path(), sub, &[]));
            let want = format!(
                "config key `{key}`: cannot read {}: No such file or directory",
                missing.display()
            );
            assert!(err.contains(&want), "{sub:?}: want {want:?} in:\n{err}");
            assert!(!err.contains("unreachable"), "{err}");
        }
    }
}

/// A file that exists but holds no certificate is named by key and path too (it is parsed
/// where it is used, after the listeners are bound: here on ports the kernel picks).
#[test]
fn a_tls_cert_without_a_certificate_is_named() {
    let dir = config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
         tls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n{REGISTRY}"
    ));
    std::fs::write(dir.path().join("cert.pem"), "not a certificate\n").unwrap();
    std::fs::write(dir.path().join("key.pem"), "not a key\n").unwrap();
    let err = serve_fails(dir.path(), &[]);
    let want = format!(
        "config key `server.tls_cert`: {} holds no PEM certificate",
        dir.path().join("cert.pem").display()
    );
    assert!(err.contains(&want), "{err}");
}

#[test]
fn a_cache_dir_that_cannot_be_written_stops_the_start() {
    let dir = config(REGISTRY);
    let err = serve_fails(dir.path(), &[("PORTCULLIS_CACHE__DIR", "/proc/nope")]);
    assert!(
        err.contains("config key `cache.dir`: /proc/nope is not usable as a writable directory"),
        "{err}"
    );
    // A file where the directory should be.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let err = serve_fails(
        dir.path(),
        &[("PORTCULLIS_CACHE__DIR", file.to_str().unwrap())],
    );
    assert!(err.contains("config key `cache.dir`"), "{err}");
    assert!(err.contains(&file.display().to_string()), "{err}");
}

#[test]
fn no_config_says_that_no_file_was_read() {
    let dir = tempfile::tempdir().unwrap();
    let err = fails(&portcullis(dir.path(), &["serve"], &[]));
    assert!(err.contains("config key `registries`"), "{err}");
    assert!(err.contains("no config file was read"), "{err}");
    assert!(err.contains("no --config was given"), "{err}");
    assert!(err.contains("/etc/portcullis/portcullis.toml"), "{err}");
    // A --config that names nothing is not silently skipped.
    let err = fails(&portcullis(dir.path(), &["serve", "-c", "nope.toml"], &[]));
    let want = format!(
        "config key `--config`: {} does not exist",
        dir.path().join("nope.toml").display()
    );
    assert!(err.contains(&want), "{err}");
}

#[test]
fn every_subcommand_explains_config() {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["serve", "check", "config"] {
        let out = portcullis(dir.path(), &[sub, "--help"], &[]);
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.contains("--config <CONFIG>"))
            .unwrap_or_else(|| panic!("{sub} --help has no --config:\n{text}"));
        assert!(line.contains("Config file"), "{sub}: {line}");
    }
}

/// `offline_grace` loosens verification: a value that does not parse, or an unbounded one, stops
/// the start with the key named, rather than being read as "no grace" or "forever".
#[test]
fn offline_grace_must_be_a_bounded_duration() {
    let notary = "[registries.notary]\nserver = \"https://127.0.0.1:4443\"\ntrust_pinning = { tofu = true }\n";
    for (value, want) in [
        ("thirty days", "is not a duration like \"30d\""),
        ("5y", "must be at most 366d"),
    ] {
        let dir = config(&format!("{REGISTRY}{notary}offline_grace = \"{value}\"\n"));
        let err = serve_fails(dir.path(), &[]);
        assert!(
            err.contains("config key `registries[0].notary.offline_grace`") && err.contains(want),
            "{value}: {err}"
        );
    }
}
