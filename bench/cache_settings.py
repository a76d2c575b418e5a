"""Settings of the blob-cache benchmark (bench/cache.py), from the environment, shared by the
run (cache.py) and its report (cache_report.py). See cache.py for the knobs."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("RSS_STREAMS", "256")  # before bench reads it
import bench as B  # noqa: E402,F401  (helpers: processes, blob push, curl streams, wrk, /proc)

ROOT = B.ROOT
QUICK = B.QUICK
ROUNDS = B.ROUNDS
BLOB_MIB = B.BLOB_MIB
RSS_STREAMS = int(os.environ["RSS_STREAMS"])
# Where the Portcullis cache dirs and the registry proxy's storage go (default: the temp dir, on
# whatever disk /tmp is); e.g. /dev/shm to take a slow or shared disk out of the cold fill.
CACHE_DIR_PARENT = os.environ.get("CACHE_DIR_PARENT")
# Cold GETs tried per cold fill until the blob is in the cache (see cold_fill).
FILL_TRIES = int(os.environ.get("FILL_TRIES", "6"))
TRUST = os.environ.get("TRUST", "notary")
_target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
PC_BIN = os.environ.get("PC_BIN") or os.path.join(_target, "release", "portcullis")
MULTI = B.MULTI_STREAMS
REPO, TAG = B.REPO, B.TAG

# column order of the tables
COLS = ["direct", "pc_cache", "pc_nocache", "regproxy", "nginx_proxy", "nginx_file"]
LABEL = {
    "direct": "direct",
    "pc_cache": "Portcullis cache",
    "pc_nocache": "Portcullis uncached",
    "regproxy": "registry proxy:",
    "nginx_proxy": "nginx proxy",
    "nginx_file": "nginx file",
}
log = B.log
