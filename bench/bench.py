#!/usr/bin/env python3
"""Portcullis benchmark driver (stdlib only). Run through bench/run.sh.

Starts, in a fresh temp dir on loopback ports chosen at run time:
  - a throwaway Distribution registry (docker-registry, filesystem storage),
  - Portcullis (target/release/portcullis, mode = "skip": digest verification while streaming
    still happens for every blob),
  - Debian's nginx as a plain reverse proxy with default buffering,
pushes one deterministic pseudo-random blob plus a small OCI manifest, then measures, per round,
direct vs Portcullis vs nginx: single-stream blob throughput, 8-stream aggregate throughput,
manifest GET latency (wrk, p50/p99 at concurrency 1 and 64), and Portcullis's peak RSS during 64
concurrent blob streams. Every figure is also given as a ratio to the direct registry measured in
the same round; the table shows the median over rounds.

Environment knobs: QUICK=1 (64 MiB blob, 1 round, short wrk runs), ROUNDS, BLOB_MIB, WRK_SECS,
RSS_STREAMS, PC_LOG_LEVEL (default info, as in config/portcullis.toml), KEEP=1 (keep temp dir),
PC_BIN, PC_EXTRA_ENV ("K=V ..." for Portcullis only), PHASES (blob,latency,rss).
"""

import hashlib
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
QUICK = os.environ.get("QUICK") == "1"
ROUNDS = int(os.environ.get("ROUNDS", "1" if QUICK else "3"))
BLOB_MIB = int(os.environ.get("BLOB_MIB", "64" if QUICK else "512"))
WRK_SECS = int(os.environ.get("WRK_SECS", "3" if QUICK else "6"))
RSS_STREAMS = int(os.environ.get("RSS_STREAMS", "64"))
MULTI_STREAMS = 8
LOG_LEVEL = os.environ.get("PC_LOG_LEVEL", "info")
# Extra environment for the Portcullis process only, e.g. "MIMALLOC_ARENA_EAGER_COMMIT=1".
PC_EXTRA_ENV = dict(kv.split("=", 1) for kv in os.environ.get("PC_EXTRA_ENV", "").split())
# PIN=1: registry and clients (curl, wrk) on CPU 0, the hop (Portcullis, nginx) on CPU 1: the
# "proxy has a core of its own" topology, instead of everything sharing both cores.
PIN = os.environ.get("PIN") == "1"
SIDE = ["taskset", "-c", "0"] if PIN else []
HOP = ["taskset", "-c", "1"] if PIN else []
# Which phases to run: blob,latency,rss (default all); e.g. PHASES=rss for a memory experiment.
PHASES = set(os.environ.get("PHASES", "blob,latency,rss").split(","))
PC_BIN = os.environ.get("PC_BIN", os.path.join(ROOT, "target", "release", "portcullis"))
REPO = "bench/blob"
TAG = "v1"
SEED = 20240601
ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)

children = []  # (name, Popen) of every process this script started


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def start(name, argv, logpath, **kw):
    f = open(logpath, "ab")
    # Portcullis reads PORTCULLIS_* as config overrides: none from our environment leak in.
    kw.setdefault("env", {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")})
    p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, start_new_session=True, **kw)
    children.append((name, p))
    p.logpath = logpath
    log(f"started {name} pid {p.pid}")
    return p


def stop_all():
    for name, p in reversed(children):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)  # its own session: only what we started
            except ProcessLookupError:
                pass
    deadline = time.time() + 10
    for name, p in reversed(children):
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    children.clear()


def finish(tmp):
    """Stop what the run started; remove its temp dir unless KEEP=1. True if it was removed."""
    stop_all()
    if os.environ.get("KEEP") == "1":
        log(f"kept {tmp}")
        return False
    shutil.rmtree(tmp, ignore_errors=True)
    return True


def http_status(url, headers=None):
    try:
        req = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(req, timeout=2) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception:
        return None


