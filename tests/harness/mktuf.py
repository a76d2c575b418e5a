#!/usr/bin/env python3
"""Builds, and publishes the next versions of, a TUF 1.0 repository with python-tuf's Metadata
API, for the tests of the `tuf` trust source (driven by tests/support/real/tuf.rs).

    mktuf.py OUT [SPEC.json | -]        the spec is JSON, from the file or from stdin

Each run is one *generation*: the spec describes the whole repository as it should be now, and
every role is re-signed with its version bumped (root only when its keys, thresholds or expiry
change). What a run leaves in OUT:

    OUT/metadata/   the metadata base URL's files: N.root.json (every version), timestamp.json,
                    N.snapshot.json, N.targets.json, N.<role>.json with consistent snapshots
                    (snapshot.json, targets.json, <role>.json without)
    OUT/root.json   version 1 of root: the file a client pins
    OUT/keys/       NAME.pem (PKCS#8) and NAME.pub.json, made on first use, reused afterwards
    OUT/history/G/  a copy of metadata/ as generation G left it (for replays)
    OUT/state.json  the generation and the last version of each role

Spec (every key optional):
  consistent_snapshot  true (default) | false
  keys        {"NAME": "ed25519" | "ecdsa" | "rsa"}: key types (default ed25519)
  roles       {"root"|"timestamp"|"snapshot"|"targets": {"keys": [NAME...], "threshold": N}};
              default: one key named like the role, threshold 1. Changing root's keys rotates
              root: the new root is signed by the old root keys and the new ones.
  targets     {"demo/app:v1": TARGET} signed in `targets`; TARGET = {"length": N, "sha256": HEX,
              "mediaType": optional, "custom": optional object}
  delegations [DELEGATION...] of `targets`; DELEGATION = {"name", "keys": [NAME...],
              "threshold" (1), "terminating" (false), "paths": [PATTERN...] or
              "path_hash_prefixes": [HEX...], "targets": {...}, "delegations": [...],
              "hash_bins": ..., "succinct": ...}
  hash_bins   {"name_prefix": "bin", "bins": 2|4|8|16, "keys", "threshold", "targets"}: bins
              over the first hex digit of sha256(target name), named bin-0-3, ...; each target
              goes into its bin. Allowed in `targets` (top level) and in any delegation.
  succinct    {"name_prefix", "bit_length", "keys", "threshold", "targets"}: TAP 15
              succinct_roles instead of `delegations` (top level or in a delegation)
  expires     {"ROLE" | "default": "+30d" | "-1h" | "+90s" | "+5m" | ISO 8601}; defaults:
              timestamp +1d, the rest +30d (relative to now)
  versions    {"ROLE": N}: force this generation's version of a role (rollbacks freshly signed)
  sign_with   {"ROLE": [NAME...]}: sign the role with exactly these keys (not in root, below
              threshold, a forged root)
  bad_signature [ROLE...]: each signature of the role replaced by one over other bytes
  meta_hashes true: snapshot and timestamp record length and sha256 of the files too
  unlisted    [ROLE...]: delegated roles signed and served but left out of snapshot's meta
              (a stray role the snapshot does not vouch for)
  orphans     [DELEGATION...]: roles signed, served and listed in snapshot that no role
              delegates to (a stray role nobody delegated)
  replay      [{"generation": G, "file": "timestamp.json", "as": optional}]: after writing,
              copy a file as generation G had it into metadata/ (rollback, mix-and-match)
  delete      [FILE...]: remove files from metadata/ after writing (an unfetchable snapshot)

Prints a JSON summary: generation, the versions written, and each key name's keyid.
"""

import hashlib
import json
import re
import shutil
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner, Signature, SSlibKey
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    MetaFile,
    Metadata,
    Root,
    Snapshot,
    SuccinctRoles,
    TargetFile,
    Targets,
    Timestamp,
)

TOP = ("root", "timestamp", "snapshot", "targets")


