//! The binary's allocator is mimalloc with its arenas committed lazily (`.cargo/config.toml`).
//! Committed eagerly (mimalloc's default on Linux), freed memory stays in RSS: 256 concurrent
//! streams peaked at 92-97 MiB instead of 44-63 (bench/PROFILE.md section 5). The define is a
//! build setting a `CFLAGS` of one's own silently replaces, so the binary itself is asked:
//! mimalloc prints its options when `MIMALLOC_VERBOSE=1`.

use std::process::Command;

#[test]
fn the_binary_runs_mimalloc_v2_with_lazily_committed_arenas() {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("--version")
        .env("MIMALLOC_VERBOSE", "1")
        .env_remove("MIMALLOC_ARENA_EAGER_COMMIT")
        .output()
        .expect("run portcullis --version");
    assert!(out.status.success(), "portcullis --version failed: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mimalloc: v2."),
        "the global allocator is not mimalloc v2 (src/main.rs, Cargo.toml); stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("option 'arena_eager_commit': 0"),
        "mimalloc was built with eager arena commit: was CFLAGS overridden? \
         .cargo/config.toml sets -DMI_DEFAULT_ARENA_EAGER_COMMIT=0; stderr:\n{stderr}"
    );
}
