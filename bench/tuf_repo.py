#!/usr/bin/env python3
"""A TUF repository with many delegated roles, for benches/tuf.rs (python-tuf 7).

    tuf_repo.py OUT ROLES            make OUT/metadata (consistent snapshots) and OUT/root.json:
                                     `targets` signs demo/app:top; role_<i> (ed25519, paths
                                     ["demo/app<i>:*"]) signs demo/app<i>:v1, i < ROLES
    tuf_repo.py OUT ROLES bump I     publish a new version of role_<I> (one more target),
                                     snapshot and timestamp; everything else unchanged

Keys are kept in OUT/keys.json so that `bump` can sign. Expiry: 30 days from now.
"""
import hashlib, json, os, sys
from datetime import datetime, timedelta, timezone

from securesystemslib.signer import CryptoSigner
from cryptography.hazmat.primitives import serialization
from tuf.api.metadata import (DelegatedRole, Delegations, Metadata, MetaFile, Root, Snapshot,
                              TargetFile, Targets, Timestamp)
from tuf.api.serialization.json import JSONSerializer

out, roles = sys.argv[1], int(sys.argv[2])
md = os.path.join(out, "metadata")
EXP = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=30)
SER = JSONSerializer(compact=True)


def target(name):
    data = name.encode()
    return TargetFile(len(data), {"sha256": hashlib.sha256(data).hexdigest()}, name)


def pem(signer):
    return signer._private_key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()).decode()


def load(pem_text, public):
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    return CryptoSigner(load_pem_private_key(pem_text.encode(), None), public)


def write(meta, name, signer):
    meta.sign(signer)
    meta.to_file(os.path.join(md, name), SER)


def make():
    os.makedirs(md, exist_ok=True)
    top = {r: CryptoSigner.generate_ed25519() for r in ("root", "timestamp", "snapshot", "targets")}
    dele = CryptoSigner.generate_ed25519()
    root = Metadata(Root(expires=EXP, consistent_snapshot=True))
    for r, s in top.items():
        root.signed.add_key(s.public_key, r)
    write(root, "1.root.json", top["root"])
    root.to_file(os.path.join(out, "root.json"), SER)
    targets = Metadata(Targets(expires=EXP))
    targets.signed.targets["demo/app:top"] = target("demo/app:top")
    kid = dele.public_key.keyid
    targets.signed.delegations = Delegations(keys={kid: dele.public_key}, roles={
        f"role_{i}": DelegatedRole(f"role_{i}", [kid], 1, False, paths=[f"demo/app{i}:*"])
        for i in range(roles)})
    write(targets, "1.targets.json", top["targets"])
    snap = Metadata(Snapshot(expires=EXP))
    snap.signed.meta["targets.json"] = MetaFile(1)
    for i in range(roles):
        r = Metadata(Targets(expires=EXP))
        r.signed.targets[f"demo/app{i}:v1"] = target(f"demo/app{i}:v1")
        write(r, f"1.role_{i}.json", dele)
        snap.signed.meta[f"role_{i}.json"] = MetaFile(1)
    write(snap, "1.snapshot.json", top["snapshot"])
    ts = Metadata(Timestamp(expires=EXP))
    ts.signed.snapshot_meta = MetaFile(1)
    write(ts, "timestamp.json", top["timestamp"])
    keys = {r: [pem(s), s.public_key.to_dict(), s.public_key.keyid] for r, s in top.items()}
    keys["delegate"] = [pem(dele), dele.public_key.to_dict(), dele.public_key.keyid]
    json.dump(keys, open(os.path.join(out, "keys.json"), "w"))


def bump(i):
    from securesystemslib.signer import SSlibKey
    keys = json.load(open(os.path.join(out, "keys.json")))
    sig = {r: load(k[0], SSlibKey.from_dict(k[2], dict(k[1]))) for r, k in keys.items()}
    ts = Metadata.from_file(os.path.join(md, "timestamp.json"))
    sv = ts.signed.snapshot_meta.version
    snap = Metadata.from_file(os.path.join(md, f"{sv}.snapshot.json"))
    rv = snap.signed.meta[f"role_{i}.json"].version
    role = Metadata.from_file(os.path.join(md, f"{rv}.role_{i}.json"))
    role.signed.version = rv + 1
    role.signed.targets[f"demo/app{i}:v{rv + 1}"] = target(f"demo/app{i}:v{rv + 1}")
    role.signatures.clear()
    write(role, f"{rv + 1}.role_{i}.json", sig["delegate"])
    snap.signed.version = sv + 1
    snap.signed.meta[f"role_{i}.json"] = MetaFile(rv + 1)
    snap.signatures.clear()
    write(snap, f"{sv + 1}.snapshot.json", sig["snapshot"])
    ts.signed.version += 1
    ts.signed.snapshot_meta = MetaFile(sv + 1)
    ts.signatures.clear()
    write(ts, "timestamp.json", sig["timestamp"])


if len(sys.argv) > 3 and sys.argv[3] == "bump":
    bump(int(sys.argv[4]))
else:
    make()
