//! Reports on standard output survive a reader that went away (`portcullis check IMAGE | head
//! -1`): the command finishes, says nothing about the closed pipe and exits with its verdict.
//! `println!` would panic there (exit 101, a backtrace hint on stderr), which turns a refusal
//! into a crash for a script that reads only the first line.

use std::process::{Command, Output};

/// Runs `portcullis ARGS` with standard output a pipe whose reading end is already closed.
fn run_into_closed_pipe(dir: &std::path::Path, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cmd.args(args).current_dir(dir).stdout(writer);
    for (k, _) in std::env::vars() {
        if k.starts_with("PORTCULLIS_") {
            cmd.env_remove(k);
        }
    }
    cmd.output().expect("run the portcullis binary")
}

/// A config whose registry has no trust source: `check` refuses (exit 1) without the network.
fn config() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[cache]\ndir = {:?}\n[[registries]]\nname = \"127.0.0.1:5000\"\nupstream = \"http://127.0.0.1:1\"\n",
        dir.path().join("cache").display().to_string()
    );
    std::fs::write(dir.path().join("portcullis.toml"), text).unwrap();
    dir
}

#[test]
fn check_into_a_closed_pipe_exits_with_its_verdict_and_no_panic() {
    let dir = config();
    for args in [
        &["check", "-c", "portcullis.toml", "127.0.0.1:5000/a:v1"][..],
        &[
            "check",
            "-c",
            "portcullis.toml",
            "--json",
            "127.0.0.1:5000/a:v1",
        ][..],
    ] {
        let out = run_into_closed_pipe(dir.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: refused = 1; stderr:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("standard output"), "{args:?}: {stderr}");
    }
}

#[test]
fn config_into_a_closed_pipe_exits_zero_and_no_panic() {
    let dir = config();
    let out = run_into_closed_pipe(
        dir.path(),
        &["config", "-c", "portcullis.toml", "containerd"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