def wait_ready(url, proc, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            tail = open(proc.logpath, errors="replace").read()[-3000:]
            raise SystemExit(f"{what} exited with {proc.returncode} before it was ready:\n{tail}")
        if http_status(url) == 200:
            return
        time.sleep(0.1)
    raise SystemExit(f"{what} not ready after {timeout}s ({url})")


def run(argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw)


# ---------------------------------------------------------------------------------------- setup


def make_blob(path, mib):
    """Deterministic pseudo-random bytes (Mersenne Twister, fixed seed); returns sha256 hex."""
    rng = random.Random(SEED)
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(mib):
            chunk = rng.randbytes(1 << 20)
            h.update(chunk)
            f.write(chunk)
    return h.hexdigest()


def push_blob(reg, path, digest):
    """Monolithic upload: POST .../blobs/uploads/ then PUT <location>&digest=... with the data."""
    out = run(["curl", "-sS", "-D", "-", "-o", "/dev/null", "-X", "POST",
               f"{reg}/v2/{REPO}/blobs/uploads/"]).stdout
    loc = None
    for line in out.splitlines():
        if line.lower().startswith("location:"):
            loc = line.split(":", 1)[1].strip()
    if not loc:
        raise SystemExit(f"no Location in upload response:\n{out}")
    if loc.startswith("/"):
        loc = reg + loc
    sep = "&" if "?" in loc else "?"
    code = run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT",
                "-H", "Content-Type: application/octet-stream", "-T", path,
                f"{loc}{sep}digest=sha256:{digest}"]).stdout
    if code != "201":
        raise SystemExit(f"blob PUT returned {code}")


def push_manifest(reg, tmp, layer_digest, layer_size):
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
    }, separators=(",", ":")).encode()
    cpath = os.path.join(tmp, "config.json")
    with open(cpath, "wb") as f:
        f.write(config)
    cdig = hashlib.sha256(config).hexdigest()
    push_blob(reg, cpath, cdig)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": f"sha256:{cdig}", "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": f"sha256:{layer_digest}", "size": layer_size}],
    }, separators=(",", ":")).encode()
    mpath = os.path.join(tmp, "manifest.json")
    with open(mpath, "wb") as f:
        f.write(manifest)
    code = run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT",
                "-H", "Content-Type: application/vnd.oci.image.manifest.v1+json",
                "--data-binary", f"@{mpath}", f"{reg}/v2/{REPO}/manifests/{TAG}"]).stdout
    if code != "201":
        raise SystemExit(f"manifest PUT returned {code}")
    return hashlib.sha256(manifest).hexdigest(), len(manifest)


def registry_config(tmp, port):
    path = os.path.join(tmp, "registry.yml")
    with open(path, "w") as f:
        f.write(f"""version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {tmp}/registry-data
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:{port}
""")
    return path


def portcullis_config(tmp, port, admin, reg_port, cache_max_size=None):
    path = os.path.join(tmp, "portcullis.toml")
    max_size = "" if cache_max_size is None else f"max_size = {cache_max_size}\n"
    with open(path, "w") as f:
        f.write(f"""[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin}"

[cache]
dir = "{tmp}/portcullis-cache"
{max_size}
[log]
level = "{LOG_LEVEL}"

[[registries]]
name = "127.0.0.1:{reg_port}"
upstream = "http://127.0.0.1:{reg_port}"
default = true
mode = "skip"
""")
    return path


def nginx_config(tmp, port, reg_port):
    """A plain reverse proxy as a user would write it: Debian's http defaults (sendfile,
    tcp_nopush, access log), proxy buffering left at its defaults (on, 8 x 4k|8k buffers,
    temp files up to 1 GiB)."""
    d = os.path.join(tmp, "nginx")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(f"""user root;
worker_processes auto;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
daemon off;
events {{ worker_connections 1024; }}
http {{
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy_temp;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{reg_port};
        }}
    }}
}}
""")
    return path


# ----------------------------------------------------------------------------------- measuring


