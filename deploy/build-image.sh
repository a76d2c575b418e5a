#!/usr/bin/env bash
# Builds the Portcullis image with the local docker daemon, offline:
#   1. deploy/base-image.sh: debootstrap'd Debian bookworm, imported as $BASE_IMAGE (cached)
#   2. the release binary, compiled here (see Dockerfile for why), copied to target/docker/
#   3. docker build with the repository as context (.dockerignore keeps it to those files)
#
#   deploy/build-image.sh [--binary PATH] [--tag NAME]
# Settings: IMAGE (default portcullis:dev), BASE_IMAGE, BASE_CACHE_DIR, DEBIAN_MIRROR.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
IMAGE="${IMAGE:-portcullis:dev}"
BINARY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) BINARY="$2"; shift 2 ;;
    --tag) IMAGE="$2"; shift 2 ;;
    *) echo "build-image.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
export BASE_IMAGE="${BASE_IMAGE:-portcullis-base/debian:bookworm}"
"$ROOT/deploy/base-image.sh" >/dev/null
if [ -z "$BINARY" ]; then
  (cd "$ROOT" && cargo build --release --locked --bin portcullis)
  BINARY="$ROOT/target/release/portcullis"
fi
mkdir -p "$ROOT/target/docker"
cp "$BINARY" "$ROOT/target/docker/portcullis.tmp" && mv "$ROOT/target/docker/portcullis.tmp" "$ROOT/target/docker/portcullis"
# The classic builder: BuildKit's dockerfile frontend and buildx are not needed, and nothing is pulled.
DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$IMAGE" -f "$ROOT/Dockerfile" "$ROOT" >/dev/null
echo "$IMAGE"
