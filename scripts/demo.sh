#!/usr/bin/env bash
# The main job, in one command, on a fresh Debian 12 machine (as root):
#   a real Distribution registry and a real notary-server (+ notary-signer) on loopback,
#   a small image built and pushed offline, one tag signed the way `docker push` with content
#   trust signs it (notary addhash into targets), Portcullis in front, and podman pulling
#   through it: the signed tag pulls and runs; an unsigned tag is refused with the reason
#   shown; a signed tag re-pushed to other content pulls the content that was signed (Docker's
#   rule), and the drift is logged.
#
#   scripts/demo.sh            run the demo, then stop everything it started
#   KEEP=1 scripts/demo.sh     leave the registry, notary and Portcullis running
#   scripts/demo.sh stop       stop what a KEEP=1 run left running (same DEMO_DIR)
#   PROFILE=debug scripts/demo.sh   use a debug build (faster to build)
# Settings (env): DEMO_DIR (/tmp/portcullis-demo), DEMO_REGISTRY_PORT (5000),
#   DEMO_NOTARY_PORT (4443), DEMO_SIGNER_PORT (7899), DEMO_PROXY_PORT (5050), DEMO_ADMIN_PORT (9090)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO_DIR="$PWD"

DEMO_DIR="${DEMO_DIR:-/tmp/portcullis-demo}"
RP="${DEMO_REGISTRY_PORT:-5000}"; NP="${DEMO_NOTARY_PORT:-4443}"; SP="${DEMO_SIGNER_PORT:-7899}"
PP="${DEMO_PROXY_PORT:-5050}"; AP="${DEMO_ADMIN_PORT:-9090}"
REG="127.0.0.1:$RP"; NOTARY="https://127.0.0.1:$NP"; PROXY="127.0.0.1:$PP"
GUN="$REG/demo/app"
C="$DEMO_DIR/certs"; L="$DEMO_DIR/logs"; T="$DEMO_DIR/trust"
CLEAN_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export NOTARY_ROOT_PASSPHRASE=demo-root NOTARY_TARGETS_PASSPHRASE=demo-targets
export NOTARY_SNAPSHOT_PASSPHRASE=demo-snapshot NOTARY_DELEGATION_PASSPHRASE=demo-delegation
ACCEPT="application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"

START=$SECONDS
# Each stage says how long the demo has run so far, so a slow step is visible as such.
say() { printf '\n\033[1m==> %s\033[0m  (%ss)\n' "$*" "$((SECONDS - START))"; }
log() { printf '[demo] %s\n' "$*" >&2; }
die() { printf '[demo] ERROR: %s\n' "$*" >&2; exit 1; }

# The pids of what this demo started, kept in a file beside DEMO_DIR so `scripts/demo.sh stop`
# (or a second run) can find what a KEEP=1 run left behind.
PIDFILE="$DEMO_DIR.pids"
STOP_CMD="$REPO_DIR/scripts/demo.sh stop"
[ "$DEMO_DIR" = /tmp/portcullis-demo ] || STOP_CMD="DEMO_DIR=$DEMO_DIR $STOP_CMD"
PIDS=()
# With each pid its start time (/proc/PID/stat field 22, unchanged by exec), so that a pid the
# kernel has since given to another process is never taken for ours.
start_time() { cut -d' ' -f22 "/proc/$1/stat" 2>/dev/null || true; }
started() { PIDS+=("$1"); printf '%s %s\n' "$1" "$(start_time "$1")" >>"$PIDFILE"; }
unmount_demo() {
  for m in $(awk -v d="$DEMO_DIR" '$2 ~ "^"d {print $2}' /proc/mounts | sort -r); do umount -l "$m" 2>/dev/null || true; done
}
# Pids from the file that are still running.
running_pids() {
  [ -f "$PIDFILE" ] || return 0
  while read -r p st; do [ -n "$p" ] && [ "$(start_time "$p")" = "$st" ] && printf '%s ' "$p"; done <"$PIDFILE"
  return 0
}
stop_previous() {
  local pids; pids="$(running_pids)"
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    kill $pids 2>/dev/null || true
    for _ in $(seq 1 50); do [ -z "$(running_pids)" ] && break; sleep 0.1; done
    log "stopped pids $pids"
  fi
  rm -f "$PIDFILE"
  unmount_demo
}
if [ "${1:-}" = stop ]; then
  [ -n "$(running_pids)" ] || log "nothing from a demo in $DEMO_DIR is running"
  stop_previous
  exit 0
