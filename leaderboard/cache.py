"""Snapshots per store version, and rendered responses per (URL, version).

The store only grows, so `Store.data_version()` names its whole content: a
snapshot or a rendered page made at version v is valid until v changes. A
rebuild runs on one worker (a process, or a thread); while it runs, requests wait for it at most
`wait_s` and are otherwise answered from the previous snapshot (stale while
revalidate), so a busy writer never stalls the pages. When the last build took
longer than `wait_s`, requests do not wait at all. After a build that
took T seconds the next one starts no sooner than T * `pause` later, so a
store written many times a second cannot keep a core busy with rebuilds.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Executor
from dataclasses import dataclass

from chain.errors import StoreError
from leaderboard.snapshot import Snapshot

log = logging.getLogger(__name__)


class SnapshotCache:
    """Builds run `build` on an executor made by `make_executor` (a thread, or a process that may die:
    a broken executor is replaced and the next request builds again)."""

    def __init__(self, build: Callable[[], Snapshot], make_executor: Callable[[], Executor], wait_s: float = 0.5,
                 pause: float = 1.0) -> None:
        self._build_fn = build
        self._make_executor = make_executor
        self._executor: Executor | None = None
        self.wait_s = wait_s
        self.pause = pause
        self._not_before = 0.0  # loop time before which no new build starts
        self.last_build_s = 0.0
        self._snap: Snapshot | None = None
        self._task: asyncio.Task[Snapshot] | None = None
        self.builds = 0

    @property
    def current(self) -> Snapshot | None:
        return self._snap

    async def get(self, version: int) -> Snapshot:
        """A snapshot at `version` or newer; the previous one if a rebuild takes longer than wait_s."""
        for _ in range(3):  # a build that started before `version` was written may come back older
            snap = self._snap
            if snap is not None and snap.version >= version:
                return snap
            task = self._ensure_build()
            if snap is None:
                snap = await asyncio.shield(task)
            else:
                if self.expected_s() > self.wait_s:
                    return snap  # a large store: do not even start waiting
                done, _ = await asyncio.wait({task}, timeout=self.wait_s)
                if not done:
                    return snap
                try:
                    snap = task.result()
                except (BrokenExecutor, StoreError) as e:
                    log.warning("leaderboard: rebuild failed (%s); serving version %d", e, snap.version)
                    return snap
            if snap.version >= version:
                return snap
        return snap

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def expected_s(self) -> float:
        """Roughly how long until a fresh snapshot: the pause still to run plus the last build's time."""
        now = asyncio.get_running_loop().time()
        return max(0.0, self._not_before - now) + self.last_build_s

    def _ensure_build(self) -> asyncio.Task[Snapshot]:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._build())
        return self._task

    async def _build(self) -> Snapshot:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, self._not_before - loop.time()))
        started = loop.time()
        if self._executor is None:
            self._executor = self._make_executor()
        try:
            snap = await loop.run_in_executor(self._executor, self._build_fn)
        except BrokenExecutor:
            log.warning("leaderboard: the snapshot builder died; starting a new one")
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        self.last_build_s = loop.time() - started
        self._not_before = loop.time() + self.last_build_s * self.pause
        self.builds += 1
        if self._snap is None or snap.version > self._snap.version:
            self._snap = snap
        return self._snap


GZIP_MIN_BYTES = 1400  # smaller bodies fit one packet anyway


@dataclass(frozen=True)
class Rendered:
    version: int
    body: bytes
    content_type: str
    etag: str
    gzipped: bytes | None = None  # compressed once when cached, served to clients that accept gzip


class ResponseCache:
    """An LRU of rendered bodies, bounded in entries and bytes; an entry counts only at its version."""

    def __init__(self, max_entries: int = 1024, max_bytes: int = 64 * 2**20) -> None:
        self._entries: OrderedDict[str, Rendered] = OrderedDict()
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.bytes = 0
        self.hits = self.misses = 0

    def get(self, key: str, version: int) -> Rendered | None:
        hit = self._entries.get(key)
        if hit is None or hit.version != version:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return hit

    def put(self, key: str, version: int, body: bytes, content_type: str) -> Rendered:
        digest = hashlib.blake2b(body, digest_size=8).hexdigest()
        packed = gzip.compress(body, 6, mtime=0) if len(body) >= GZIP_MIN_BYTES else None
        entry = Rendered(version, body, content_type, f'"{version:x}-{digest}"', packed)
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= _size(old)
        self._entries[key] = entry
        self.bytes += _size(entry)
        while self._entries and (len(self._entries) > self.max_entries or self.bytes > self.max_bytes):
            _, dropped = self._entries.popitem(last=False)
            self.bytes -= _size(dropped)
        return entry


def _size(r: Rendered) -> int:
    return len(r.body) + (len(r.gzipped) if r.gzipped else 0)
