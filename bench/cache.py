#!/usr/bin/env python3
"""Portcullis blob-cache benchmark (issue 10), stdlib only. Run through `bench/run.sh cache`.

One run, on loopback ports chosen at run time, in a fresh temp dir:
  - upstream: a Distribution registry (docker-registry, filesystem storage, access log on: it is
    what counts the upstream blob GETs) holding a BLOB_MIB pseudo-random blob and a manifest
    tagged v1 that references it;
  - the peer: a second docker-registry in `proxy:` mode (remoteurl = the upstream), fresh storage
    for each cold fill;
  - Portcullis with `cache.dir` set (fresh for each cold fill), in `enforce` mode against a real
    notary-server + notary-signer (bench/trust_setup.py; the tag is signed with `notary addhash`
    as scripts/demo.sh does) -- TRUST=skip uses `mode = "skip"` instead, without notary;
  - Portcullis with `cache.max_size = 0` (no blob cache: today's uncached stream) in the same
    trust mode, the same-run baseline for CPU per GB;
  - nginx as a reverse proxy (bench.py's config, no proxy_cache) and as a file server of the
    upstream registry's own blob file (sendfile): the "file served by nginx" reference.

Phases (each figure also as the ratio to direct measured in the same round; median of rounds):
  cold fill    first GET of the blob through Portcullis (fresh cache) and through the registry's
               proxy mode (fresh storage): MB/s, upstream blob GETs/HEADs counted in the
               upstream's access log, hop CPU s/GB (utime+stime from /proc/<pid>/stat);
  warm         single stream and 8 concurrent streams (curl) for direct, the Portcullis cache,
               Portcullis uncached, the registry proxy (warm), nginx proxy and nginx file, with
               hop CPU s/GB; upstream blob GETs during these phases (cache: must be 0);
  manifest     by tag, wrk -c1 p50/p99 (warm trust for Portcullis) for direct, the Portcullis
               cache, the registry proxy and nginx proxy; upstream requests during Portcullis's run;
  memory       a fresh Portcullis (fresh cache dir): VmRSS idle at start, peak RSS (VmHWM after
               `echo 5 > clear_refs`) during RSS_STREAMS (256) concurrent GETs of the blob cold
               (one upstream GET, the rest follow it) and again warm, VmRSS idle after the load
               and after one more single pull.

Knobs: QUICK=1 (64 MiB, 1 round, 3 s wrk), BLOB_MIB (512), ROUNDS (3), WRK_SECS (6),
RSS_STREAMS (256), TRUST=notary|skip, PC_BIN, PC_LOG_LEVEL (info), PC_EXTRA_ENV, KEEP=1,
MEMORY_ONLY=1 (the memory phase alone, printed as JSON; no report file), SMAPS_OUT=path (a
copy of the memory phase's /proc/<pid>/smaps 20 s after the load).
Writes bench/results/<UTC>-cache[-quick].md and prints it.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import trust_setup  # noqa: E402
from cache_settings import (  # noqa: E402
    B, BLOB_MIB, CACHE_DIR_PARENT, COLS, FILL_TRIES, MULTI, PC_BIN, REPO, ROUNDS, RSS_STREAMS,
    TAG, TRUST, log,
)
from cache_report import report  # noqa: E402


# Seconds after the load at which the idle RSS is sampled; the report's "idle after" is IDLE_AT.
IDLE_SERIES_S = (1, 3, 6, 9, 12, 15, 20)
IDLE_AT = 3


def stop_one(p):
    """Stop one child we started (its own session: signal its process group only)."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    B.children[:] = [(n, q) for n, q in B.children if q is not p]


def registry_yml(tmp, name, port, root, accesslog, remote=None):
    path = os.path.join(tmp, f"{name}.yml")
    proxy = f"proxy:\n  remoteurl: {remote}\n" if remote else ""
    with open(path, "w") as f:
        f.write(f"""version: 0.1
log:
  level: error
  accesslog:
    disabled: {'false' if accesslog else 'true'}
storage:
  filesystem:
    rootdirectory: {root}
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:{port}
{proxy}""")
    return path


def registry_env():
    # docker-registry reads REGISTRY_* as config overrides: none of ours leak in.
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("REGISTRY_", "PORTCULLIS_"))}


