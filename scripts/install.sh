#!/usr/bin/env bash
# Installs Portcullis as a systemd service on this node:
#   /usr/local/bin/portcullis                 the binary (default: target/release/portcullis)
#   /etc/portcullis/portcullis.toml           the config (deploy/portcullis.toml; kept if present)
#   /etc/systemd/system/portcullis.service    the hardened unit
#   /usr/lib/sysusers.d/portcullis.conf       its system user
#   /usr/local/share/doc/portcullis/deploy.md
#
#   scripts/install.sh [--binary PATH] [--config PATH] [--no-start]
#   DESTDIR=/tmp/stage scripts/install.sh     stage the files only (no user, no systemctl)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BINARY="$ROOT/target/release/portcullis"
CONFIG="$ROOT/deploy/portcullis.toml"
START=1
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) BINARY="$2"; shift 2 ;;
    --config) CONFIG="$2"; shift 2 ;;
    --no-start) START=0; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
D="${DESTDIR:-}"
[ -x "$BINARY" ] || { echo "install.sh: no binary at $BINARY (cargo build --release, or --binary PATH)" >&2; exit 1; }
[ -n "$D" ] || [ "$(id -u)" = 0 ] || { echo "install.sh: run as root (or set DESTDIR to stage)" >&2; exit 1; }

install -D -m 0755 "$BINARY" "$D/usr/local/bin/portcullis"
install -D -m 0644 "$ROOT/systemd/portcullis.service" "$D/etc/systemd/system/portcullis.service"
install -D -m 0644 "$ROOT/systemd/portcullis.sysusers.conf" "$D/usr/lib/sysusers.d/portcullis.conf"
install -D -m 0644 "$ROOT/docs/deploy.md" "$D/usr/local/share/doc/portcullis/deploy.md"

if [ -z "$D" ]; then
  if command -v systemd-sysusers >/dev/null; then systemd-sysusers /usr/lib/sysusers.d/portcullis.conf
  elif ! id portcullis >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/portcullis --no-create-home --shell /usr/sbin/nologin portcullis
  fi
fi
install -d -m 0750 "$D/etc/portcullis"
if [ -e "$D/etc/portcullis/portcullis.toml" ]; then
  echo "install.sh: keeping the existing /etc/portcullis/portcullis.toml"
else
  install -m 0640 "$CONFIG" "$D/etc/portcullis/portcullis.toml"
  echo "install.sh: installed /etc/portcullis/portcullis.toml: edit [[registries]] before relying on it"
fi
if [ -z "$D" ]; then
  # root owns the config; the service reads it (and TLS keys, password files) through its group
  chown root:portcullis /etc/portcullis /etc/portcullis/portcullis.toml
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    if [ "$START" = 1 ]; then systemctl enable --now portcullis.service; systemctl --no-pager status portcullis.service || true
    else systemctl enable portcullis.service; fi
  else
    echo "install.sh: systemd is not running here; the unit is installed but not started"
  fi
fi
echo "install.sh: done. Node configuration: portcullis config containerd|crio|podman|docker --out DIR"
