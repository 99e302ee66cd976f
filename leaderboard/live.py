"""Live updates: one watcher polls the store's version; server-sent events tell every page.

Other processes write the store, so there is nothing to subscribe to but the
version number. One task probes it every `poll_s`; on a change it builds the
new snapshot first (so the pages that browsers re-fetch are ready) and then
wakes every open stream with a short summary of each arena.
"""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import BrokenExecutor
from typing import Any

from aiohttp import web

from chain.errors import StoreError
from leaderboard.security import client_address
from leaderboard.snapshot import Snapshot
from leaderboard.state import LEADERBOARD, Leaderboard

log = logging.getLogger(__name__)


class Broadcaster:
    """The latest update message, and an event that fires when it changes."""

    def __init__(self) -> None:
        self.message: dict[str, Any] = {"version": 0, "arenas": []}
        self.streams = 0
        self.per_client: dict[str, int] = {}
        self.closed = False
        self._changed = asyncio.Event()

    def publish(self, message: dict[str, Any]) -> None:
        self.message = message
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def close(self) -> None:
        self.closed = True
        self._changed.set()

    async def next(self, after: int, timeout: float) -> dict[str, Any] | None:
        """The message once its version passes `after`; None on timeout or close."""
        if self.message["version"] > after:
            return self.message
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return None
        return self.message if self.message["version"] > after else None


def summary(snap: Snapshot) -> dict[str, Any]:
    arenas = []
    for av in snap.arenas:
        head = av.commits.get(av.head)
        arenas.append({"id": av.arena.hex, "name": av.arena.name, "head": av.head.hex(),
                       "height": head.height if head else 0, "commits": dict(av.status_counts),
                       "head_metric_ubpb": av.head_metric_ubpb})
    return {"version": snap.version, "arenas": arenas}


async def watch(lb: Leaderboard) -> None:
    """Probe the version forever (cancelled on shutdown); a store error is logged, not raised."""
    last = -1
    while True:
        try:
            version = lb.probe.data_version()
            if version != last:
                snap = await lb.snapshots.get(version)
                if snap.version != last:
                    last = snap.version
                    lb.live.publish(summary(snap))
        except (StoreError, BrokenExecutor) as e:  # no snapshot yet and the build failed: retry later
            log.warning("leaderboard: cannot build a snapshot: %s", e)
        await asyncio.sleep(lb.settings.poll_s)


async def events(request: web.Request) -> web.StreamResponse:
    """GET /api/events: `event: version` with the summary each time the store changes."""
    lb = request.app[LEADERBOARD]
    client = client_address(request, lb.settings.trust_forwarded)
    if lb.live.streams >= lb.settings.max_streams:
        raise web.HTTPServiceUnavailable(text="too many live streams; reload later",
                                         headers={"Retry-After": "30"})
    if lb.live.per_client.get(client, 0) >= lb.settings.max_streams_per_client:
        raise web.HTTPTooManyRequests(text="too many live streams from this address",
                                      headers={"Retry-After": "30"})
    after = _int_or_zero(request.headers.get("Last-Event-ID") or request.query.get("after"))
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                       "X-Accel-Buffering": "no"})
    lb.live.streams += 1
    lb.live.per_client[client] = lb.live.per_client.get(client, 0) + 1
    try:
        await resp.prepare(request)
        await resp.write(b"retry: 3000\n\n")
        loop = asyncio.get_running_loop()
        last_write = loop.time()
        while not lb.live.closed:
            # Wake at least every second: a client that went away frees its slot promptly
            # (aiohttp does not cancel a handler whose client disconnected).
            msg = await lb.live.next(after, min(1.0, lb.settings.heartbeat_s))
            if lb.live.closed or request.transport is None or request.transport.is_closing():
                break
            if msg is None:
                if loop.time() - last_write >= lb.settings.heartbeat_s:
                    await resp.write(b": ping\n\n")
                    last_write = loop.time()
                continue
            after = msg["version"]
            last_write = loop.time()
            data = json.dumps(msg, separators=(",", ":"))
            await resp.write(f"id: {after}\nevent: version\ndata: {data}\n\n".encode())
    except ConnectionResetError:
        pass  # the client went away
    finally:
        lb.live.streams -= 1
        left = lb.live.per_client.pop(client, 1) - 1
        if left > 0:
            lb.live.per_client[client] = left
    return resp


def _int_or_zero(raw: str | None) -> int:
    return int(raw) if raw is not None and raw.isdigit() and len(raw) < 16 else 0
