"""Child processes for the store fault tests: run as `python store_children.py <role> ...`.

- writer HOME WRITER_ID: extends a shared line of commits (the same bytes in every
  writer, so writers race to insert identical objects) and its own branch of
  sibling commits with blobs of varied size, until killed (bounded loop).
- reader HOME SECONDS: re-reads the state while writers die around it; every
  commit whose script blob row is present must have a valid file; counts never
  shrink. Prints one JSON line: reads and the problems seen.
- diskfull HOME MODE: writes until the data directory is full (MODE "blobs" or
  "rows"), checks the error, reopens and re-validates, frees space (deletes the
  ballast file, or raises RLIMIT_FSIZE) and writes again. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
from pathlib import Path

from chain.audit import validate_store
from chain.builders import key, make_arena, make_attestation, make_proposal
from chain.consensus import state_for
from chain.errors import ChainError, CorruptBlobError, StoreError
from chain.objects import Blob, ChainObject
from chain.store import Store

VERIFIERS = [key(1), key(2), key(3)]
ARENA, ARENA_BLOB = make_arena(key(0), [v.public for v in VERIFIERS], quorum=2)


def shared_objects(i: int, parent: bytes) -> list[ChainObject]:
    """Step i of the line every writer builds: identical bytes in every process."""
    p, b = make_proposal(key(10), ARENA, parent, message=f"shared {i}", timestamp=1_700_000_001_000 + i,
                         script=b"# shared %d\n" % i + b"s" * ((i * 4099) % 60_000))
    return [b, p, *(make_attestation(v, p) for v in VERIFIERS[:2])]


def own_objects(writer: int, i: int) -> list[ChainObject]:
    p, b = make_proposal(key(20 + writer), ARENA, ARENA.id, message=f"writer {writer} step {i}",
                         script=b"# w%d %d\n" % (writer, i) + b"w" * ((i * 7919) % 150_000))
    return [b, p, make_attestation(VERIFIERS[writer % 3], p, "no_gain", gain_ubpb=-1)]


def writer(home: Path, writer_id: int) -> None:
    with Store.open(home) as s:
        s.add(ARENA_BLOB)
        s.add(ARENA)
        print("ready", flush=True)
        parent = ARENA.id
        for i in range(20_000):  # bounded; the test kills it long before
            shared = shared_objects(i, parent)
            for obj in shared + own_objects(writer_id, i):
                s.add(obj)
            parent = shared[1].id


def reader(home: Path, seconds: float) -> None:
    problems: list[str] = []
    reads = 0
    last = 0
    deadline = time.monotonic() + seconds
    with Store.open(home) as s:
        print("ready", flush=True)
        while time.monotonic() < deadline and not Path(home, "stop-reader").exists():
            if not s.has(ARENA.id):  # no writer has started yet
                time.sleep(0.01)
                continue
            try:
                state = state_for(s, ARENA.id)
                total = sum(s.counts().values())
                if total < last:
                    problems.append(f"object count went down: {last} -> {total}")
                last = total
                for c in state.commits.values():
                    if s.has(c.proposal.script):
                        s.blob_data(c.proposal.script)
                reads += 1
            except ChainError as e:
                problems.append(f"{type(e).__name__}: {e}")
    print(json.dumps({"reads": reads, "problems": problems[:20], "objects": last}), flush=True)


def diskfull(home: Path, mode: str) -> None:
    """Fill the data directory; the caller made it a small tmpfs ('tmpfs') or set no mount ('fsize')."""
    out: dict[str, object] = {"mode": mode}
    ballast = home.parent / "ballast"
    if mode == "open":  # a new data directory on a disk with no room at all
        try:
            with open(ballast, "wb") as f:
                while True:
                    f.write(b"\x00" * 65536)
        except OSError:
            pass
        try:
            Store.open(home).close()
            out["error"] = None
        except StoreError as e:
            out["error"] = f"{type(e).__name__}: {e}"
        print(json.dumps(out), flush=True)
        return
    if os.environ.get("RATCHET_FULL_BY") == "fsize":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (3 << 20, hard))
    else:
        ballast.write_bytes(b"\x00" * (768 << 10))
    stored: list[bytes] = []
    failed: ChainObject | None = None
    s = Store.open(home)
    s.add(ARENA_BLOB)
    s.add(ARENA)
    for i in range(100_000):
        if mode == "blobs":
            p, b = make_proposal(key(10), ARENA, ARENA.id, message=f"step {i}",
                                 script=os.urandom(40_000 + (i * 977) % 30_000))
            objs: list[ChainObject] = [b, p]
        else:  # rows only: proposals without their scripts, attestations
            p, _ = make_proposal(key(10), ARENA, ARENA.id, message=f"step {i} " + "m" * 3000)
            objs = [p, make_attestation(VERIFIERS[0], p)]
        try:
            for obj in objs:
                failed = obj
                if s.add(obj):
                    stored.append(obj.id)
            failed = None
        except StoreError as e:
            out["error"] = f"{type(e).__name__}: {e}"
            break
    out["stored"] = len(stored)
    out["tmp_left"] = len(list((home / "blobs" / "tmp").iterdir()))
    if failed is None:
        raise SystemExit("wrote 100,000 steps without filling the disk")
    out["failed_held"] = s.has(failed.id)
    s.close()
    with Store.open(home) as s2:  # reopen on the full disk: consistent, nothing lost
        out["after_reopen_objects"] = validate_store(s2, workers=0).objects
        out["all_present"] = all(s2.has(oid) for oid in stored)
        types = {oid: t for oid, t, _ in s2.encoded_rows()}
        blob_ok = True
        for oid in stored:
            if types[oid] == Blob.TYPE:
                try:
                    s2.blob_data(oid)
                except CorruptBlobError:
                    blob_ok = False
        out["blobs_readable"] = blob_ok
    # Free space and carry on: the object that failed goes in now.
    if os.environ.get("RATCHET_FULL_BY") == "fsize":
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    else:
        ballast.unlink()
    with Store.open(home) as s3:
        out["retry_added"] = s3.add(failed)
        out["final_objects"] = validate_store(s3, workers=0).objects
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    role, home_arg = sys.argv[1], Path(sys.argv[2])
    if role == "writer":
        writer(home_arg, int(sys.argv[3]))
    elif role == "reader":
        reader(home_arg, float(sys.argv[3]))
    elif role == "diskfull":
        diskfull(home_arg, sys.argv[3])
    else:
        raise SystemExit(f"unknown role {role}")
