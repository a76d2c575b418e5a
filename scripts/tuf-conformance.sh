#!/usr/bin/env bash
# Runs the TUF project's client conformance suite (tuf-conformance) against Portcullis's TUF
# client, `portcullis-tuf-conformance` (the proxy's own `trust::tuf` transport and store behind
# the suite's CLI, CLIENT-CLI.md), and in the same run against the suite's python-tuf client, the
# reference. Prints both pass counts and each test ours fails; exits non-zero when ours fails
# more tests than python-tuf does. No `.xfails` file: every test counts.
#   scripts/tuf-conformance.sh [SUITE_DIR]
# SUITE_DIR is a checkout of https://github.com/theupdateframework/tuf-conformance (default:
# ../shared/tuf-conformance beside this repository, when present). It is only read: the script
# copies it to a temporary directory, makes a venv there and `pip install -e`s it (PyPI).
# Environment:
#   KEEP=1              keep the temporary directory (pytest logs, JSON reports, the suite copy)
#   SUITE_TIMEOUT=SECS  bound on each pytest run (default 1800: a client that hangs hangs the suite)
#   PYTHON=python3      the interpreter for the venv (3.10 or newer)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
start=$(date +%s)
log() { printf '[tuf-conformance] %s (%ss)\n' "$*" "$(($(date +%s) - start))" >&2; }
die() { printf '[tuf-conformance] ERROR: %s\n' "$*" >&2; exit 2; }

# --- the suite -------------------------------------------------------------------------------
suite="${1:-}"
if [ -z "$suite" ]; then
  [ -d "$repo/../shared/tuf-conformance" ] \
    || die "no suite given and none at $repo/../shared/tuf-conformance. Clone it and pass its path:
    git clone https://github.com/theupdateframework/tuf-conformance
    scripts/tuf-conformance.sh path/to/tuf-conformance"
  suite="$repo/../shared/tuf-conformance"
fi
suite="$(cd "$suite" 2>/dev/null && pwd)" || die "SUITE_DIR $1 is not a directory"
[ -f "$suite/pyproject.toml" ] && [ -d "$suite/tuf_conformance" ] \
  && [ -f "$suite/clients/python-tuf/python_tuf.py" ] \
  || die "$suite does not look like tuf-conformance (pyproject.toml, tuf_conformance/, clients/python-tuf/)"

# --- faketime (the expiry tests run the client under it) -------------------------------------
if ! command -v faketime >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
    || die "faketime is missing: install it (Debian: apt-get install faketime)"
  log "installing faketime (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends faketime >/dev/null 2>&1 \
    || { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends faketime >/dev/null; } \
    || die "apt-get install faketime failed"
fi

# --- a private copy and its venv ---------------------------------------------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/tuf-conformance.XXXXXX")"
# The suite splits --entrypoint on spaces: no path it is given may contain one.
case "$work" in *' '*) die "temporary directory $work contains a space: set TMPDIR" ;; esac
cleanup() { if [ "${KEEP:-0}" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT
log "copying $suite to $work/suite"
mkdir "$work/suite"
tar -C "$suite" --exclude=./env --exclude=./.git -cf - . | tar -C "$work/suite" -xf -
chmod -R u+w "$work/suite"

py="${PYTHON:-python3}"
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || die "$py is older than 3.10 (set PYTHON)"
"$py" -m venv "$work/suite/env" >"$work/venv.log" 2>&1 \
  || { cat "$work/venv.log" >&2; die "$py -m venv failed (Debian: apt-get install python3-venv)"; }
venv_py="$work/suite/env/bin/python"
log "pip install -e the suite (log: $work/pip.log)"
"$venv_py" -m pip install --disable-pip-version-check -e "$work/suite" >"$work/pip.log" 2>&1 \
  || { tail -20 "$work/pip.log" >&2; die "pip install -e $work/suite failed"; }

# --- our client ------------------------------------------------------------------------------
log "cargo build --release --bin portcullis-tuf-conformance"
(cd "$repo" && cargo build --release --locked --bin portcullis-tuf-conformance)
target_dir="$(cd "$repo" && cargo metadata --format-version 1 --no-deps \
  | "$venv_py" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
ours="$target_dir/release/portcullis-tuf-conformance"
[ -x "$ours" ] || die "$ours was not built"
case "$ours" in *' '*) die "$ours contains a space; the suite splits --entrypoint on spaces" ;; esac
[ ! -e "$ours.xfails" ] || die "$ours.xfails exists: the suite would excuse the tests it lists; remove it"

# --- the runs --------------------------------------------------------------------------------
# run NAME ENTRYPOINT: pytest in the copy, a JSON report per client. pytest exits 1 when a test
# fails; only a missing report (a crash, a timeout) stops the script.
run() {
  local name="$1" entrypoint="$2" t0
  t0=$(date +%s)
  log "pytest tuf_conformance --entrypoint '$entrypoint' (log: $work/$name.log)"
  (cd "$work/suite" && timeout "${SUITE_TIMEOUT:-1800}" ./env/bin/pytest tuf_conformance \
    --entrypoint "$entrypoint" --json-report --json-report-file="$work/$name.json" -rfE \
    >"$work/$name.log" 2>&1) || true
  [ -s "$work/$name.json" ] || { tail -30 "$work/$name.log" >&2; die "no report from the $name run"; }
  echo $(($(date +%s) - t0)) >"$work/$name.seconds"
}
# The Makefile's python-tuf invocation (interpreter + script): its .xfails file is not applied
# either, so both clients are counted the same way.
run python-tuf "$venv_py $work/suite/clients/python-tuf/python_tuf.py"
run portcullis "$ours"

# --- the counts ------------------------------------------------------------------------------
"$venv_py" - "$work" <<'EOF'
import json, sys
work = sys.argv[1]

def load(name):
    with open(f"{work}/{name}.json") as f:
        report = json.load(f)
    s = report["summary"]
    bad = [t["nodeid"].split("::", 1)[-1] for t in report["tests"] if t["outcome"] != "passed"]
    with open(f"{work}/{name}.seconds") as f:
        secs = f.read().strip()
    # collection errors and xpasses count as failures: only "passed" passes
    return s.get("passed", 0), s.get("total", 0), bad, secs

py_pass, py_total, py_bad, py_s = load("python-tuf")
our_pass, our_total, our_bad, our_s = load("portcullis")
print(f"python-tuf:  {py_pass} of {py_total} passed ({py_s}s)")
for t in py_bad:
    print(f"  FAILED {t}")
print(f"portcullis:  {our_pass} of {our_total} passed ({our_s}s)")
for t in our_bad:
    print(f"  FAILED {t}")
print(f"{our_pass} passed, {len(our_bad)} failed")
with open(f"{work}/verdict", "w") as f:
    f.write("ok" if len(our_bad) <= len(py_bad) and our_total == py_total else "worse")
EOF
verdict="$(cat "$work/verdict")"
log "done"
if [ "$verdict" != ok ]; then
  echo "portcullis-tuf-conformance fails more tests than python-tuf (logs: rerun with KEEP=1)" >&2
  exit 1
fi
