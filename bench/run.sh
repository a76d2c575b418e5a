#!/usr/bin/env bash
# Portcullis benchmark: direct registry vs Portcullis vs nginx, ratios to direct.
# Usage: bench/run.sh            (full: 512 MiB blob, 3 rounds; ~10 min on 2 shared cores)
#        QUICK=1 bench/run.sh    (smoke: 64 MiB blob, 1 round)
#        bench/run.sh cache      (the blob cache vs the registry's proxy: mode, nginx, direct;
#                                 bench/cache.py, writes bench/results/<timestamp>-cache.md)
# Writes bench/results/<timestamp>.md and prints the table. See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${PC_BIN:-}" ]]; then
  cargo build --release --quiet
fi
case "${1:-}" in
  "") exec python3 bench/bench.py ;;
  cache) exec python3 bench/cache.py ;;
  *) echo "usage: bench/run.sh [cache]" >&2; exit 2 ;;
esac
