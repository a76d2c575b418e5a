//! The binary's allocator is jemalloc with the options `.cargo/config.toml` compiles into it:
//! a background thread that purges freed pages on a timer, a one-second decay, thread caches up
//! to 256 KiB. Without them an idle Portcullis keeps what its last burst of pulls freed
//! (bench/PROFILE.md section 7). They are a build setting (`JEMALLOC_SYS_WITH_MALLOC_CONF`) that
//! a build outside this repository's cargo config silently loses, so the binary itself is
//! asked: jemalloc prints the options it read when `confirm_conf` is set.

use std::process::Command;

/// What `.cargo/config.toml` sets; jemalloc echoes the string it was built with.
const BUILT_IN: &str = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,tcache_max:262144,tcache_nslots_large:4";

#[test]
fn the_binary_runs_jemalloc_with_the_built_in_options() {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("--version")
        // The `_rjem_` prefix of tikv-jemalloc-sys: the unprefixed MALLOC_CONF is glibc's
        // business and is not read.
        .env("_RJEM_MALLOC_CONF", "confirm_conf:true")
        .env_remove("MALLOC_CONF")
        .output()
        .expect("run portcullis --version");
    assert!(out.status.success(), "portcullis --version failed: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "(string specified via --with-malloc-conf): \"{BUILT_IN}\""
        )),
        "jemalloc was not built with the repository's options (was JEMALLOC_SYS_WITH_MALLOC_CONF \
         overridden, or is the global allocator not jemalloc?); stderr:\n{stderr}"
    );
    for opt in BUILT_IN.split(',') {
        assert!(
            stderr.contains(&format!("-- Set conf value: {opt}")),
            "jemalloc did not take {opt}; stderr:\n{stderr}"
        );
    }
}