class Keys:
    """Named signing keys, persisted in OUT/keys so that later generations sign with them."""

    def __init__(self, folder: Path, types: dict):
        self.dir = folder
        self.types = types
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cache = {}

    def signer(self, name: str) -> CryptoSigner:
        if name in self.cache:
            return self.cache[name]
        want = self.types.get(name, "ed25519")
        pem, pub = self.dir / f"{name}.pem", self.dir / f"{name}.pub.json"
        if pem.exists():
            d = json.loads(pub.read_text())
            if d.pop("type") != want:
                sys.exit(f"mktuf: key {name} exists with another type than {want}")
            key = SSlibKey.from_dict(d.pop("keyid"), d)
            s = CryptoSigner(load_pem_private_key(pem.read_bytes(), None), key)
        else:
            if want == "ed25519":
                s = CryptoSigner.generate_ed25519()
            elif want == "ecdsa":
                s = CryptoSigner.generate_ecdsa()  # ecdsa-sha2-nistp256
            elif want == "rsa":
                s = CryptoSigner.generate_rsa(size=2048)
            else:
                sys.exit(f"mktuf: unknown key type {want} for {name}")
            pem.write_bytes(s.private_bytes)
            d = {"type": want, "keyid": s.public_key.keyid, **s.public_key.to_dict()}
            pub.write_text(json.dumps(d, indent=1))
        self.cache[name] = s
        return s

    def pub(self, name: str) -> SSlibKey:
        return self.signer(name).public_key

    def by_keyid(self, keyid: str) -> str:
        for f in self.dir.glob("*.pub.json"):
            if json.loads(f.read_text())["keyid"] == keyid:
                return f.name[: -len(".pub.json")]
        sys.exit(f"mktuf: no key file for keyid {keyid}")


def when(spec: dict, role: str, now: datetime) -> datetime:
    """The expiry of `role`: spec.expires[role], else its default, relative to `now`."""
    exp = spec.get("expires", {})
    v = exp.get(role, exp.get("default", "+1d" if role == "timestamp" else "+30d"))
    m = re.fullmatch(r"([+-])(\d+)([smhd])", v)
    if not m:
        return datetime.fromisoformat(v.replace("Z", "+00:00"))
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(3)]
    delta = timedelta(**{unit: int(m.group(2))})
    return now + delta if m.group(1) == "+" else now - delta


def target_file(name: str, t: dict) -> TargetFile:
    """A target entry: length and sha256 of the manifest bytes, custom.mediaType optional."""
    custom = dict(t.get("custom", {}))
    if "mediaType" in t:
        custom["mediaType"] = t["mediaType"]
    extra = {"custom": custom} if custom else None
    return TargetFile(t["length"], {"sha256": t["sha256"]}, name, extra)


