"""What every part of a running leaderboard shares: `Settings`, `Leaderboard`, its app key.

Imports flow one way (state <- live, security, views <- app): what this module names
from the others is for type checkers only, so any of them can import it at the top.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    import jinja2

    from chain.store import Store
    from leaderboard.cache import ResponseCache, SnapshotCache
    from leaderboard.live import Broadcaster
    from leaderboard.security import RateLimiter
    from leaderboard.snapshot import Snapshot


@dataclass
class Settings:
    """What `ratchet serve` can tune; tests shorten the intervals."""

    poll_s: float = 0.5  # how often the store's version is probed for live updates
    wait_s: float = 0.25  # how long a request waits for a rebuild before answering from the last snapshot
    rate: float = 20.0  # requests per second per client (token bucket refill)
    burst: int = 200  # bucket size
    max_streams: int = 256  # concurrent live-update streams
    max_streams_per_client: int = 8
    heartbeat_s: float = 15.0
    cache_entries: int = 1024
    # "process": snapshots are built in a spawned process, so consensus over a large chain never
    # holds this process's interpreter lock; "thread": in a thread here (tests, small stores).
    builder: str = "process"
    trust_forwarded: bool = False  # behind one reverse proxy: rate-limit by its X-Forwarded-For


@dataclass
class Leaderboard:
    """The shared state of one running leaderboard (typed app key LEADERBOARD)."""

    home: Path
    settings: Settings
    env: jinja2.Environment
    probe: Store
    io_store: Store
    io_pool: ThreadPoolExecutor
    snapshots: SnapshotCache
    responses: ResponseCache
    limiter: RateLimiter
    live: Broadcaster
    diffs: dict[tuple[bytes, bytes], dict[str, Any]] = field(default_factory=dict)
    inflight: dict[tuple[str, int], asyncio.Future[Any]] = field(default_factory=dict)  # renders under way
    renders: int = 0

    async def snapshot(self) -> Snapshot:
        return await self.snapshots.get(self.probe.data_version())

    async def io(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.io_pool, fn, *args)


LEADERBOARD = web.AppKey("leaderboard", Leaderboard)
