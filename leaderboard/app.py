"""The aiohttp application: `create_app(home)`, its middlewares and its lifecycle.

The leaderboard reads a store that other processes write (SQLite WAL). It
opens its own connections: one used only on the event loop for the cheap
`data_version()` probe, one for page I/O (script blobs, a commit's
attestations) in a small thread pool, and one in the snapshot builder (a
spawned process by default), so a long rebuild never blocks a request.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp import web

from chain.store import Store
from leaderboard import security, views
from leaderboard.cache import ResponseCache, SnapshotCache
from leaderboard.live import Broadcaster, watch
from leaderboard.render import STATIC, environment
from leaderboard.snapshot import build_in_worker, build_snapshot, open_worker
from leaderboard.state import LEADERBOARD, Leaderboard, Settings


def create_app(home: Path | str, settings: Settings | None = None) -> web.Application:
    """The leaderboard over the store in `home` (opened when the app starts, closed when it stops)."""
    home = Path(home)
    settings = settings or Settings()
    app = web.Application(middlewares=[security.limits_middleware, views.error_middleware],
                          client_max_size=1024)
    app.on_response_prepare.append(security.add_headers)
    app.cleanup_ctx.append(_lifecycle(home, settings))
    app.on_shutdown.append(_stop_streams)
    views.add_routes(app)
    app.router.add_static("/static", STATIC, append_version=False)
    return app


def _lifecycle(home: Path, settings: Settings) -> Any:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        stores: list[Store] = []
        io_pool = ThreadPoolExecutor(2, thread_name_prefix="lb-io")
        snapshots: SnapshotCache | None = None
        try:
            for _ in range(3 if settings.builder == "thread" else 2):
                stores.append(Store.open(home))
            probe, io_store = stores[0], stores[1]
            if settings.builder == "thread":
                build_store = stores[2]
                snapshots = SnapshotCache(partial(build_snapshot, build_store),
                                          partial(ThreadPoolExecutor, 1, thread_name_prefix="lb-build"),
                                          settings.wait_s)
            else:
                snapshots = SnapshotCache(build_in_worker, partial(_builder_process, home), settings.wait_s)
            lb = Leaderboard(
                home=home, settings=settings, env=environment(), probe=probe, io_store=io_store,
                io_pool=io_pool, snapshots=snapshots, responses=ResponseCache(settings.cache_entries),
                limiter=security.RateLimiter(settings.rate, settings.burst), live=Broadcaster(),
            )
            app[LEADERBOARD] = lb
            for name in lb.env.list_templates(extensions=["html"]):
                lb.env.get_template(name)  # compile now, not on a first visitor's request
            await lb.snapshot()  # the first build happens before the first request
            watcher = asyncio.get_running_loop().create_task(watch(lb))
            try:
                yield
            finally:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
        finally:
            if snapshots is not None:
                snapshots.close()
            io_pool.shutdown(wait=True, cancel_futures=True)
            for s in stores:
                s.close()

    return ctx


def _builder_process(home: Path) -> ProcessPoolExecutor:
    """One spawned process (no fork of this threaded server) holding its own store connection."""
    return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=open_worker, initargs=(str(home),))


async def _stop_streams(app: web.Application) -> None:
    if LEADERBOARD in app:
        app[LEADERBOARD].live.close()
