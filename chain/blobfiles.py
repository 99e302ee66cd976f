"""Content-addressed blob files: home/blobs/ab/<hex id>, holding the blob's raw bytes.

A file is written to a temporary name, fsynced, renamed into place and its
directory fsynced, so a process killed at any instant leaves either no file or
the whole file. The database row naming a blob is written only after its file
is in place; an orphan file (killed between the two) is harmless and is reused
when the blob is added again. Every read re-hashes the bytes against the id.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

from chain.encoding import pack
from chain.errors import CorruptBlobError, StoreError
from chain.objects import MAX_BLOB_BYTES, Blob

TMP_MAX_AGE_S = 3600  # a temporary file this old belongs to a writer that died


class BlobFiles:
    """The blobs/ directory of one store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        try:
            self.tmp.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create blob directory {root}: {e.strerror}") from e

    def path(self, blob_id: bytes) -> Path:
        h = blob_id.hex()
        return self.root / h[:2] / h

    def read(self, blob_id: bytes) -> bytes:
        """The blob's bytes, checked against its id (CorruptBlobError when they differ)."""
        path = self.path(blob_id)
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_BLOB_BYTES + 1)
        except FileNotFoundError as e:
            raise CorruptBlobError(blob_id.hex(), "a missing file") from e
        except OSError as e:
            raise CorruptBlobError(blob_id.hex(), f"an unreadable file ({e.strerror})") from e
        found = blob_id_of(data)
        if found != blob_id:
            raise CorruptBlobError(blob_id.hex(), found.hex())
        return data

    def holds_valid(self, blob_id: bytes) -> bool:
        try:
            self.read(blob_id)
        except CorruptBlobError:
            return False
        return True

    def write(self, blob: Blob) -> None:
        """Put the blob's file in place atomically (a no-op when a valid copy is there)."""
        if self.holds_valid(blob.id):
            return
        target = self.path(blob.id)
        tmp = self.tmp / f"{blob.hex}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            target.parent.mkdir(exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                view = memoryview(blob.data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
            _fsync_dir(target.parent)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"cannot write blob {blob.hex}: {e.strerror}") from e

    def sweep(self, max_age_s: float = TMP_MAX_AGE_S) -> int:
        """Remove temporary files left by writers that died; returns how many."""
        now, removed = time.time(), 0
        for entry in os.scandir(self.tmp):
            try:
                if now - entry.stat().st_mtime > max_age_s:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


def blob_id_of(data: bytes) -> bytes:
    """The id the Blob holding `data` has, without building the object (one hash, no copy)."""
    if len(data) > MAX_BLOB_BYTES:
        return b""  # no blob can hold it, so it matches no id
    h = hashlib.sha256(_BLOB_ID_PREFIX)
    h.update(pack_header(len(data)))
    h.update(data)
    return h.digest()


def pack_header(n: int) -> bytes:
    """msgpack bin header for n bytes (after the fixed ["blob", 1, ...] prefix)."""
    if n < 256:
        return b"\xc4" + bytes([n])
    if n < 65536:
        return b"\xc5" + n.to_bytes(2, "big")
    return b"\xc6" + n.to_bytes(4, "big")


# A blob encodes as [tag, version, data]: a fixarray of 3, then the tag and version.
_BLOB_ID_PREFIX = f"ratchet/v1/id/{Blob.TYPE}\x00".encode() + b"\x93" + pack(Blob.TYPE) + pack(Blob.VERSION)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
