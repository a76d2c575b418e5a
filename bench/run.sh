#!/usr/bin/env bash
# Portcullis benchmark: direct registry vs Portcullis vs nginx, ratios to direct.
# Usage: bench/run.sh            (full: 512 MiB blob, 3 rounds; ~10 min on 2 shared cores)
#        QUICK=1 bench/run.sh    (smoke: 64 MiB blob, 1 round)
# Writes bench/results/<timestamp>.md and prints the table. See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${PC_BIN:-}" ]]; then
  cargo build --release --quiet
fi
exec python3 bench/bench.py