def portcullis_toml(tmp, name, port, admin, reg_port, cache_dir, max_size, notary):
    """bench.py's config (the default registry, log level), with this cache dir and max_size,
    and enforce mode against the notary server (or bench.py's skip mode without one)."""
    with open(B.portcullis_config(tmp, port, admin, reg_port)) as f:
        conf = f.read()
    trust = f"""mode = "enforce"

[registries.notary]
server = "{notary.url}"
ca_file = "{notary.ca}"

[registries.notary.trust_pinning]
tofu = true
""" if notary else 'mode = "skip"\n'
    for old, new in ((f'dir = "{tmp}/portcullis-cache"\n', f'dir = "{cache_dir}"\nmax_size = {max_size}\n'),
                     ('mode = "skip"\n', trust)):
        assert old in conf, old
        conf = conf.replace(old, new)
    path = os.path.join(tmp, f"{name}.toml")
    with open(path, "w") as f:
        f.write(conf)
    return path


def nginx_conf(tmp, proxy_port, file_port, reg_port, files_root):
    """bench.py's reverse proxy (Debian http defaults, default proxy buffering, no cache), plus
    a second server that serves the blob as a static file (sendfile) from files_root."""
    path = B.nginx_config(tmp, proxy_port, reg_port)
    with open(path) as f:
        conf = f.read().rstrip()
    assert conf.endswith("}")
    conf = conf[:-1] + f"""    server {{
        listen 127.0.0.1:{file_port};
        root {files_root};
    }}
}}
"""
    with open(path, "w") as f:
        f.write(conf)
    return path


def access_counts(logpath, digest):
    """(GETs, HEADs) of the blob, and all requests, in a registry's access log (combined format)."""
    gets = heads = total = 0
    with open(logpath, errors="replace") as f:
        for line in f:
            if '"GET /v2/' not in line and '"HEAD /v2/' not in line:
                continue
            total += 1
            if f"/blobs/sha256:{digest} " in line:
                if '"GET ' in line:
                    gets += 1
                else:
                    heads += 1
    return gets, heads, total


def settled_counts(logpath, digest):
    """The access log is written when a response ends: read until it stops changing."""
    last = access_counts(logpath, digest)
    for _ in range(20):
        time.sleep(0.3)
        now = access_counts(logpath, digest)
        if now == last:
            return now
        last = now
    return last


def wait_file(path, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.05)
    return False


