#!/usr/bin/env bash
# Prepares what docker-compose.yml mounts, in $PORTCULLIS_COMPOSE_DIR (default deploy/compose/run):
#   certs/          a development CA and one leaf (SANs: localhost, 127.0.0.1, notary-server,
#                   notary-signer, portcullis, registry), also the signer's mTLS client cert
#   registry.yml, notary-server.json, notary-signer.json, portcullis.toml
#   images/         build context of deploy/compose/local-images.yml: the Debian packages
#                   docker-registry and notary (apt-get download) and Dockerfile.debian-pkg
# Ports (the ones published on 127.0.0.1; portcullis.toml names the registry by them):
#   REGISTRY_PORT (5000), NOTARY_PORT (4443), PORTCULLIS_PORT (5050), PORTCULLIS_ADMIN_PORT (9090)
# DEVELOPMENT ONLY: keys are world-readable so the containers' own users can read them.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(cd "$HERE/../.." && pwd)"
RUN="${PORTCULLIS_COMPOSE_DIR:-$HERE/run}"
REGISTRY_PORT="${REGISTRY_PORT:-5000}"
NOTARY_SIGNER_ALIAS="${NOTARY_SIGNER_ALIAS:-composealias}"
mkdir -p "$RUN/certs" "$RUN/images"
C="$RUN/certs"

# ---- certificates -------------------------------------------------------------------------------
if [ ! -s "$C/server.crt" ] || ! openssl verify -CAfile "$C/ca.crt" "$C/server.crt" >/dev/null 2>&1; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
    -keyout "$C/ca.key" -out "$C/ca.crt" -days 3650 -subj "/CN=portcullis-dev-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  cat > "$C/server.ext" <<EOT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:notary-server,DNS:notary-signer,DNS:portcullis,DNS:registry
EOT
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
    -keyout "$C/server.key" -out "$C/server.csr" -subj "/CN=localhost" 2>/dev/null
  openssl x509 -req -sha256 -in "$C/server.csr" -CA "$C/ca.crt" -CAkey "$C/ca.key" -CAcreateserial \
    -out "$C/server.crt" -days 825 -extfile "$C/server.ext" 2>/dev/null
  rm -f "$C/server.csr" "$C/server.ext"
  chmod 0644 "$C/server.key"   # development only: read by the containers' unprivileged users
  chmod 0600 "$C/ca.key"
fi

# ---- service configs ----------------------------------------------------------------------------
cat > "$RUN/registry.yml" <<EOT
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: 0.0.0.0:5000
  headers:
    X-Content-Type-Options: [nosniff]
EOT
cat > "$RUN/notary-signer.json" <<EOT
{
  "server": {"grpc_addr": "0.0.0.0:7899",
             "tls_cert_file": "/etc/notary/certs/server.crt", "tls_key_file": "/etc/notary/certs/server.key",
             "client_ca_file": "/etc/notary/certs/ca.crt"},
  "logging": {"level": "info"},
  "storage": {"backend": "memory", "default_alias": "$NOTARY_SIGNER_ALIAS"}
}
EOT
cat > "$RUN/notary-server.json" <<EOT
{
  "server": {"http_addr": "0.0.0.0:4443",
             "tls_cert_file": "/etc/notary/certs/server.crt", "tls_key_file": "/etc/notary/certs/server.key"},
  "trust_service": {"type": "remote", "hostname": "notary-signer", "port": "7899", "key_algorithm": "ecdsa",
                    "tls_ca_file": "/etc/notary/certs/ca.crt",
                    "tls_client_cert": "/etc/notary/certs/server.crt", "tls_client_key": "/etc/notary/certs/server.key"},
  "storage": {"backend": "memory"},
  "logging": {"level": "info"}
}
EOT
# Clients name the registry by its published address, and sign GUNs with it: the proxy's
# registry name is that address, while it reaches the registry over the compose network.
cat > "$RUN/portcullis.toml" <<EOT
# Written by deploy/compose/setup.sh for docker-compose.yml.
[server]
listen = "0.0.0.0:5050"             # published on 127.0.0.1 only (docker-compose.yml)
admin_listen = "0.0.0.0:9090"
client_auth = { mode = "passthrough" }   # lends no credentials: the registry has no auth here

[cache]
dir = "/var/lib/portcullis"

[[registries]]
name = "127.0.0.1:$REGISTRY_PORT"
upstream = "http://registry:5000"
default = true
mode = "enforce"

[registries.notary]
server = "https://notary-server:4443"
ca_file = "/etc/portcullis/certs/ca.crt"

[registries.notary.trust_pinning]
tofu = true                         # development: trust each GUN's first root
EOT

# ---- build context for the local registry/notary images ------------------------------------------
cp "$HERE/Dockerfile.debian-pkg" "$RUN/images/Dockerfile"
DEBS="${BASE_CACHE_DIR:-$ROOT/target/deploy-cache}/debs"
mkdir -p "$DEBS"
for pkg in docker-registry notary; do
  if [ ! -s "$DEBS/$pkg.deb" ]; then
    (cd "$DEBS" && rm -f "${pkg}"_*.deb && apt-get download "$pkg" >/dev/null && mv "${pkg}"_*.deb "$pkg.deb") \
      || { echo "setup.sh: apt-get download $pkg failed (apt-get update first?)" >&2; exit 1; }
  fi
  cp "$DEBS/$pkg.deb" "$RUN/images/$pkg.deb"
done
echo "$RUN"
