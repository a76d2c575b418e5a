#!/usr/bin/env bash
# Builds the local base image Portcullis' images start from, since no image registry is reachable:
# `debootstrap --variant=minbase bookworm` from the Debian mirror apt already uses, packed into a
# tarball (cached: later runs only `docker import` it) and imported as $BASE_IMAGE.
#
#   deploy/base-image.sh [--tarball-only]
#
# Settings (environment):
#   BASE_IMAGE      image name to import as        (default portcullis-base/debian:bookworm)
#   BASE_CACHE_DIR  where the rootfs tarball lives (default <repo>/target/deploy-cache)
#   DEBIAN_MIRROR   mirror URL                     (default: the first URIs/deb line of apt's sources)
#   DEBIAN_SUITE    (default bookworm)
# The extra packages are what the image stages need: ca-certificates (the proxy's TLS roots),
# busybox-static (HEALTHCHECK's wget, and a shell for the compose helpers).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(cd "$HERE/.." && pwd)"
BASE_IMAGE="${BASE_IMAGE:-portcullis-base/debian:bookworm}"
BASE_CACHE_DIR="${BASE_CACHE_DIR:-$ROOT/target/deploy-cache}"
DEBIAN_SUITE="${DEBIAN_SUITE:-bookworm}"
INCLUDE="ca-certificates,busybox-static"
log() { printf '[base-image] %s\n' "$*" >&2; }
die() { printf '[base-image] ERROR: %s\n' "$*" >&2; exit 1; }

apt_mirror() {
  local m=""
  if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
    m="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources)"
  fi
  if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
    m="$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' /etc/apt/sources.list)"
  fi
  echo "${m:-http://deb.debian.org/debian}"
}
DEBIAN_MIRROR="${DEBIAN_MIRROR:-$(apt_mirror)}"
TARBALL="$BASE_CACHE_DIR/debian-$DEBIAN_SUITE-minbase.tar"

if [ ! -s "$TARBALL" ]; then
  command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"
  mkdir -p "$BASE_CACHE_DIR"
  WORK="$(mktemp -d "$BASE_CACHE_DIR/rootfs.XXXXXX")"
  trap 'rm -rf "$WORK"' EXIT
  log "debootstrap $DEBIAN_SUITE from $DEBIAN_MIRROR into $WORK (once; cached as $TARBALL)"
  debootstrap --variant=minbase --include="$INCLUDE" "$DEBIAN_SUITE" "$WORK/rootfs" "$DEBIAN_MIRROR" \
    >"$BASE_CACHE_DIR/debootstrap.log" 2>&1 || { tail -20 "$BASE_CACHE_DIR/debootstrap.log" >&2; die "debootstrap failed"; }
  # smaller and reproducible-ish: no apt lists, caches or logs in the image
  rm -rf "$WORK/rootfs/var/cache/apt/"*.bin "$WORK/rootfs/var/cache/apt/archives/"*.deb \
    "$WORK/rootfs/var/lib/apt/lists/"* "$WORK/rootfs/var/log/"*.log "$WORK/rootfs/tmp/"*
  tar --numeric-owner -C "$WORK/rootfs" -cf "$TARBALL.tmp" .
  mv "$TARBALL.tmp" "$TARBALL"
  log "cached $TARBALL ($(du -h "$TARBALL" | cut -f1))"
fi
[ "${1:-}" = "--tarball-only" ] && { echo "$TARBALL"; exit 0; }

command -v docker >/dev/null || die "the docker CLI is missing"
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  log "docker import $TARBALL as $BASE_IMAGE"
  docker import -c 'CMD ["/bin/bash"]' "$TARBALL" "$BASE_IMAGE" >/dev/null
fi
echo "$BASE_IMAGE"
