#!/usr/bin/env python3
"""python-tuf's own verdict on target names, the reference the tests hold Portcullis to.

    tufcheck.py METADATA_URL ROOT_FILE STATE_DIR NAME...

Trusts ROOT_FILE (copied into STATE_DIR as root.json when STATE_DIR has none: a fresh client),
refreshes from METADATA_URL with python-tuf's ngclient (keeping what it verified in STATE_DIR,
so a second run is a client that has seen the first), and looks each NAME up. Prints one JSON
object: {"refresh": null | "error text", "targets": {NAME: null | {"length", "sha256",
"error"}}}; a lookup error is reported under its name. Exit status 0 either way.
"""

import json
import shutil
import sys
from pathlib import Path

from tuf.ngclient import Updater


def main() -> None:
    url, root, state = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    state.mkdir(parents=True, exist_ok=True)
    if not (state / "root.json").exists():
        shutil.copyfile(root, state / "root.json")
    updater = Updater(metadata_dir=str(state), metadata_base_url=url, bootstrap=None)
    result = {"refresh": None, "targets": {}}
    try:
        updater.refresh()
    except Exception as e:  # noqa: BLE001 - the verdict is the error text
        result["refresh"] = f"{type(e).__name__}: {e}"
    for name in sys.argv[4:]:
        try:
            info = updater.get_targetinfo(name)
        except Exception as e:  # noqa: BLE001
            result["targets"][name] = {"error": f"{type(e).__name__}: {e}"}
            continue
        result["targets"][name] = info and {
            "length": info.length,
            "sha256": info.hashes.get("sha256"),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
