//! systemd/portcullis.service is what `scripts/install.sh` installs: it must pass
//! `systemd-analyze verify`, keep its hardening (offline `systemd-analyze security` score), and
//! name the paths install.sh uses. Needs systemd-analyze (Debian: systemd); panics without it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn systemd_analyze() -> PathBuf {
    for dir in ["/usr/bin", "/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join("systemd-analyze");
        if p.exists() {
            return p;
        }
    }
    panic!(
        "systemd-analyze is not installed: this test cannot check systemd/portcullis.service. \
         Install it (Debian: apt-get install systemd) — scripts/install-test-deps.sh should."
    );
}

/// The shipped unit, with ExecStart pointing at the freshly built binary: verify checks that the
/// command exists, and /usr/local/bin/portcullis does not on a build machine.
fn unit_for_test(dir: &Path) -> PathBuf {
    let unit = std::fs::read_to_string(repo().join("systemd/portcullis.service")).unwrap();
    assert!(
        unit.contains(
            "ExecStart=/usr/local/bin/portcullis serve --config /etc/portcullis/portcullis.toml"
        ),
        "ExecStart must match what scripts/install.sh installs"
    );
    let unit = unit.replace(
        "/usr/local/bin/portcullis",
        env!("CARGO_BIN_EXE_portcullis"),
    );
    let path = dir.join("portcullis.service");
    std::fs::write(&path, unit).unwrap();
    path
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    let sa = systemd_analyze();
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_test(dir.path());
    let out = Command::new(&sa).arg("verify").arg(&unit).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    // verify exits 0 on some warnings; any line about our unit is a problem to fix
    let ours: Vec<_> = stderr
        .lines()
        .filter(|l| l.contains("portcullis"))
        .collect();
    assert!(
        ours.is_empty(),
        "systemd-analyze verify warns:\n{}",
        ours.join("\n")
    );
}

#[test]
fn unit_stays_hardened() {
    let sa = systemd_analyze();
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_test(dir.path());
    let out = Command::new(&sa)
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure score from systemd-analyze security:\n{text}"));
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the score in {line:?}"));
    // 1.4 when written; the network access a proxy needs costs about 1.0 of it.
    assert!(score <= 2.0, "exposure rose to {score}:\n{text}");
}

#[test]
fn unit_keeps_the_settings_the_brief_requires() {
    let unit = std::fs::read_to_string(repo().join("systemd/portcullis.service")).unwrap();
    for line in [
        "ProtectSystem=strict",
        "StateDirectory=portcullis",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "Restart=on-failure",
    ] {
        assert!(unit.contains(line), "portcullis.service lost {line:?}");
    }
    let install = std::fs::read_to_string(repo().join("scripts/install.sh")).unwrap();
    for path in [
        "/usr/local/bin/portcullis",
        "/etc/portcullis/portcullis.toml",
        "/etc/systemd/system/portcullis.service",
    ] {
        assert!(install.contains(path), "install.sh does not install {path}");
    }
}

#[test]
fn install_sh_stages_every_file() {
    let stage = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(repo().join("scripts/install.sh"))
        .args(["--binary", env!("CARGO_BIN_EXE_portcullis"), "--no-start"])
        .env("DESTDIR", stage.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "install.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "usr/local/bin/portcullis",
        "etc/portcullis/portcullis.toml",
        "etc/systemd/system/portcullis.service",
        "usr/lib/sysusers.d/portcullis.conf",
        "usr/local/share/doc/portcullis/deploy.md",
    ] {
        assert!(
            stage.path().join(f).is_file(),
            "install.sh did not install {f}"
        );
    }
    // the node config it installs is valid and keeps its state where the unit lets it write
    let cfg = portcullis::config::Config::load(Some(
        &stage.path().join("etc/portcullis/portcullis.toml"),
    ))
    .unwrap();
    assert_eq!(
        cfg.cache.dir,
        Path::new("/var/lib/portcullis"),
        "must match StateDirectory=portcullis"
    );
    // a second run keeps the operator's config
    std::fs::write(
        stage.path().join("etc/portcullis/portcullis.toml"),
        "# mine\n",
    )
    .unwrap();
    let again = Command::new("bash")
        .arg(repo().join("scripts/install.sh"))
        .args(["--binary", env!("CARGO_BIN_EXE_portcullis"), "--no-start"])
        .env("DESTDIR", stage.path())
        .output()
        .unwrap();
    assert!(again.status.success());
    assert_eq!(
        std::fs::read_to_string(stage.path().join("etc/portcullis/portcullis.toml")).unwrap(),
        "# mine\n"
    );
}
