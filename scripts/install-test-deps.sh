#!/usr/bin/env bash
# Install everything the Portcullis test suite needs on Debian 12, when missing. Idempotent.
#   - Debian packages (daemons, clients and tools the tests start for real), installed with a
#     temporary /usr/sbin/policy-rc.d so that packages such as docker-registry, containerd,
#     nginx or docker.io do not start their own services (and take fixed ports).
#   - the rustfmt and clippy toolchain components, and cargo-deny (cargo install, pinned).
# `apt-get update` runs only when the package lists are empty or an install fails.
# Fails loudly (non-zero, with the apt log tail) when anything cannot be installed.
set -euo pipefail

log() { printf '[install-test-deps] %s\n' "$*" >&2; }
die() { printf '[install-test-deps] ERROR: %s\n' "$*" >&2; exit 1; }

# The packages and why:
PKGS=(
  docker-registry        # Distribution registry 2.8 (the upstream the proxy fronts)
  notary                 # notary, notary-server, notary-signer (Docker Content Trust)
  skopeo                 # pushes test images; a pulling client
  containerd runc        # containerd/ctr client (private daemon), ctr run
  podman conmon containernetworking-plugins   # podman client, podman run
  openssl curl ca-certificates jq
  python3 python3-cryptography python3-venv   # tests/harness/mkoci.py (stdlib); the venv for python-tuf
  apache2-utils          # htpasswd -B (registry basic auth)
  busybox-static         # a static busybox for the test images' rootfs
  faketime umoci socat nginx wrk              # time shifting, OCI tooling, fault injection, load tests
  protobuf-compiler      # protoc, for crates that build gRPC stubs (CRI)
  gcc libc6-dev make     # C compiler for aws-lc-sys; make for jemalloc (the allocator)
  docker.io              # docker CLI / dockerd for DCT signing as `docker push` does
  docker-compose         # the compose deployment test
  debootstrap            # base images for the project's Dockerfile (no image registry here)
  systemd                # systemd-analyze verify / security on the unit
  python3-pip            # pip, for kubernetes-validate when no other pip is on PATH
  util-linux procps coreutils tar   # mount/umount (cache_blobs' tmpfs), kill, timeout, tar
)

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

missing=()
for p in "${PKGS[@]}"; do installed "$p" || missing+=("$p"); done

