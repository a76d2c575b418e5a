"""Real Notary v1 for the benchmarks (stdlib only): the approach of scripts/demo.sh in Python.

start_notary() makes a throwaway CA and a loopback server certificate (openssl), starts
notary-signer (memory storage) and notary-server (memory storage, remote trust service) on free
loopback ports, and waits for the server's health endpoint. sign_tag() does what `docker push`
with DOCKER_CONTENT_TRUST=1 does for one tag: `notary init` of the GUN, the snapshot key handed
to the server (`key rotate ... snapshot -r`), `publish`, then `notary addhash GUN TAG SIZE
--sha256 HEX -p` with the manifest's length and sha256.

Processes are started through the caller's `start(name, argv, logpath, env=...)` so that the
caller stops them with everything else it started. notary-server and notary-signer read
NOTARY_* variables as config overrides, so they get a clean environment.
"""

import os
import subprocess
import time
import urllib.request
import ssl

CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PASSPHRASES = {
    "NOTARY_ROOT_PASSPHRASE": "bench-root",
    "NOTARY_TARGETS_PASSPHRASE": "bench-targets",
    "NOTARY_SNAPSHOT_PASSPHRASE": "bench-snapshot",
    "NOTARY_DELEGATION_PASSPHRASE": "bench-delegation",
}


def _run(argv, env=None, timeout=120):
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} ... failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout


def make_certs(d):
    """A CA and a server certificate for 127.0.0.1 / localhost (ECDSA P-256, 30 days)."""
    os.makedirs(d, exist_ok=True)
    ca_key, ca_crt = os.path.join(d, "ca.key"), os.path.join(d, "ca.crt")
    key, csr, crt = (os.path.join(d, n) for n in ("server.key", "server.csr", "server.crt"))
    ext = os.path.join(d, "server.ext")
    _run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
          "-nodes", "-sha256", "-days", "30", "-keyout", ca_key, "-out", ca_crt,
          "-subj", "/CN=portcullis-bench-ca",
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth,clientAuth\n"
                "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
          "-sha256", "-keyout", key, "-out", csr, "-subj", "/CN=localhost"])
    _run(["openssl", "x509", "-req", "-sha256", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
          "-CAcreateserial", "-out", crt, "-days", "30", "-extfile", ext])
    return ca_crt, crt, key


class Notary:
    def __init__(self, url, ca, trust_dir):
        self.url, self.ca, self.trust_dir = url, ca, trust_dir

    def cli(self, *args):
        env = {"PATH": CLEAN_PATH, "HOME": self.trust_dir, **PASSPHRASES}
        return _run(["notary", "-s", self.url, "-d", self.trust_dir, "--tlscacert", self.ca,
                     *args], env=env)

    def sign_tag(self, gun, tag, manifest_bytes):
        """Sign TAG of GUN as `docker push` with content trust does (targets role)."""
        import hashlib
        self.cli("init", gun)
        self.cli("key", "rotate", gun, "snapshot", "-r")  # server-managed snapshot key
        self.cli("publish", gun)
        self.cli("addhash", gun, tag, str(len(manifest_bytes)), "--sha256",
                 hashlib.sha256(manifest_bytes).hexdigest(), "-p")
        return self.cli("list", gun)


def start_notary(tmp, start, free_ports, timeout=30):
    """Start notary-signer and notary-server under tmp/notary; returns a Notary."""
    d = os.path.join(tmp, "notary")
    ca, crt, key = make_certs(os.path.join(d, "certs"))
    server_port, signer_port = free_ports(2)
    signer_cfg = os.path.join(d, "notary-signer.json")
    server_cfg = os.path.join(d, "notary-server.json")
    with open(signer_cfg, "w") as f:
        f.write(f"""{{"server": {{"grpc_addr": "127.0.0.1:{signer_port}", "tls_cert_file": "{crt}",
  "tls_key_file": "{key}", "client_ca_file": "{ca}"}},
 "logging": {{"level": "warn"}}, "storage": {{"backend": "memory", "default_alias": "benchalias"}}}}
""")
    with open(server_cfg, "w") as f:
        f.write(f"""{{"server": {{"http_addr": "127.0.0.1:{server_port}", "tls_cert_file": "{crt}",
  "tls_key_file": "{key}"}},
 "trust_service": {{"type": "remote", "hostname": "127.0.0.1", "port": "{signer_port}",
   "key_algorithm": "ecdsa", "tls_ca_file": "{ca}", "tls_client_cert": "{crt}",
   "tls_client_key": "{key}"}},
 "storage": {{"backend": "memory"}}, "logging": {{"level": "warn"}}}}
""")
    signer = start("notary-signer", ["notary-signer", "-config", signer_cfg],
                   os.path.join(d, "notary-signer.log"),
                   env={"PATH": CLEAN_PATH, "NOTARY_SIGNER_BENCHALIAS": "bench-signer-pass"})
    _wait_tcp(signer_port, signer, "notary-signer", timeout)
    server = start("notary-server", ["notary-server", "-config", server_cfg],
                   os.path.join(d, "notary-server.log"), env={"PATH": CLEAN_PATH})
    url = f"https://127.0.0.1:{server_port}"
    ctx = ssl.create_default_context(cafile=ca)
    deadline = time.time() + timeout
    while True:
        if server.poll() is not None:
            raise SystemExit(f"notary-server exited ({server.returncode}); see {server.logpath}")
        try:
            with urllib.request.urlopen(f"{url}/_notary_server/health", context=ctx, timeout=2) as r:
                if r.status == 200:
                    break
        except Exception:
            pass
        if time.time() > deadline:
            raise SystemExit(f"notary-server not healthy after {timeout}s; see {server.logpath}")
        time.sleep(0.2)
    trust_dir = os.path.join(d, "client")
    os.makedirs(trust_dir, exist_ok=True)
    return Notary(url, ca, trust_dir)


def _wait_tcp(port, proc, what, timeout):
    import socket
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited ({proc.returncode}); see {proc.logpath}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} not listening on {port} after {timeout}s")
