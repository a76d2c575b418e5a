#!/usr/bin/env bash
# Portcullis benchmark: direct registry vs Portcullis vs nginx, ratios to direct.
# Usage: bench/run.sh            (full: 512 MiB blob, 3 rounds; ~10 min on 2 shared cores)
#        QUICK=1 bench/run.sh    (smoke: 64 MiB blob, 1 round)
#        bench/run.sh cache      (the blob cache vs the registry's proxy: mode, nginx, direct;
#                                 bench/cache.py, writes bench/results/<timestamp>-cache.md)
#        BINS="a=path,b=path" bench/run.sh ab
#                                (builds compared on one blob stream, uncached and cold fill:
#                                 hop CPU s/GB, MB/s, ratio to nginx; bench/ab.py)
#        bench/run.sh signatures [--iterations N] [--cold N] [--herd N]
#                                (keyless cosign .sig behind a [[policy]]: cached manifest by
#                                 tag vs direct, cold pulls, a herd of cold pulls; benches/
#                                 signatures.rs, writes bench/results/<timestamp>-signatures.md)
# Writes bench/results/<timestamp>.md and prints the table. See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${PC_BIN:-}" ]]; then
  cargo build --release --quiet
fi
case "${1:-}" in
  "") exec python3 bench/bench.py ;;
  cache) exec python3 bench/cache.py ;;
  ab) exec python3 bench/ab.py ;;
  # The harness starts the registry and the release proxy itself (tests/support/real). It is
  # run in the test profile (`cargo test --bench`): it only drives and times requests, the
  # same for direct and Portcullis, and a release build of it and its dev-dependencies would
  # cost another LTO build.
  signatures)
    PC_BIN=${PC_BIN:-${CARGO_TARGET_DIR:-target}/release/portcullis} \
      exec cargo test --quiet --bench signatures -- \
      --out "bench/results/$(date -u +%Y%m%dT%H%M%SZ)-signatures.md" "${@:2}" ;;
  *) echo "usage: bench/run.sh [cache|ab|signatures]" >&2; exit 2 ;;
esac