if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "need root to install: ${missing[*]}"
  command -v apt-get >/dev/null || die "no apt-get: install by hand: ${missing[*]}"
  log "installing: ${missing[*]}"
  APT_LOG="$(mktemp /tmp/install-test-deps.XXXXXX.log)"
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# temporary, by install-test-deps.sh: no services started by package installs\nexit 101\n' \
      > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  cleanup() { [ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d; return 0; }
  trap cleanup EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt_install() { apt-get install -y --no-install-recommends "${missing[@]}" >>"$APT_LOG" 2>&1; }
  # empty package lists: update first
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    log "apt package lists are empty: apt-get update"
    apt-get update >>"$APT_LOG" 2>&1 || { tail -20 "$APT_LOG" >&2; die "apt-get update failed (log $APT_LOG)"; }
  fi
  if ! apt_install; then
    log "apt-get install failed; apt-get update and retry"
    apt-get update >>"$APT_LOG" 2>&1 || { tail -20 "$APT_LOG" >&2; die "apt-get update failed (log $APT_LOG)"; }
    apt_install || { tail -30 "$APT_LOG" >&2; die "apt-get install ${missing[*]} failed (log $APT_LOG)"; }
  fi
  still=()
  for p in "${missing[@]}"; do installed "$p" || still+=("$p"); done
  [ ${#still[@]} -eq 0 ] || die "still not installed after apt-get: ${still[*]} (log $APT_LOG)"
  log "installed: ${missing[*]}"
fi

# The test venv: Debian's python is externally managed, so PyPI packages the tests import go
# into /opt/portcullis-test-venv, made from /usr/bin/python3 (not a pyenv or other python on
# PATH) so that it is the same on a fresh Debian 12 machine and on a developer's. Recreated when
# its python no longer runs (the system python was upgraded).
VENV=/opt/portcullis-test-venv
ensure_venv() {
  if [ -x "$VENV/bin/python3" ] && "$VENV/bin/python3" -c '' 2>/dev/null; then return 0; fi
  log "creating $VENV"
  /usr/bin/python3 -m venv --clear "$VENV" || die "python3 -m venv $VENV failed (python3-venv)"
}

# kubernetes-validate (PyPI) checks the Kubernetes manifests against a current schema.
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  log "pip install kubernetes-validate"
  if command -v pip3 >/dev/null 2>&1 && [ "$(command -v pip3)" != /usr/bin/pip3 ]; then
    pip3 install --quiet kubernetes-validate || die "pip install kubernetes-validate failed"
  else
    ensure_venv
    "$VENV/bin/pip" install --quiet kubernetes-validate || die "pip install kubernetes-validate failed"
    ln -sf "$VENV/bin/kubernetes-validate" /usr/local/bin/kubernetes-validate
  fi
fi

# python-tuf (PyPI) makes the TUF repositories of tests/e2e_tuf.rs and tests/attack_tuf_*.rs
# (tests/harness/mktuf.py) and gives python-tuf's own verdict on them. securesystemslib[crypto]
# brings pyca/cryptography, which CryptoSigner needs to generate keys and sign (ed25519, ECDSA).
# The tests run $VENV/bin/python3 (tests/support/real/tuf.rs).
TUF_PKGS=('tuf==7.0.1' 'securesystemslib[crypto]==1.6.0')
tuf_ok() {
  "$VENV/bin/python3" -c 'import tuf, securesystemslib, cryptography, sys
from securesystemslib.signer import CryptoSigner
sys.exit(tuf.__version__ != "7.0.1" or securesystemslib.__version__ != "1.6.0")' 2>/dev/null
}
ensure_venv
if ! tuf_ok; then
  log "pip install ${TUF_PKGS[*]} into $VENV"
  "$VENV/bin/pip" install --quiet "${TUF_PKGS[@]}" || die "pip install ${TUF_PKGS[*]} into $VENV failed"
  tuf_ok || die "python-tuf 7.0.1 does not import in $VENV/bin/python3 after pip install"
fi

# Commands the tests call, checked once more (a package can be installed and yet broken).
for c in docker-registry notary notary-server notary-signer skopeo containerd ctr runc podman openssl curl \
         htpasswd faketime /usr/bin/python3 protoc docker dockerd docker-compose debootstrap systemd-analyze \
         kubernetes-validate mount umount kill timeout tar jq; do
  command -v "$c" >/dev/null 2>&1 || die "command $c is missing although its package is installed"
done
/bin/busybox true || die "/bin/busybox does not run"
if ldd /bin/busybox >/dev/null 2>&1; then die "/bin/busybox is not static (busybox-static did not take /bin/busybox)"; fi
/usr/bin/python3 -c 'import cryptography' 2>/dev/null || die "python3-cryptography does not import in /usr/bin/python3"

# Rust components used by scripts/test.sh.
if command -v rustup >/dev/null 2>&1; then
  for comp in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$comp"; then
      log "rustup component add $comp"
      rustup component add "$comp" || die "rustup component add $comp failed"
    fi
  done
fi
cargo fmt --version >/dev/null 2>&1 || die "cargo fmt is not available (rustfmt component)"
cargo clippy --version >/dev/null 2>&1 || die "cargo clippy is not available (clippy component)"

# cargo-deny (scripts/test.sh: `cargo deny check bans licenses sources`, deny.toml), built from
# crates.io with its own lockfile. Pinned: a new release may read deny.toml differently. 0.20.2
# needs rustc 1.88. The build took 17.5 min (4.1 min of CPU) on 2 cores shared with other builds.
CARGO_DENY_VERSION=0.20.2
if ! cargo deny --version >/dev/null 2>&1; then
  log "cargo install --locked cargo-deny@$CARGO_DENY_VERSION (about 4 CPU-minutes; longer on a busy machine)"
  cargo install --locked "cargo-deny@$CARGO_DENY_VERSION" || die "cargo install cargo-deny@$CARGO_DENY_VERSION failed"
fi
cargo deny --version >/dev/null 2>&1 || die "cargo deny does not run after cargo install"
log "all test dependencies present"
