#!/usr/bin/env bash
# THE test command: installs what the tests need, then format check, clippy, cargo-deny, and the whole suite
# (unit tests and integration tests that start real registries, notary servers and clients).
#   scripts/test.sh                  everything
#   scripts/test.sh -- NAME          pass NAME (a test-name filter) and anything after `--` to cargo test
# Environment: TEST_THREADS (default 2: tests start real daemons and the machine has 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { printf '\n[test.sh] === %s (%ss)\n' "$*" "$(( $(date +%s) - start ))" >&2; }

# The build and the test binaries need several GB; say so plainly before cargo fails on ENOSPC.
free_kb=$(df -Pk . | awk 'NR==2 {print $4}')
if [ "${free_kb:-0}" -lt $((4 * 1024 * 1024)) ]; then
  echo "[test.sh] WARNING: only $((free_kb / 1024)) MiB free on $(pwd); the build needs about 4 GiB" >&2
fi

step "install test dependencies"
scripts/install-test-deps.sh

extra=()
if [ "${1:-}" = "--" ]; then shift; extra=("$@"); fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

step "cargo deny check bans licenses sources"
# deny.toml: aws-lc-rs the one crypto provider (ring, openssl, native-tls banned), the licences
# allowed, crates.io only. Advisories are left out: their database is on GitHub (see deny.toml).
cargo deny --locked check bans licenses sources

step "cargo test"
# Real daemons need time, not CPU; 2 threads keep the 2-core machine responsive.
# The harness prints the tail of a daemon's log when something fails.
cargo test --locked --no-fail-fast -- --test-threads="${TEST_THREADS:-2}" "${extra[@]}"

step "done in $(( $(date +%s) - start ))s"