fi
cleanup() {
  # Nothing started (e.g. refused to start beside a previous run): leave its pid file and mounts.
  [ ${#PIDS[@]} -gt 0 ] || return 0
  if [ "${KEEP:-0}" = 1 ]; then
    log "KEEP=1: left running (pids ${PIDS[*]:-}); logs in $L"
    log "stop them with: $STOP_CMD"
    return
  fi
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  rm -f "$PIDFILE"
  unmount_demo
}
trap cleanup EXIT

# ---- 1. packages ---------------------------------------------------------------------------
say "1/7 installing what is missing (Debian packages)"
[ "$(id -u)" = 0 ] || die "run as root (installs packages, runs podman with a private store)"
need=()
for pair in docker-registry:docker-registry notary-server:notary notary-signer:notary notary:notary \
            skopeo:skopeo podman:podman openssl:openssl curl:curl python3:python3 /bin/busybox:busybox-static \
            protoc:protobuf-compiler; do
  cmd="${pair%%:*}"; pkg="${pair#*:}"
  if [ "${cmd#/}" != "$cmd" ]; then [ -e "$cmd" ] || need+=("$pkg"); else command -v "$cmd" >/dev/null || need+=("$pkg"); fi
done
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  created=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; created=1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${need[@]}" >/tmp/portcullis-demo-apt.log 2>&1 \
    || { apt-get update >>/tmp/portcullis-demo-apt.log 2>&1; apt-get install -y --no-install-recommends "${need[@]}" >>/tmp/portcullis-demo-apt.log 2>&1; } \
    || { [ $created = 1 ] && rm -f /usr/sbin/policy-rc.d; tail -20 /tmp/portcullis-demo-apt.log; die "apt-get install failed"; }
  [ $created = 1 ] && rm -f /usr/sbin/policy-rc.d
fi
command -v cargo >/dev/null || die "cargo is missing: install a Rust toolchain (1.89 or newer) first"
# A KEEP=1 run left its services up: offer to stop them (or say how) rather than fail on ports.
prev="$(running_pids)"
if [ -n "$prev" ]; then
  log "a previous demo (KEEP=1) is still running in $DEMO_DIR: pids $prev"
  answer=n
  if [ -t 0 ]; then read -r -p "[demo] stop it and go on? [y/N] " answer || answer=n; fi
  case "$answer" in
    y|Y|yes) stop_previous ;;
    *) die "stop it with: $STOP_CMD (or set DEMO_DIR and DEMO_*_PORT to run a second demo beside it)" ;;
  esac