def metric(admin, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


def manifest_ok(base):
    if B.http_status(f"{base}/v2/{REPO}/manifests/{TAG}", {"Accept": B.ACCEPT}) != 200:
        raise SystemExit(f"{base}: manifest by tag is not 200")


def sha_of(base, digest):
    r = subprocess.run(f"curl -sSf {base}/v2/{REPO}/blobs/sha256:{digest} | sha256sum",
                       shell=True, capture_output=True, text=True, check=True)
    return r.stdout.split()[0]


class Bench:
    def __init__(self, tmp):
        self.tmp = tmp
        self.n_start = 0

    # ------------------------------------------------------------------------------ processes

    def start_portcullis(self, name, cache_dir, max_size, port=None, admin=None):
        port, admin = port or B.free_ports(1)[0], admin or B.free_ports(1)[0]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
        env.update(B.PC_EXTRA_ENV)
        cfg = portcullis_toml(self.tmp, name, port, admin, self.reg_port, cache_dir, max_size,
                              self.notary)
        p = B.start(name, [PC_BIN, "serve", "--config", cfg],
                    os.path.join(self.tmp, f"{name}.log"), env=env)
        B.wait_ready(f"http://127.0.0.1:{admin}/readyz", p, name)
        p.base, p.admin, p.port, p.cache_dir = f"http://127.0.0.1:{port}", admin, port, cache_dir
        return p

    def _discard(self, attr, prefix):
        """Stop the process in self.<attr> (if any), remove its data dir; a new dir's path."""
        p = getattr(self, attr, None)
        if p is not None:
            stop_one(p)
            shutil.rmtree(p.data, ignore_errors=True)
        self.n_start += 1
        parent = CACHE_DIR_PARENT or self.tmp
        if CACHE_DIR_PARENT:
            parent = os.path.join(CACHE_DIR_PARENT, os.path.basename(self.tmp))
            os.makedirs(parent, exist_ok=True)
        return os.path.join(parent, f"{prefix}-{self.n_start}")

    def fresh_pc_cache(self, port=None, admin=None):
        """A Portcullis with a cache dir it has never seen (trust state included)."""
        d = self._discard("pc", "pc-cache")
        self.pc = self.start_portcullis("portcullis-cache", d, 10 << 30, port, admin)
        self.pc.data = d
        return self.pc

    def fresh_regproxy(self):
        root = self._discard("rp", "regproxy-data")
        port = self.rp_port
        p = B.start("registry-proxy", ["docker-registry", "serve",
                                       registry_yml(self.tmp, "regproxy", port, root, False,
                                                    self.direct)],
                    os.path.join(self.tmp, "regproxy.log"), env=registry_env())
        B.wait_ready(f"http://127.0.0.1:{port}/v2/", p, "registry proxy")
        p.base, p.root, p.data = f"http://127.0.0.1:{port}", root, root
        self.rp = p
        return p

    def rp_blob_file(self):
        d = self.digest
        return os.path.join(self.rp.root, "docker/registry/v2/blobs/sha256", d[:2], d, "data")

    def pc_blob_file(self):
        return os.path.join(self.pc.cache_dir, "blobs", "sha256", self.digest)

    def setup(self):
        tmp = self.tmp
        (self.reg_port, self.rp_port, self.ng_port, self.nf_port, self.pc_port,
         self.pc_admin) = B.free_ports(6)
        self.reg_root = os.path.join(tmp, "registry-data")
        self.reg_log = os.path.join(tmp, "registry.log")
        self.reg = B.start("registry", ["docker-registry", "serve",
                                        registry_yml(tmp, "registry", self.reg_port,
                                                     self.reg_root, True)],
                           self.reg_log, env=registry_env())
        self.direct = f"http://127.0.0.1:{self.reg_port}"
        B.wait_ready(f"{self.direct}/v2/", self.reg, "registry")

        log(f"generating and pushing a {BLOB_MIB} MiB blob")
        blob_path = os.path.join(tmp, "blob.bin")
        self.digest = B.make_blob(blob_path, BLOB_MIB)
        self.size = BLOB_MIB << 20
        B.push_blob(self.direct, blob_path, self.digest)
        os.unlink(blob_path)
        B.push_manifest(self.direct, tmp, self.digest, self.size)
        with open(os.path.join(tmp, "manifest.json"), "rb") as f:
            manifest = f.read()

        self.notary = None
        if TRUST == "notary":
            t0 = time.time()
            self.notary = trust_setup.start_notary(tmp, B.start, B.free_ports)
            gun = f"127.0.0.1:{self.reg_port}/{REPO}"
            self.notary.sign_tag(gun, TAG, manifest)
            log(f"notary up, {gun}:{TAG} signed ({time.time() - t0:.1f}s)")

        # nginx file server: <root>/v2/bench/blob/blobs/sha256:<hex> -> the registry's own file
        d = self.digest
        files = os.path.join(tmp, "files")
        blobs_dir = os.path.join(files, "v2", REPO, "blobs")
        os.makedirs(blobs_dir)
        os.symlink(os.path.join(self.reg_root, "docker/registry/v2/blobs/sha256", d[:2], d, "data"),
                   os.path.join(blobs_dir, f"sha256:{d}"))
        self.ng = B.start("nginx", ["nginx", "-e", os.path.join(tmp, "nginx", "startup.log"), "-c",
                                    nginx_conf(tmp, self.ng_port, self.nf_port, self.reg_port,
                                               files)],
                          os.path.join(tmp, "nginx.log"))
        B.wait_ready(f"http://127.0.0.1:{self.ng_port}/v2/", self.ng, "nginx")

        self.pc_nc = self.start_portcullis("portcullis-nocache",
                                           os.path.join(tmp, "pc-nocache"), 0)
        self.rp = None
        self.pc = None
        self.lua = os.path.join(tmp, "accept.lua")
        with open(self.lua, "w") as f:
            f.write(B.WRK_LUA)

    def bases(self):
        return {
            "direct": self.direct,
            "pc_cache": self.pc.base,
            "pc_nocache": self.pc_nc.base,
            "regproxy": self.rp.base,
            "nginx_proxy": f"http://127.0.0.1:{self.ng_port}",
            "nginx_file": f"http://127.0.0.1:{self.nf_port}",
        }

    def hop_pid(self, n):
        return {"pc_cache": self.pc.pid, "pc_nocache": self.pc_nc.pid, "regproxy": self.rp.pid,
                "nginx_proxy": self.ng.pid, "nginx_file": self.ng.pid}.get(n)

    # -------------------------------------------------------------------------------- phases

    def cold_fill(self, res, name, proc, entry_file):
        """First GET of the blob through a cache that has never seen it."""
        manifest_ok(proc.base)  # warm trust (Portcullis) / the tag (registry proxy) first
        g0, h0, _ = settled_counts(self.reg_log, self.digest)
        c0, r0 = B.group_cpu(proc.pid), B.group_cpu(self.reg.pid)
        bps, wall, _, _ = B.blob_streams(proc.base, self.digest, 1, self.size)
        stored = wait_file(entry_file, 10)
        g1, h1, _ = settled_counts(self.reg_log, self.digest)
        c1, r1 = B.group_cpu(proc.pid), B.group_cpu(self.reg.pid)
        gb = self.size / 1e9
        res[name].update({
            "cold_MBps": bps / 1e6,
            "cold_upstream_gets": g1 - g0,
            "cold_upstream_heads": h1 - h0,
            "cold_hop_cpu_s_per_GB": (c1 - c0) / gb,
            "cold_reg_cpu_s_per_GB": (r1 - r0) / gb,
            "cold_stored": stored,
        })
        # A first GET that did not leave the blob in the cache (Portcullis gives caching up when
        # its disk writer falls behind the stream) is a miss of "one upstream GET": GET again
        # until it is stored (FILL_TRIES in all), so the warm phases are warm, and count them all.
        # If it never is, the run goes on and the report says the "warm" figures were not.
        tries = 1
        while not stored and tries < FILL_TRIES:
            log(f"{name}: blob not in the cache after the cold GET {tries}; GET again")
            B.blob_streams(proc.base, self.digest, 1, self.size)
            stored = wait_file(entry_file, 10)
            tries += 1
        g2, h2, _ = settled_counts(self.reg_log, self.digest)
        res[name].update({"gets_until_stored": (g2 - g0) if stored else f"never ({g2 - g0})",
                          "client_gets_until_stored": tries if stored else None})
        if not stored:
            log(f"{name}: the blob is not in its cache after {tries} GETs; going on uncached")
            return
        # The first hit after the fill, before anything else reads the entry: Portcullis wrote
        # it with direct I/O, so this read comes from the disk (the registry proxy's from the
        # page cache its buffered write left). The warm streams later read the page cache.
        c0 = B.group_cpu(proc.pid)
        bps, _, _, _ = B.blob_streams(proc.base, self.digest, 1, self.size)
        c1 = B.group_cpu(proc.pid)
        res[name].update({"first_hit_MBps": bps / 1e6,
                          "first_hit_hop_cpu_s_per_GB": (c1 - c0) / gb})

    def streams(self, res, order, key, n):
        for name in order:
            base = self.bases()[name]
            pid = self.hop_pid(name)
            g0, h0, _ = settled_counts(self.reg_log, self.digest) if name in ("pc_cache", "regproxy") else (0, 0, 0)
            c0 = B.group_cpu(pid) if pid else 0
            bps, wall, _, _ = B.blob_streams(base, self.digest, n, self.size)
            c1 = B.group_cpu(pid) if pid else 0
            res[name][f"{key}_MBps"] = bps / 1e6
            if pid:
                res[name][f"{key}_hop_cpu_s_per_GB"] = (c1 - c0) / (n * self.size / 1e9)
            if name in ("pc_cache", "regproxy"):
                g1, h1, _ = settled_counts(self.reg_log, self.digest)
                res[name]["warm_upstream_blob_requests"] = (
                    res[name].get("warm_upstream_blob_requests", 0) + (g1 - g0) + (h1 - h0))

    def manifests(self, res, order):
        for name in order:
            if name in ("pc_nocache", "nginx_file"):
                continue
            _, _, t0 = access_counts(self.reg_log, self.digest)
            lat = B.wrk_latency(self.bases()[name], 1, self.lua)
            _, _, t1 = settled_counts(self.reg_log, self.digest)
            res[name]["m_p50_ms"] = lat["p50_ms"]
            res[name]["m_p99_ms"] = lat["p99_ms"]
            res[name]["m_rps"] = lat["rps"]
            res[name]["m_requests"] = lat["requests"]
            res[name]["m_upstream_requests"] = t1 - t0

    def memory(self):
        """A fresh Portcullis: idle, RSS_STREAMS cold (one fill, the rest follow), then warm."""
        out = {}
        pc = self.fresh_pc_cache(self.pc_port, self.pc_admin)
        time.sleep(1)
        out["idle_start_MiB"] = B.proc_status_kib(pc.pid, "VmRSS") / 1024
        manifest_ok(pc.base)
        g0, h0, _ = settled_counts(self.reg_log, self.digest)
        hits0 = metric(pc.admin, "portcullis_cache_hits_total")
        def streams():
            """RSS_STREAMS concurrent GETs: blob_streams' figures and the hop's CPU s/GB."""
            cpu0 = B.group_cpu(pc.pid)
            got = B.blob_streams(pc.base, self.digest, RSS_STREAMS, self.size, pid_for_rss=pc.pid)
            return got, (B.group_cpu(pc.pid) - cpu0) / (RSS_STREAMS * self.size / 1e9)

        log(f"memory: {RSS_STREAMS} concurrent cold GETs")
        (bps, wall, hwm, sampled), out["cold_cpu_s_per_GB"] = streams()
        out["cold_stored"] = wait_file(self.pc_blob_file(), 10)
        g1, h1, _ = settled_counts(self.reg_log, self.digest)
        out.update(cold_hwm_MiB=hwm / 1024, cold_sampled_MiB=sampled / 1024,
                   cold_MBps=bps / 1e6, cold_upstream_gets=g1 - g0,
                   cold_upstream_heads=h1 - h0,
                   joins=metric(pc.admin, "portcullis_cache_inflight_joins_total"),
                   hits=metric(pc.admin, "portcullis_cache_hits_total") - hits0)
        if not out["cold_stored"]:  # make the warm phase warm (the miss is in the report)
            B.blob_streams(pc.base, self.digest, 1, self.size)
            if not wait_file(self.pc_blob_file(), 10):
                log("memory phase: the blob is not in the cache; the 'warm' phase is not")
            g1, h1, _ = settled_counts(self.reg_log, self.digest)
        log(f"memory: {RSS_STREAMS} concurrent warm GETs")
        (bps, wall, hwm, sampled), out["warm_cpu_s_per_GB"] = streams()
        g2, h2, _ = settled_counts(self.reg_log, self.digest)
        out.update(warm_hwm_MiB=hwm / 1024, warm_sampled_MiB=sampled / 1024, warm_MBps=bps / 1e6,
                   warm_upstream_requests=(g2 - g1) + (h2 - h1))
        # How the idle figure settles, with the thread count: tokio's blocking threads (hashing,
        # disk reads) live 10 s after their last task; jemalloc purges on a timer.
        series = []
        t_load = time.time()
        for t in IDLE_SERIES_S:
            time.sleep(max(0.0, t_load + t - time.time()))
            # One read of /proc/<pid>/status: the figures of a row are of the same instant.
            st = B.proc_status(pc.pid)
            rss, anon, files = (st[k] / 1024 for k in ("VmRSS", "RssAnon", "RssFile"))
            series.append([t, rss, anon, st["Threads"]])
            if t == IDLE_AT:
                # VmRSS also counts the binary's own pages (file-backed, shared, reclaimable):
                # say how much is the process's memory (heap, stacks) and how much mapped files.
                out.update(idle_after_MiB=rss, idle_after_RssAnon_MiB=anon,
                           idle_after_RssFile_MiB=files)
        out["idle_series"] = series
        if os.environ.get("SMAPS_OUT"):
            shutil.copyfile(f"/proc/{pc.pid}/smaps", os.environ["SMAPS_OUT"])
        # An allocator that purges only when a thread allocates again (mimalloc did) gives
        # some of a burst back then: one more pull shows what stays.
        B.blob_streams(pc.base, self.digest, 1, self.size)
        time.sleep(3)
        out["idle_next_MiB"] = B.proc_status_kib(pc.pid, "VmRSS") / 1024
        out["idle_next_RssAnon_MiB"] = B.proc_status_kib(pc.pid, "RssAnon") / 1024
        out["alive"] = pc.poll() is None
        return out

    def run(self):
        self.setup()
        rounds = []
        for r in range(ROUNDS):
            res = {n: {} for n in COLS}
            log(f"round {r + 1}/{ROUNDS}: cold fills")
            pc = self.fresh_pc_cache(self.pc_port, self.pc_admin)
            res["pc_cache"]["idle_start_MiB"] = B.proc_status_kib(pc.pid, "VmRSS") / 1024
            self.cold_fill(res, "pc_cache", pc, self.pc_blob_file())
            rp = self.fresh_regproxy()
            self.cold_fill(res, "regproxy", rp, self.rp_blob_file())
            if r == 0:  # the bytes each target serves are the blob (after the cold fills)
                for n, base in self.bases().items():
                    if sha_of(base, self.digest) != self.digest:
                        raise SystemExit(f"{n}: blob bytes differ from sha256:{self.digest}")
                    if n != "nginx_file":
                        manifest_ok(base)
            hits0 = metric(pc.admin, "portcullis_cache_hits_total")
            order = COLS[r % len(COLS):] + COLS[:r % len(COLS)]
            log(f"round {r + 1}/{ROUNDS}: warm streams, order {order}")
            self.streams(res, order, "single", 1)
            self.streams(res, order, f"multi{MULTI}", MULTI)
            res["pc_cache"]["warm_cache_hits"] = metric(pc.admin, "portcullis_cache_hits_total") - hits0
            log(f"round {r + 1}/{ROUNDS}: manifest by tag")
            self.manifests(res, order)
            rounds.append(res)
            log(json.dumps(res))
        log("memory phase")
        mem = self.memory()
        log(json.dumps(mem))
        return rounds, mem


# ------------------------------------------------------------------------------------ report


def main():
    if not os.path.exists(PC_BIN):
        raise SystemExit(f"{PC_BIN} missing: run cargo build --release (bench/run.sh cache does)")
    tools = ["docker-registry", "nginx", "wrk", "curl"]
    if TRUST == "notary":
        tools += ["notary-server", "notary-signer", "notary", "openssl"]
    elif TRUST != "skip":
        raise SystemExit("TRUST is notary or skip")
    for tool in tools:
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found (TRUST=skip runs without notary)")
    tmp = tempfile.mkdtemp(prefix="portcullis-bench-cache-")
    log(f"temp dir {tmp}; blob {BLOB_MIB} MiB; rounds {ROUNDS}; wrk {B.WRK_SECS}s; "
        f"trust {TRUST}; {PC_BIN}")
    load_start = os.getloadavg()
    try:
        b = Bench(tmp)
        if os.environ.get("MEMORY_ONLY") == "1":  # e.g. an allocator A/B (PROFILE.md section 5)
            b.setup()
            print(json.dumps(b.memory(), indent=1))
            return
        rounds, mem = b.run()
        trust = ("enforce, real notary-server + notary-signer, tag signed with `notary addhash` "
                 "(targets role), TOFU root; every cold fill starts from an empty cache dir "
                 "(trust state too), warmed by one manifest GET" if TRUST == "notary" else
                 "mode = \"skip\" (TRUST=skip): no trust check, digests still verified")
        report(rounds, mem, load_start, {"trust": trust})
    finally:
        if B.finish(tmp) and CACHE_DIR_PARENT:
            shutil.rmtree(os.path.join(CACHE_DIR_PARENT, os.path.basename(tmp)),
                          ignore_errors=True)


if __name__ == "__main__":
    B.entry(main)
