#!/usr/bin/env python3
"""Profile Portcullis streaming a blob (bench/profile.sh runs this; see bench/PROFILE.md).

Same setup as bench.py (throwaway registry, Portcullis in skip mode, deterministic blob), then
`perf record -g` on the Portcullis process while STREAMS concurrent curls download the blob
REPEAT times, and writes perf's flat and caller reports plus per-process CPU seconds (registry,
Portcullis) per GB moved, into bench/results/profile-<timestamp>/.
Environment: BLOB_MIB (default 256), STREAMS (default 1), REPEAT (default 4).
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
        pc = bench.start("portcullis", [bench.PC_BIN, "serve", "--config",
                                        bench.portcullis_config(tmp, pc_port, pc_admin, reg_port)],
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
        p0, r2 = cpu_secs(pc.pid), cpu_secs(reg.pid)
        t0 = time.perf_counter()
        for _ in range(REPEAT):
            bench.blob_streams(proxy, digest, STREAMS, size)
        proxy_wall = time.perf_counter() - t0
        p1, r3 = cpu_secs(pc.pid), cpu_secs(reg.pid)
        perf.send_signal(2)
        perf.wait()
        gb = REPEAT * STREAMS * size / 1e9
        summary = [
            f"blob {MIB} MiB, {STREAMS} stream(s) x {REPEAT}: {gb:.2f} GB each way",
            f"direct:   {gb / direct_wall * 1000:.0f} MB/s; registry CPU "
            f"{(r1[0] - r0[0]) / gb:.2f} s/GB",
            f"through:  {gb / proxy_wall * 1000:.0f} MB/s; registry CPU "
            f"{(r3[0] - r2[0]) / gb:.2f} s/GB; portcullis CPU {(p1[0] - p0[0]) / gb:.2f} s/GB "
            f"(user {(p1[1] - p0[1]) / gb:.2f}, sys {(p1[2] - p0[2]) / gb:.2f})",
            f"load average {os.getloadavg()}",
        ]
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
        print(f"wrote {out}")
    finally:
        bench.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