fi
rm -f "$PIDFILE"
for p in "$RP" "$NP" "$SP" "$PP" "$AP"; do
  (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && die "port $p is in use by something this demo did not start; stop it (ss -ltnp 'sport = :$p' names it), or set DEMO_*_PORT (see the top of this script)"
done

# PROFILE=debug builds faster (the first release build takes minutes on a small machine).
PROFILE="${PROFILE:-release}"
say "2/7 building Portcullis (cargo build, $PROFILE profile; a first release build takes minutes)"
# cargo's own progress (on stderr), so a long first build is visibly working.
if [ "$PROFILE" = release ]; then cargo build --release; else cargo build; fi
BIN="$REPO_DIR/target/$PROFILE/portcullis"

# ---- 3. registry + notary ------------------------------------------------------------------
say "3/7 starting the registry ($REG) and notary-server ($NOTARY) with notary-signer"
rm -rf "$DEMO_DIR"; mkdir -p "$C" "$L" "$T" "$DEMO_DIR/registry" "$DEMO_DIR/podman"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days 30 \
  -keyout "$C/ca.key" -out "$C/ca.crt" -subj "/CN=portcullis-demo-ca" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$C/server.ext"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -keyout "$C/server.key" \
  -out "$C/server.csr" -subj "/CN=localhost" 2>/dev/null
openssl x509 -req -sha256 -in "$C/server.csr" -CA "$C/ca.crt" -CAkey "$C/ca.key" -CAcreateserial \
  -out "$C/server.crt" -days 30 -extfile "$C/server.ext" 2>/dev/null
cat > "$DEMO_DIR/registry.yml" <<EOF
version: 0.1
log: {level: info}
storage: {filesystem: {rootdirectory: $DEMO_DIR/registry}, delete: {enabled: true}}
http: {addr: $REG}
EOF
cat > "$DEMO_DIR/notary-signer.json" <<EOF
{"server": {"grpc_addr": "127.0.0.1:$SP", "tls_cert_file": "$C/server.crt", "tls_key_file": "$C/server.key", "client_ca_file": "$C/ca.crt"},
 "logging": {"level": "info"}, "storage": {"backend": "memory", "default_alias": "demoalias"}}
EOF
cat > "$DEMO_DIR/notary-server.json" <<EOF
{"server": {"http_addr": "127.0.0.1:$NP", "tls_cert_file": "$C/server.crt", "tls_key_file": "$C/server.key"},
 "trust_service": {"type": "remote", "hostname": "127.0.0.1", "port": "$SP", "key_algorithm": "ecdsa",
   "tls_ca_file": "$C/ca.crt", "tls_client_cert": "$C/server.crt", "tls_client_key": "$C/server.key"},
 "storage": {"backend": "memory"}, "logging": {"level": "info"}}
EOF
# Clean environments: docker-registry and notary read REGISTRY_* / NOTARY_* as config overrides.
env -i PATH="$CLEAN_PATH" setsid docker-registry serve "$DEMO_DIR/registry.yml" >"$L/registry.log" 2>&1 </dev/null & started $!
env -i PATH="$CLEAN_PATH" NOTARY_SIGNER_DEMOALIAS=demo-signer-pass setsid notary-signer -config "$DEMO_DIR/notary-signer.json" >"$L/notary-signer.log" 2>&1 </dev/null & started $!
sleep 1
env -i PATH="$CLEAN_PATH" setsid notary-server -config "$DEMO_DIR/notary-server.json" >"$L/notary-server.log" 2>&1 </dev/null & started $!
wait_http() { for _ in $(seq 1 100); do curl -sf "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }
wait_http "http://$REG/v2/" || die "registry did not start ($L/registry.log)"
wait_http --cacert "$C/ca.crt" "$NOTARY/_notary_server/health" || die "notary-server did not start ($L/notary-server.log)"

# ---- 4. images -----------------------------------------------------------------------------
say "4/7 building images offline and pushing them: demo/app:v1, :v2, :unsigned"
LAYOUT="$DEMO_DIR/oci"
BUSYBOX=/bin/busybox python3 tests/harness/mkoci.py "$LAYOUT" v1 single --note "hello from a SIGNED image" >/dev/null
BUSYBOX=/bin/busybox python3 tests/harness/mkoci.py "$LAYOUT" v2 single --note "v2, signed" >/dev/null
BUSYBOX=/bin/busybox python3 tests/harness/mkoci.py "$LAYOUT" unsigned single --note "nobody signed this" >/dev/null
for t in v1 v2 unsigned; do
  skopeo copy --quiet --dest-tls-verify=false "oci:$LAYOUT:$t" "docker://$GUN:$t"
done

# ---- 5. signing ----------------------------------------------------------------------------
say "5/7 signing v1 and v2 as 'docker push' with DOCKER_CONTENT_TRUST=1 does (notary addhash)"
nt() { notary -s "$NOTARY" -d "$T" --tlscacert "$C/ca.crt" "$@"; }
nt init "$GUN" >/dev/null
nt key rotate "$GUN" snapshot -r >/dev/null   # server-managed snapshot key, as the Docker CLI sets up
nt publish "$GUN" >/dev/null
sign() {
  local tag="$1" m
  m="$(mktemp)"
  curl -sf -H "Accept: $ACCEPT" -o "$m" "http://$REG/v2/demo/app/manifests/$tag"
  nt addhash "$GUN" "$tag" "$(stat -c %s "$m")" --sha256 "$(sha256sum "$m" | cut -d' ' -f1)" -p >/dev/null
  rm -f "$m"
}
sign v1; sign v2
nt list "$GUN"
say "    ... and re-pushing v2 with other content, without signing it (a swapped image)"
skopeo copy --quiet --dest-tls-verify=false "oci:$LAYOUT:unsigned" "docker://$GUN:v2"

# ---- 6. Portcullis -------------------------------------------------------------------------
say "6/7 starting Portcullis on $PROXY (config/portcullis.toml, ports and paths of this demo)"
sed -e "s#127.0.0.1:5000#$REG#g" -e "s#127.0.0.1:4443#127.0.0.1:$NP#g" \
    -e "s#127.0.0.1:5050#$PROXY#g" -e "s#127.0.0.1:9090#127.0.0.1:$AP#g" \
    -e "s#/tmp/portcullis-demo#$DEMO_DIR#g" config/portcullis.toml > "$DEMO_DIR/portcullis.toml"
setsid "$BIN" serve --config "$DEMO_DIR/portcullis.toml" >"$L/portcullis.log" 2>&1 </dev/null & started $!
wait_http "http://127.0.0.1:$AP/readyz" || { tail -20 "$L/portcullis.log"; die "Portcullis did not start"; }
"$BIN" check --config "$DEMO_DIR/portcullis.toml" "$GUN:v1" || true

# ---- 7. pulls ------------------------------------------------------------------------------
say "7/7 pulling through Portcullis with podman (registries.conf rewrites $REG to $PROXY)"
P="$DEMO_DIR/podman"
# The node files, as `portcullis config` writes them for a real node.
"$BIN" config podman --config "$DEMO_DIR/portcullis.toml" > "$P/registries.conf"
"$BIN" config containerd --config "$DEMO_DIR/portcullis.toml" --out "$DEMO_DIR/containerd" 2>/dev/null
pm() {
  CONTAINERS_REGISTRIES_CONF="$P/registries.conf" podman --root "$P/root" --runroot "$P/run" \
    --storage-driver vfs --cgroup-manager cgroupfs --events-backend file "$@"
}
pass=0; fail=0
expect() { # ok|refused DESCRIPTION CMD...
  local want="$1" what="$2"; shift 2
  local out rc=0
  out="$("$@" 2>&1)" || rc=$?
  if { [ "$want" = ok ] && [ $rc = 0 ]; } || { [ "$want" = refused ] && [ $rc != 0 ]; }; then
    printf '  \033[32mPASS\033[0m %s\n' "$what"; pass=$((pass + 1))
  else
    printf '  \033[31mFAIL\033[0m %s (exit %s)\n' "$what" "$rc"; fail=$((fail + 1))
  fi
  printf '%s\n' "$out" | grep -E 'denied|Error|hello|signed|Writing manifest' | sed 's/^/       | /' | tail -3
}
expect ok      "signed v1 pulls"                 pm pull "$GUN:v1"
expect ok      "signed v1 runs"                  pm run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 "$GUN:v1"
expect refused "unsigned tag is refused"         pm pull "$GUN:unsigned"
# Docker's rule: the signed digest wins over what the registry's tag points to now.
runs_note() { pm run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 "$1" | grep "$2"; }
expect ok      "v2, re-pushed unsigned, pulls the signed v2" runs_note "$GUN:v2" "v2, signed"
sleep 1   # the drift check runs off the request path
echo
echo "Portcullis's log of its decisions ($L/portcullis.log):"
# Wrapped at word boundaries, continuation lines indented, so no reason is cut mid-word.
grep -E 'denied|enforcing|tag drift' "$L/portcullis.log" | sed 's/\x1b\[[0-9;]*m//g' | while IFS= read -r line; do
  printf '%s\n' "$line" | fold -s -w 110 | sed -e 's/ *$//' -e '1s/^/  /' -e '2,$s/^/      /'
done
echo
echo "$pass passed, $fail failed  ($((SECONDS - START))s)"

keep_hint=""
[ "${KEEP:-0}" = 1 ] || keep_hint=" (rerun with KEEP=1 to keep the services up)"
cat <<EOF

Next steps
  Node files this demo wrote with \`portcullis config\`:
    $P/registries.conf    (podman, skopeo, buildah, CRI-O)
    $DEMO_DIR/containerd/certs.d/$REG/hosts.toml    (containerd, ctr)
  Try it yourself$keep_hint:
    skopeo copy --registries-conf $P/registries.conf docker://$GUN:v1 oci:/tmp/demo-app:v1
    skopeo inspect --registries-conf $P/registries.conf docker://$GUN:unsigned    # refused
    $BIN check --config $DEMO_DIR/portcullis.toml $GUN:v2    # signed, and the registry's drift
    ctr images pull --hosts-dir $DEMO_DIR/containerd/certs.d $GUN:v1    # needs a running containerd
    $BIN check --config $DEMO_DIR/portcullis.toml $GUN:unsigned    # the trust check alone
  Metrics: curl -s http://127.0.0.1:$AP/metrics | grep -E 'portcullis_(denials|tag_drift)_total'
  Config:  $DEMO_DIR/portcullis.toml   Log: $L/portcullis.log
EOF
[ "${KEEP:-0}" = 1 ] && echo "  Stop:    $STOP_CMD"
[ "$fail" = 0 ]
