#!/usr/bin/env python3
"""A/B of Portcullis builds on one blob stream, stdlib only. Run through `bench/run.sh ab`.

What it answers: does build B cost less CPU per GB than build A on the blob path, measured in the
same run, interleaved, on the same registry, with nginx as the same-run reference. It is how
bench/PROFILE.md section 6 compared main with the last build before the cache (reqwest) and
with the wide-read budget.

Setup (fresh temp dir, loopback ports chosen at run time): a Distribution registry holding a
BLOB_MIB pseudo-random blob (bench.py's), nginx as a plain reverse proxy in front of it
(bench.py's config).

Per round, for each mode in MODES and each build in BINS (the order rotates each round):
  uncached  a fresh Portcullis with `cache.max_size = 0` (the verifying stream alone);
  cold      a fresh Portcullis with an empty cache dir: the GET is a cache fill (download,
            hash, write, fsync, rename); the CPU is read after the entry appeared;
a fresh process for every GET, so no build profits from a warm heap or a pooled connection,
`mode = "skip"` (no trust lookup: the blob path alone). One `curl` of the blob through it:
hop CPU s/GB (utime+stime from /proc/<pid>/stat), MB/s, minor page faults per GB, the ratio
to one GET through nginx in the same round, the peak RSS during the GET (VmHWM, reset first) and
the anonymous RSS 2 s after it (what a build keeps of one stream). Medians over ROUNDS, with the range.

Knobs: BINS="name=path,name=path" (default: main=target/release/portcullis), MODES
(uncached,cold), ROUNDS (6), BLOB_MIB (512), NO_CACHE="name,..." (builds without a cache:
uncached only), KEEP=1. Writes bench/results/<UTC>-ab.md and
prints it.
"""

import os
import re
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench as B  # noqa: E402
from cache import registry_env, registry_yml, stop_one, wait_file  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "6"))
MODES = os.environ.get("MODES", "uncached,cold").split(",")
BINS = [kv.split("=", 1) for kv in os.environ.get(
    "BINS", f"main={os.path.join(B.ROOT, 'target', 'release', 'portcullis')}").split(",")]
# Builds from before the blob cache (e.g. fde9e95, the last reqwest build): uncached only, and
# their config has no [cache] section.
NO_CACHE = set(filter(None, os.environ.get("NO_CACHE", "").split(",")))
log = B.log


def proc_stat(pid):
    """(cpu seconds, minor faults) of one process."""
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK"), int(parts[7])


def one_get(base, digest, size, pid=None):
    """bytes/s of one GET; with pid, also that process's peak RSS during it (MiB)."""
    bps, _, hwm, _ = B.blob_streams(base, digest, 1, size, pid_for_rss=pid)
    return bps, (hwm or 0) / 1024


def median_range(xs):
    return f"{B.median(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})"


