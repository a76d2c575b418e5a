#!/usr/bin/env python3
"""Profile Portcullis streaming a blob (bench/profile.sh runs this; see bench/PROFILE.md).

Same setup as bench.py (throwaway registry, Portcullis in skip mode, deterministic blob), then
`perf record -g` on the Portcullis process while STREAMS concurrent curls download the blob
REPEAT times, and writes perf's flat and caller reports plus per-process CPU seconds (registry,
Portcullis) per GB moved, into bench/results/profile-<timestamp>/.
Then the same for manifest GETs at concurrency 1 (wrk), with CPU microseconds per request.
Environment: BLOB_MIB (default 256), STREAMS (default 1), REPEAT (default 4), WRK_SECS (10),
PC_LOG_LEVEL (default info), CACHE=warm|cold|off (default warm: after the first GET the blob is
served from Portcullis's cache; cold: the cache file is removed before each GET, so every GET
fills the cache from upstream; off: `cache.max_size = 0`, the verifying stream without a cache).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

MIB = int(os.environ.get("BLOB_MIB", "256"))
STREAMS = int(os.environ.get("STREAMS", "1"))
REPEAT = int(os.environ.get("REPEAT", "4"))
WRK_SECS = int(os.environ.get("WRK_SECS", "10"))
CACHE = os.environ.get("CACHE", "warm")
if CACHE not in ("warm", "cold", "off"):
    sys.exit(f"CACHE={CACHE}: expected warm, cold or off")


def cpu_secs(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return (int(parts[11]) + int(parts[12])) / tck, int(parts[11]) / tck, int(parts[12]) / tck


def main():
    tmp = tempfile.mkdtemp(prefix="portcullis-profile-")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = os.path.join(bench.HERE, "results", f"profile-{stamp}")
    os.makedirs(out, exist_ok=True)
    try:
        reg_port, pc_port, pc_admin = bench.free_ports(3)
        reg = bench.start("registry", ["docker-registry", "serve",
                                       bench.registry_config(tmp, reg_port)],
                          os.path.join(tmp, "registry.log"))
        direct = f"http://127.0.0.1:{reg_port}"
        bench.wait_ready(f"{direct}/v2/", reg, "registry")
        path = os.path.join(tmp, "blob")
        digest = bench.make_blob(path, MIB)
        bench.push_blob(direct, path, digest)
        os.unlink(path)
        bench.push_manifest(direct, tmp, digest, MIB << 20)
        pc = bench.start("portcullis", [bench.PC_BIN, "serve", "--config",
                                        bench.portcullis_config(tmp, pc_port, pc_admin, reg_port,
                                                                0 if CACHE == "off" else None)],
                         os.path.join(tmp, "portcullis.log"))
        bench.wait_ready(f"http://127.0.0.1:{pc_admin}/readyz", pc, "portcullis")
        proxy = f"http://127.0.0.1:{pc_port}"
        size = MIB << 20
        bench.blob_streams(proxy, digest, 1, size)  # warm page cache and pools
        # Direct first, for the registry's own CPU cost per GB.
        r0 = cpu_secs(reg.pid)
        t0 = time.perf_counter()
        for _ in range(REPEAT):
            bench.blob_streams(direct, digest, STREAMS, size)
        direct_wall = time.perf_counter() - t0
        r1 = cpu_secs(reg.pid)
        perf_data = os.path.join(tmp, "perf.data")
        perf = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-o", perf_data,
                                 "-p", str(pc.pid)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        entry = os.path.join(tmp, "portcullis-cache", "blobs", "sha256", digest)
        p0, r2 = cpu_secs(pc.pid), cpu_secs(reg.pid)
        proxy_wall = 0.0
        for _ in range(REPEAT):
            if CACHE == "cold":
                # Portcullis forgets an indexed entry it cannot open and fetches it again.
                wait_gone = time.perf_counter() + 10
                while not os.path.exists(entry) and time.perf_counter() < wait_gone:
                    time.sleep(0.05)  # the last fill's commit (fsync, rename)
                if os.path.exists(entry):
                    os.unlink(entry)
            t0 = time.perf_counter()
            bench.blob_streams(proxy, digest, STREAMS, size)
            proxy_wall += time.perf_counter() - t0
        p1, r3 = cpu_secs(pc.pid), cpu_secs(reg.pid)
        perf.send_signal(2)
        perf.wait()
        # Manifest GETs at concurrency 1: CPU per request (robust on a loaded machine, unlike
        # wall-clock latency), and a perf profile of that path.
        lua = os.path.join(tmp, "accept.lua")
        with open(lua, "w") as f:
            f.write(bench.WRK_LUA)
        bench.WRK_SECS = WRK_SECS
        r4 = cpu_secs(reg.pid)
        lat_d = bench.wrk_latency(direct, 1, lua)
        r5 = cpu_secs(reg.pid)
        perf_m = os.path.join(tmp, "perf-manifest.data")
        perf2 = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-o", perf_m,
                                  "-p", str(pc.pid)], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        p2, r6 = cpu_secs(pc.pid), cpu_secs(reg.pid)
        lat_p = bench.wrk_latency(proxy, 1, lua)
        p3, r7 = cpu_secs(pc.pid), cpu_secs(reg.pid)
        perf2.send_signal(2)
        perf2.wait()
        n_d = lat_d["rps"] * WRK_SECS
        n_p = lat_p["rps"] * WRK_SECS
        manifest_lines = [
            f"manifest GET c=1, {WRK_SECS}s each:",
            f"direct:  p50 {lat_d['p50_ms']:.3f} ms, {lat_d['rps']:.0f} req/s, registry CPU "
            f"{(r5[0] - r4[0]) / n_d * 1e6:.0f} us/req",
            f"through: p50 {lat_p['p50_ms']:.3f} ms, {lat_p['rps']:.0f} req/s, registry CPU "
            f"{(r7[0] - r6[0]) / n_p * 1e6:.0f} us/req, portcullis CPU "
            f"{(p3[0] - p2[0]) / n_p * 1e6:.0f} us/req (user {(p3[1] - p2[1]) / n_p * 1e6:.0f}, "
            f"sys {(p3[2] - p2[2]) / n_p * 1e6:.0f})",
        ]
        gb = REPEAT * STREAMS * size / 1e9
        summary = [
            f"blob {MIB} MiB, {STREAMS} stream(s) x {REPEAT}: {gb:.2f} GB each way; cache {CACHE}",
            f"direct:   {gb / direct_wall * 1000:.0f} MB/s; registry CPU "
            f"{(r1[0] - r0[0]) / gb:.2f} s/GB",
            f"through:  {gb / proxy_wall * 1000:.0f} MB/s; registry CPU "
            f"{(r3[0] - r2[0]) / gb:.2f} s/GB; portcullis CPU {(p1[0] - p0[0]) / gb:.2f} s/GB "
            f"(user {(p1[1] - p0[1]) / gb:.2f}, sys {(p1[2] - p0[2]) / gb:.2f})",
            f"load average {os.getloadavg()}",
        ] + manifest_lines
        with open(os.path.join(out, "summary.txt"), "w") as f:
            f.write("\n".join(summary) + "\n")
        print("\n".join(summary))
        for name, args in [
            ("flat.txt", ["--no-children", "--sort", "dso,symbol", "-g", "none"]),
            ("children.txt", ["--children", "--sort", "symbol", "-g", "none"]),
            ("callers.txt", ["--no-children", "--sort", "symbol", "-g", "caller,0.5,callee",
                             "--percent-limit", "2"]),
        ]:
            with open(os.path.join(out, name), "w") as f:
                subprocess.run(["perf", "report", "-i", perf_data, "--stdio"] + args,
                               stdout=f, stderr=subprocess.DEVNULL)
        with open(os.path.join(out, "manifest-flat.txt"), "w") as f:
            subprocess.run(["perf", "report", "-i", perf_m, "--stdio", "--no-children",
                            "--sort", "dso,symbol", "-g", "none"],
                           stdout=f, stderr=subprocess.DEVNULL)
        with open(os.path.join(out, "manifest-children.txt"), "w") as f:
            subprocess.run(["perf", "report", "-i", perf_m, "--stdio", "--children",
                            "--sort", "symbol", "-g", "none"],
                           stdout=f, stderr=subprocess.DEVNULL)
        print(f"wrote {out}")
    finally:
        bench.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