def blob_streams(base, digest, n, expect_bytes, pid_for_rss=None):
    """n concurrent curl downloads of the blob; returns (aggregate bytes/s, wall s, peak rss)."""
    url = f"{base}/v2/{REPO}/blobs/sha256:{digest}"
    argv = SIDE + ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", url]
    peak_sample = 0
    if pid_for_rss:
        with open(f"/proc/{pid_for_rss}/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM so the peak is this phase's
    t0 = time.perf_counter()
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(n)]
    if pid_for_rss:
        while any(p.poll() is None for p in procs):
            peak_sample = max(peak_sample, proc_status_kib(pid_for_rss, "VmRSS"))
            time.sleep(0.05)
    outs = [p.communicate() for p in procs]
    wall = time.perf_counter() - t0
    total = 0
    for (out, err), p in zip(outs, procs):
        parts = out.split()
        if p.returncode != 0 or len(parts) != 2 or parts[0] != "200" or int(parts[1]) != expect_bytes:
            raise SystemExit(f"blob download via {base} failed: rc={p.returncode} out={out!r} err={err!r}")
        total += int(parts[1])
    hwm = proc_status_kib(pid_for_rss, "VmHWM") if pid_for_rss else None
    return total / wall, wall, hwm, peak_sample


def group_cpu(pgid):
    """CPU seconds (user+sys) of every live process in process group pgid (each child we start
    leads its own session, so this is e.g. nginx master + workers)."""
    tck = os.sysconf("SC_CLK_TCK")
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                parts = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(parts[2]) == pgid:
            total += int(parts[11]) + int(parts[12])
    return total / tck


class CpuMeter:
    """CPU seconds spent by the registry and by the hop under test during a measurement."""

    def __init__(self, pgids):
        self.pgids = pgids

    def __enter__(self):
        self.start = {k: group_cpu(v) for k, v in self.pgids.items()}
        return self

    def __exit__(self, *exc):
        self.used = {k: group_cpu(v) - self.start[k] for k, v in self.pgids.items()}


def proc_status(pid):
    """The numeric fields of /proc/<pid>/status (kB for sizes), read at one instant."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                out[key] = int(parts[0])
    return out


def proc_status_kib(pid, key):
    return proc_status(pid).get(key, 0)


def wrk_latency(base, conc, lua):
    url = f"{base}/v2/{REPO}/manifests/{TAG}"
    threads = 1 if conc == 1 else 2
    out = run(SIDE + ["wrk", f"-t{threads}", f"-c{conc}", f"-d{WRK_SECS}s", "--timeout", "10s",
               "-s", lua, url]).stdout
    for line in out.splitlines():
        if line.startswith("BENCH "):
            kv = dict(x.split("=") for x in line.split()[1:])
            if int(kv["non2xx"]) or int(kv["errors"]):
                raise SystemExit(f"wrk against {url}: errors\n{out}")
            return {
                "p50_ms": int(kv["p50"]) / 1000.0,
                "p99_ms": int(kv["p99"]) / 1000.0,
                "rps": int(kv["requests"]) / (int(kv["duration"]) / 1e6),
                "requests": int(kv["requests"]),
            }
    raise SystemExit(f"wrk output without BENCH line:\n{out}")


WRK_LUA = """wrk.headers["Accept"] = "%s"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH p50=%%d p99=%%d requests=%%d duration=%%d errors=%%d non2xx=%%d\\n",
    latency:percentile(50), latency:percentile(99), summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status))