def main():
    for name, path in BINS:
        if not os.path.exists(path):
            raise SystemExit(f"{name}: {path} missing")
    for tool in ("docker-registry", "nginx", "curl"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found")
    tmp = tempfile.mkdtemp(prefix="portcullis-bench-ab-")
    load_start = os.getloadavg()
    try:
        reg_port, ng_port = B.free_ports(2)
        reg = B.start("registry", ["docker-registry", "serve",
                                   registry_yml(tmp, "registry", reg_port,
                                                os.path.join(tmp, "registry-data"), False)],
                      os.path.join(tmp, "registry.log"), env=registry_env())
        direct = f"http://127.0.0.1:{reg_port}"
        B.wait_ready(f"{direct}/v2/", reg, "registry")
        blob = os.path.join(tmp, "blob.bin")
        digest = B.make_blob(blob, B.BLOB_MIB)
        size = B.BLOB_MIB << 20
        B.push_blob(direct, blob, digest)
        os.unlink(blob)
        ng = B.start("nginx", ["nginx", "-e", os.path.join(tmp, "nginx-startup.log"), "-c",
                               B.nginx_config(tmp, ng_port, reg_port)],
                     os.path.join(tmp, "nginx.log"))
        nginx = f"http://127.0.0.1:{ng_port}"
        B.wait_ready(f"{nginx}/v2/", ng, "nginx")
        gb = size / 1e9
        res = {(m, n): {"cpu": [], "mbps": [], "ratio": [], "minflt": [], "hwm": [], "idle": []}
               for m in MODES for n, _ in BINS if not (m == "cold" and n in NO_CACHE)}
        n_start = 0
        for r in range(ROUNDS):
            ng_bps, _ = one_get(nginx, digest, size)
            order = BINS[r % len(BINS):] + BINS[:r % len(BINS)]
            for mode in MODES:
                for name, path in order:
                    if mode == "cold" and name in NO_CACHE:
                        continue
                    n_start += 1
                    port, admin = B.free_ports(2)
                    cache_dir = os.path.join(tmp, f"cache-{n_start}")
                    with open(B.portcullis_config(tmp, port, admin, reg_port,
                                                  0 if mode == "uncached" else 10 << 30)) as f:
                        conf = f.read().replace(f"{tmp}/portcullis-cache", cache_dir)
                    if name in NO_CACHE:  # a build from before the cache: no [cache] section
                        conf = re.sub(r"\[cache\]\n[^\[]*", "", conf)
                    cfg = os.path.join(tmp, f"pc-{n_start}.toml")
                    with open(cfg, "w") as f:
                        f.write(conf)
                    p = B.start(f"{name}-{mode}", [path, "serve", "--config", cfg],
                                os.path.join(tmp, f"pc-{n_start}.log"))
                    B.wait_ready(f"http://127.0.0.1:{admin}/readyz", p, name)
                    c0, f0 = proc_stat(p.pid)
                    bps, hwm = one_get(f"http://127.0.0.1:{port}", digest, size, p.pid)
                    if mode == "cold" and not wait_file(
                            os.path.join(cache_dir, "blobs", "sha256", digest), 10):
                        log(f"{name}: the cold GET left no cache entry (counted anyway)")
                    c1, f1 = proc_stat(p.pid)
                    time.sleep(2)
                    idle = B.proc_status_kib(p.pid, "RssAnon") / 1024
                    stop_one(p)
                    shutil.rmtree(cache_dir, ignore_errors=True)
                    row = res[(mode, name)]
                    row["cpu"].append((c1 - c0) / gb)
                    row["mbps"].append(bps / 1e6)
                    row["ratio"].append(bps / ng_bps)
                    row["minflt"].append((f1 - f0) / gb / 1000)
                    row["hwm"].append(hwm)
                    row["idle"].append(idle)
                    log(f"round {r + 1}/{ROUNDS} {mode} {name}: {(c1 - c0) / gb:.2f} s/GB, "
                        f"{bps / 1e6:.0f} MB/s, {bps / ng_bps:.2f} of nginx, peak {hwm:.0f} MiB")
        lines = [f"# Portcullis A/B, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
                 f"blob {B.BLOB_MIB} MiB, {ROUNDS} rounds, a fresh process per GET, "
                 f"mode = \"skip\"; load average at start {load_start[0]:.2f}, "
                 f"at end {os.getloadavg()[0]:.2f}", "",
                 *[f"- `{n}`: `{p}`" for n, p in BINS], "",
                 "| mode | build | hop CPU s/GB | MB/s | of nginx (same round) "
                 "| minor faults k/GB | peak RSS MiB | anonymous RSS 2 s after, MiB |",
                 "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for (mode, name), row in res.items():
            lines.append(f"| {mode} | {name} | {median_range(row['cpu'])} | "
                         f"{B.median(row['mbps']):.0f} | {median_range(row['ratio'])} | "
                         f"{B.median(row['minflt']):.1f} | {median_range(row['hwm'])} | "
                         f"{median_range(row['idle'])} |")
        text = "\n".join(lines) + "\n"
        out = os.path.join(HERE, "results", time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
                           + "-ab.md")
        with open(out, "w") as f:
            f.write(text)
        print(text)
        log(f"wrote {out}")
    finally:
        B.finish(tmp)


if __name__ == "__main__":
    B.entry(main)
