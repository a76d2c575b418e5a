#!/usr/bin/env bash
# Runs every fuzz target one after another (one fuzzer at a time: the machine has 2 shared
# cores), each for SECS seconds (default 600), and appends a summary line per target to
# fuzz/logs/summary.tsv: target, seconds, executions, new crash files, corpus size.
# Usage: fuzz/run-all.sh [target...]     SECS=60 fuzz/run-all.sh route
# Toolchain: TOOLCHAIN=+nightly by default; TOOLCHAIN= (empty) with RUSTC_BOOTSTRAP=1 uses
# stable (see fuzz/README.md).
set -uo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-600}
TC=${TOOLCHAIN-+nightly}
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  mapfile -t targets < <(cargo $TC fuzz list)
fi
mkdir -p fuzz/logs
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  before=$(ls "fuzz/artifacts/$t" | wc -l)
  extra=()
  [[ -d "fuzz/seeds/$t" ]] && extra+=("fuzz/seeds/$t")
  dict=""
  case $t in
    route) dict=fuzz/dicts/route.dict ;;
    auth_challenge) dict=fuzz/dicts/auth.dict ;;
    manifest_children) dict=fuzz/dicts/manifest.dict ;;
    notary_metadata|notary_canonical) dict=fuzz/dicts/notary.dict ;;
  esac
  args=(-max_total_time="$SECS" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048)
  [[ -n $dict ]] && args+=(-dict="$dict")
  echo "== $t for ${SECS}s ($(date -u +%H:%M:%S))"
  cargo $TC fuzz run "$t" "fuzz/corpus/$t" "${extra[@]}" -- "${args[@]}" \
    > "fuzz/logs/$t.log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "fuzz/logs/$t.log" | awk '{print $2}' | tail -1)
  after=$(ls "fuzz/artifacts/$t" | wc -l)
  corpus=$(ls "fuzz/corpus/$t" | wc -l)
  printf '%s\t%s\t%s\t%s\t%s\trc=%s\n' "$t" "$SECS" "${execs:-?}" "$((after - before))" "$corpus" "$rc" \
    | tee -a fuzz/logs/summary.tsv
done
