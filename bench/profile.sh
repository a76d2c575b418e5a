#!/usr/bin/env bash
# perf profile of Portcullis streaming a blob; writes bench/results/profile-<timestamp>/.
# Usage: bench/profile.sh   (STREAMS=8 REPEAT=2 BLOB_MIB=256 bench/profile.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${PC_BIN:-}" ]]; then cargo build --release --quiet; fi
exec python3 bench/profile.py