def name_hash(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def expand_hash_bins(hb: dict) -> list:
    """Hash-bin delegations (path_hash_prefixes) over the first hex digit of sha256(name)."""
    bins = hb.get("bins", 4)
    if bins not in (2, 4, 8, 16):
        sys.exit("mktuf: hash_bins.bins must be 2, 4, 8 or 16")
    width, out = 16 // bins, []
    for lo in range(0, 16, width):
        digits = [f"{d:x}" for d in range(lo, lo + width)]
        name = f"{hb.get('name_prefix', 'bin')}-{digits[0]}"
        name += f"-{digits[-1]}" if width > 1 else ""
        mine = {n: t for n, t in hb.get("targets", {}).items() if name_hash(n)[0] in digits}
        out.append({"name": name, "keys": hb["keys"], "threshold": hb.get("threshold", 1),
                    "path_hash_prefixes": digits, "targets": mine})
    return out


class Builder:
    """Builds the signed part of every targets role, depth first, and who signs each."""

    def __init__(self, spec: dict, keys: Keys, now: datetime):
        self.spec, self.keys, self.now = spec, keys, now
        self.roles = {}  # role name -> Targets (signed part, version set later)
        self.signers = {}  # role name -> [key names]

    def targets_role(self, name: str, r: dict, signer_names: list) -> None:
        if name in self.roles:
            sys.exit(f"mktuf: role {name} is defined twice")
        t = Targets(expires=when(self.spec, name, self.now))
        for tname, tv in r.get("targets", {}).items():
            t.targets[tname] = target_file(tname, tv)
        self.roles[name], self.signers[name] = t, signer_names
        if "succinct" in r:
            self.succinct(t, r["succinct"])
            return
        children = list(r.get("delegations", []))
        if "hash_bins" in r:
            children += expand_hash_bins(r["hash_bins"])
        if not children:
            return
        t.delegations = Delegations(keys={}, roles={})
        for c in children:
            keyids = []
            for k in c["keys"]:
                key = self.keys.pub(k)
                t.delegations.keys[key.keyid] = key
                keyids.append(key.keyid)
            paths = c.get("paths")
            prefixes = c.get("path_hash_prefixes")
            t.delegations.roles[c["name"]] = DelegatedRole(
                c["name"], keyids, c.get("threshold", 1), c.get("terminating", False),
                paths if prefixes is None else None, prefixes)
            self.targets_role(c["name"], c, c["keys"])

    def succinct(self, t: Targets, sc: dict) -> None:
        """TAP 15: bins named by succinct_roles; every bin gets a role file."""
        keys = {self.keys.pub(k).keyid: self.keys.pub(k) for k in sc["keys"]}
        sr = SuccinctRoles(list(keys), sc.get("threshold", 1), sc.get("bit_length", 4),
                           sc.get("name_prefix", "bin"))
        t.delegations = Delegations(keys=keys, roles=None, succinct_roles=sr)
        for b in sr.get_roles():
            mine = {n: tv for n, tv in sc.get("targets", {}).items()
                    if sr.get_role_for_target(n) == b}
            self.targets_role(b, {"targets": mine}, sc["keys"])


def sign(md: Metadata, role: str, names: list, spec: dict, keys: Keys) -> None:
    """Signs with `names` (or spec.sign_with[role]); bad_signature swaps each signature for one
    over other bytes (well formed, by the same key, and wrong)."""
    for n in spec.get("sign_with", {}).get(role, names):
        md.sign(keys.signer(n), append=True)
    if role in spec.get("bad_signature", []):
        for keyid in list(md.signatures):
            bad = keys.signer(keys.by_keyid(keyid)).sign(b"not the signed metadata")
            md.signatures[keyid] = Signature(keyid, bad.signature)


def meta(data: bytes, version: int, spec: dict) -> MetaFile:
    if spec.get("meta_hashes"):
        return MetaFile(version, len(data), {"sha256": hashlib.sha256(data).hexdigest()})
    return MetaFile(version)


def build_root(spec, keys, now, st, mdir):
    """The root to publish now: a new version when keys, thresholds, consistent_snapshot or its
    expiry change (or spec.versions.root is set), signed by the old and the new root keys.
    Returns (version, bytes or None when root stays as it is)."""
    cs = spec.get("consistent_snapshot", True)
    root = Root(expires=when(spec, "root", now), consistent_snapshot=cs)
    names = {}
    for r in TOP:
        rs = spec.get("roles", {}).get(r, {})
        names[r] = rs.get("keys", [r])
        for k in names[r]:
            root.add_key(keys.pub(k), r)
        root.roles[r].threshold = rs.get("threshold", 1)
    prev_v = st.get("root_version", 0)
    forced = spec.get("versions", {}).get("root")
    signers = list(names["root"])
    if prev_v:
        prev = Metadata[Root].from_file(str(mdir / f"{prev_v}.root.json")).signed
        same = (prev.keys, prev.roles, prev.consistent_snapshot) == (
            root.keys, root.roles, root.consistent_snapshot)
        if same and forced is None and "root" not in spec.get("expires", {}):
            return prev_v, None
        old = [keys.by_keyid(k) for k in prev.roles["root"].keyids]
        signers = old + [n for n in signers if n not in old]
    root.version = forced or prev_v + 1
    md = Metadata(root)
    sign(md, "root", signers, spec, keys)
    return root.version, md.to_bytes()


def main() -> None:
    out = Path(sys.argv[1])
    src = sys.argv[2] if len(sys.argv) > 2 else "-"
    spec = json.load(sys.stdin if src == "-" else open(src))
    mdir, sfile = out / "metadata", out / "state.json"
    mdir.mkdir(parents=True, exist_ok=True)
    st = json.loads(sfile.read_text()) if sfile.exists() else {"generation": 0, "versions": {}}
    gen = st["generation"] + 1
    keys = Keys(out / "keys", spec.get("keys", {}))
    now = datetime.now(timezone.utc).replace(microsecond=0)
    forced = spec.get("versions", {})
    cs = spec.get("consistent_snapshot", True)
    written = {}

    def version(role: str) -> int:
        v = forced.get(role, st["versions"].get(role, 0) + 1)
        st["versions"][role] = max(v, st["versions"].get(role, 0))
        written[role] = v
        return v

    def write(role: str, v: int, data: bytes) -> None:
        (mdir / (f"{v}.{role}.json" if cs else f"{role}.json")).write_bytes(data)

    # root first: a rotation is published as the next N.root.json, the old ones stay
    rv, rbytes = build_root(spec, keys, now, st, mdir)
    if rbytes is not None:
        (mdir / f"{rv}.root.json").write_bytes(rbytes)
        written["root"] = rv
        if rv == 1:
            (out / "root.json").write_bytes(rbytes)
        st["root_version"] = max(rv, st.get("root_version", 0))
    top = {r: spec.get("roles", {}).get(r, {}).get("keys", [r]) for r in TOP}

    # every targets role, delegated ones included, re-signed with the next version
    b = Builder(spec, keys, now)
    b.targets_role("targets", spec, top["targets"])
    for o in spec.get("orphans", []):
        b.targets_role(o["name"], o, o["keys"])
    snap = Snapshot(expires=when(spec, "snapshot", now))
    for role, signed in b.roles.items():
        signed.version = version(role)
        md = Metadata(signed)
        sign(md, role, b.signers[role], spec, keys)
        data = md.to_bytes()
        write(role, signed.version, data)
        if role not in spec.get("unlisted", []):
            snap.meta[f"{role}.json"] = meta(data, signed.version, spec)

    snap.version = version("snapshot")
    md = Metadata(snap)
    sign(md, "snapshot", top["snapshot"], spec, keys)
    sdata = md.to_bytes()
    write("snapshot", snap.version, sdata)

    ts = Timestamp(expires=when(spec, "timestamp", now))
    ts.version = version("timestamp")
    ts.snapshot_meta = meta(sdata, snap.version, spec)
    md = Metadata(ts)
    sign(md, "timestamp", top["timestamp"], spec, keys)
    (mdir / "timestamp.json").write_bytes(md.to_bytes())

    # attacks on the files as served: replay an older generation's file, or remove one
    for r in spec.get("replay", []):
        shutil.copyfile(out / "history" / str(r["generation"]) / r["file"],
                        mdir / r.get("as", r["file"]))
    for f in spec.get("delete", []):
        (mdir / f).unlink()

    shutil.copytree(mdir, out / "history" / str(gen))
    st["generation"] = gen
    sfile.write_text(json.dumps(st, indent=1))
    keyids = {p.name[: -len(".pub.json")]: json.loads(p.read_text())["keyid"]
              for p in sorted((out / "keys").glob("*.pub.json"))}
    print(json.dumps({"generation": gen, "versions": written, "keyids": keyids}))


if __name__ == "__main__":
    main()