end
""" % ACCEPT


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    if not os.path.exists(PC_BIN):
        raise SystemExit(f"{PC_BIN} missing: run cargo build --release (bench/run.sh does)")
    for tool in ("docker-registry", "nginx", "wrk", "curl"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found")
    tmp = tempfile.mkdtemp(prefix="portcullis-bench-")
    log(f"temp dir {tmp}; blob {BLOB_MIB} MiB; rounds {ROUNDS}; wrk {WRK_SECS}s")
    load_start = os.getloadavg()
    try:
        reg_port, pc_port, pc_admin, ng_port = free_ports(4)
        reg = start("registry", SIDE + ["docker-registry", "serve", registry_config(tmp, reg_port)],
                    os.path.join(tmp, "registry.log"))
        direct = f"http://127.0.0.1:{reg_port}"
        wait_ready(f"{direct}/v2/", reg, "registry")

        log("generating blob")
        blob_path = os.path.join(tmp, "blob.bin")
        digest = make_blob(blob_path, BLOB_MIB)
        size = BLOB_MIB << 20
        log(f"pushing blob sha256:{digest[:16]}...")
        push_blob(direct, blob_path, digest)
        os.unlink(blob_path)
        mdig, mlen = push_manifest(direct, tmp, digest, size)

        pc_env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
        pc_env.update(PC_EXTRA_ENV)
        pc = start("portcullis", HOP + [PC_BIN, "serve", "--config",
                                  # No blob cache: every GET is the verifying stream.
                                  portcullis_config(tmp, pc_port, pc_admin, reg_port, 0)],
                   os.path.join(tmp, "portcullis.log"), env=pc_env)
        wait_ready(f"http://127.0.0.1:{pc_admin}/readyz", pc, "portcullis")
        ng = start("nginx", HOP + ["nginx", "-e", os.path.join(tmp, "nginx", "startup.log"), "-c",
                             nginx_config(tmp, ng_port, reg_port)],
                   os.path.join(tmp, "nginx.log"))
        wait_ready(f"http://127.0.0.1:{ng_port}/v2/", ng, "nginx")
        targets = {
            "direct": direct,
            "portcullis": f"http://127.0.0.1:{pc_port}",
            "nginx": f"http://127.0.0.1:{ng_port}",
        }
        # Sanity: the bytes through each hop are the blob, and the manifest is served.
        for name, base in targets.items():
            r = subprocess.run(f"curl -sSf {base}/v2/{REPO}/blobs/sha256:{digest} | sha256sum",
                               shell=True, capture_output=True, text=True, check=True)
            if r.stdout.split()[0] != digest:
                raise SystemExit(f"{name}: blob bytes differ from sha256:{digest}")
            if http_status(f"{base}/v2/{REPO}/manifests/{TAG}", {"Accept": ACCEPT}) != 200:
                raise SystemExit(f"{name}: manifest GET is not 200")
        lua = os.path.join(tmp, "accept.lua")
        with open(lua, "w") as f:
            f.write(WRK_LUA)

        hop_pid = {"portcullis": pc.pid, "nginx": ng.pid}
        rounds = []
        names = list(targets)
        for r in range(ROUNDS):
            order = names[r % 3:] + names[:r % 3]  # rotate who goes first
            res = {n: {} for n in names}
            log(f"round {r + 1}/{ROUNDS}, order {order}")
            def meter(n):
                pg = {"registry": reg.pid}
                if n != "direct":
                    pg["hop"] = hop_pid[n]
                return CpuMeter(pg)

            for key, streams in (("single", 1), ("multi8", MULTI_STREAMS)) if "blob" in PHASES else ():
                for n in order:
                    with meter(n) as m:
                        bps, wall, _, _ = blob_streams(targets[n], digest, streams, size)
                    gb = streams * size / 1e9
                    res[n][f"{key}_MBps"] = bps / 1e6
                    res[n][f"{key}_reg_cpu_s_per_GB"] = m.used["registry"] / gb
                    if n != "direct":
                        res[n][f"{key}_hop_cpu_s_per_GB"] = m.used["hop"] / gb
            for conc in (1, 64) if "latency" in PHASES else ():
                for n in order:
                    with meter(n) as m:
                        lat = wrk_latency(targets[n], conc, lua)
                    res[n][f"c{conc}_p50_ms"] = lat["p50_ms"]
                    res[n][f"c{conc}_p99_ms"] = lat["p99_ms"]
                    res[n][f"c{conc}_rps"] = lat["rps"]
                    req = max(1, lat["requests"])
                    res[n][f"c{conc}_reg_cpu_us_per_req"] = m.used["registry"] / req * 1e6
                    if n != "direct":
                        res[n][f"c{conc}_hop_cpu_us_per_req"] = m.used["hop"] / req * 1e6
            if "rss" in PHASES:
                res["portcullis"]["rss_idle_before_MiB"] = proc_status_kib(pc.pid, "VmRSS") / 1024
                bps, wall, hwm, sampled = blob_streams(targets["portcullis"], digest,
                                                       RSS_STREAMS, size, pid_for_rss=pc.pid)
                res["portcullis"]["rss64_hwm_MiB"] = hwm / 1024
                res["portcullis"]["rss64_sampled_MiB"] = sampled / 1024
                res["portcullis"]["rss64_MBps"] = bps / 1e6
            rounds.append(res)
            log(json.dumps(res))
        pc_alive = pc.poll() is None
        if PHASES == {"rss"}:
            print(json.dumps([r["portcullis"] for r in rounds], indent=1))
            return
        report(tmp, rounds, digest, size, load_start, pc_alive)
    finally:
        finish(tmp)


def report(tmp, rounds, digest, size, load_start, pc_alive):
    nan = float("nan")

    def ratio(n, key):
        return median([r[n][key] / r["direct"][key] for r in rounds
                       if key in r[n] and r["direct"].get(key)]) if rounds else nan

    def med(n, key):
        return median([r[n][key] for r in rounds if key in r[n]])

    rows = []
    targets_met = {}
    # (label, key, higher_is_better)
    for label, key in [("single-stream blob MB/s", "single_MBps"),
                       (f"{MULTI_STREAMS} streams aggregate MB/s", "multi8_MBps")]:
        d, p, g = med("direct", key), med("portcullis", key), med("nginx", key)
        rows.append((label, f"{d:.0f}", f"{p:.0f} ({ratio('portcullis', key):.2f})",
                     f"{g:.0f} ({ratio('nginx', key):.2f})"))
        k = key.replace("_MBps", "")
        rows.append((f"  CPU s/GB: registry; hop", f"{med('direct', k + '_reg_cpu_s_per_GB'):.2f}",
                     f"{med('portcullis', k + '_reg_cpu_s_per_GB'):.2f}; "
                     f"**{med('portcullis', k + '_hop_cpu_s_per_GB'):.2f}**",
                     f"{med('nginx', k + '_reg_cpu_s_per_GB'):.2f}; "
                     f"**{med('nginx', k + '_hop_cpu_s_per_GB'):.2f}**"))
    for conc in (1, 64):
        for q in ("p50", "p99"):
            key = f"c{conc}_{q}_ms"
            d, p, g = med("direct", key), med("portcullis", key), med("nginx", key)
            add_p = median([r["portcullis"][key] - r["direct"][key] for r in rounds
                            if key in r["direct"]])
            add_g = median([r["nginx"][key] - r["direct"][key] for r in rounds
                            if key in r["direct"]])
            rows.append((f"manifest GET {q} ms, c={conc}", f"{d:.3f}",
                         f"{p:.3f} ({ratio('portcullis', key):.2f}, +{add_p:.3f} ms)",
                         f"{g:.3f} ({ratio('nginx', key):.2f}, +{add_g:.3f} ms)"))
        key = f"c{conc}_rps"
        rows.append((f"manifest GET req/s, c={conc}", f"{med('direct', key):.0f}",
                     f"{med('portcullis', key):.0f} ({ratio('portcullis', key):.2f})",
                     f"{med('nginx', key):.0f} ({ratio('nginx', key):.2f})"))
        k = f"c{conc}"
        rows.append((f"  CPU us/request: registry; hop",
                     f"{med('direct', k + '_reg_cpu_us_per_req'):.0f}",
                     f"{med('portcullis', k + '_reg_cpu_us_per_req'):.0f}; "
                     f"**{med('portcullis', k + '_hop_cpu_us_per_req'):.0f}**",
                     f"{med('nginx', k + '_reg_cpu_us_per_req'):.0f}; "
                     f"**{med('nginx', k + '_hop_cpu_us_per_req'):.0f}**"))
    hwm = med("portcullis", "rss64_hwm_MiB")
    rows.append((f"Portcullis VmHWM MiB, {RSS_STREAMS} streams", "-",
                 f"{hwm:.1f} (sampled VmRSS max {med('portcullis', 'rss64_sampled_MiB'):.1f}; "
                 f"VmRSS before {med('portcullis', 'rss_idle_before_MiB'):.1f}; "
                 f"{med('portcullis', 'rss64_MBps'):.0f} MB/s aggregate)", "-"))

    single = ratio("portcullis", "single_MBps")
    multi = ratio("portcullis", "multi8_MBps")
    added = median([r["portcullis"]["c1_p50_ms"] - r["direct"]["c1_p50_ms"] for r in rounds
                    if "c1_p50_ms" in r["direct"]])
    targets_met = [
        ("single-stream >= 0.9 of direct", f"{single:.2f}", single >= 0.9),
        (f"{MULTI_STREAMS} streams >= 0.6 of direct", f"{multi:.2f}", multi >= 0.6),
        ("p50 added latency < 1 ms (c=1)", f"{added:+.3f} ms", added < 1.0),
        (f"RSS < 64 MiB at {RSS_STREAMS} streams", f"{hwm:.1f} MiB", hwm < 64),
    ]

    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "src"],
                           capture_output=True, text=True).stdout.strip()
    now = datetime.now(timezone.utc)
    lines = [
        f"# Portcullis benchmark {now.strftime('%Y-%m-%d %H:%M:%S UTC')}",
        "",
        f"- commit {rev}{' (src/ modified)' if dirty else ''}; {'QUICK ' if QUICK else ''}"
        f"blob {size >> 20} MiB; rounds {len(rounds)}; wrk {WRK_SECS}s per point; "
        f"Portcullis log level {LOG_LEVEL}"
        + ("; PIN=1: registry + clients on CPU 0, hop on CPU 1" if PIN else "")
        + (f"; Portcullis extra env {PC_EXTRA_ENV}" if PC_EXTRA_ENV else ""),
        f"- machine: {os.cpu_count()} cores, load average at start "
        f"{load_start[0]:.2f}/{load_start[1]:.2f}/{load_start[2]:.2f}, at end "
        f"{os.getloadavg()[0]:.2f} (shared machine: absolute figures are noisy, ratios less so)",
        f"- Portcullis still running at the end: {pc_alive}",
        "",
        "Median over rounds; in parentheses the median of the per-round ratio to direct "
        "(for latency also the median added ms). CPU rows: CPU seconds per GB moved (or "
        "microseconds per request) of the registry and, in bold, of the hop itself (nginx: "
        "master + workers), from /proc/<pid>/stat: less sensitive to the machine's load than "
        "wall-clock figures.",
        "",
        "| measure | direct | portcullis (ratio) | nginx (ratio) |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    lines += ["", "| target | measured | met |", "| --- | --- | --- |"]
    lines += [f"| {a} | {b} | {'yes' if ok else 'NO'} |" for a, b, ok in targets_met]
    lines += ["", "<details><summary>raw rounds</summary>", "", "```json",
              json.dumps(rounds, indent=1), "```", "</details>", ""]
    text = "\n".join(lines)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    name = (now.strftime("%Y%m%dT%H%M%SZ") + ("-quick" if QUICK else "") + ("-pin" if PIN else "")
            + ("" if PHASES == {"blob", "latency", "rss"} else "-" + "-".join(sorted(PHASES)))
            + ".md")
    out = os.path.join(HERE, "results", name)
    with open(out, "w") as f:
        f.write(text)
    print(text)
    log(f"wrote {out}")


def entry(main_fn):
    """Run main_fn as a script: SIGTERM and ^C end it through its finally (stop what it started)."""
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    try:
        main_fn()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    entry(main)
