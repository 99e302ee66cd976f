"""Running the leaderboard: start it inside an event loop, or serve until a signal.

`start` is what a node embedding the leaderboard in its own loop calls;
`serve_forever` is what `ratchet serve` runs in its own process.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from leaderboard.app import create_app
from leaderboard.state import Settings


@dataclass
class Server:
    runner: web.AppRunner
    url: str  # http://host:port with the port the OS gave

    async def close(self) -> None:
        await self.runner.cleanup()


async def start(home: Path, host: str = "127.0.0.1", port: int = 0, settings: Settings | None = None) -> Server:
    """Start serving the store in `home` on host:port (0: any free port); returns once listening."""
    runner = web.AppRunner(create_app(home, settings), shutdown_timeout=3.0, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    sockname = runner.addresses[0]
    bound_host = f"[{sockname[0]}]" if ":" in sockname[0] else sockname[0]
    return Server(runner, f"http://{bound_host}:{sockname[1]}")


def serve_forever(home: Path, host: str, port: int, settings: Settings | None = None,
                  on_ready: Callable[[str], None] | None = None) -> None:
    """Serve until SIGINT or SIGTERM, then close every connection and the store cleanly."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        server = await start(home, host, port, settings)
        try:
            if on_ready is not None:
                on_ready(server.url)
            await stop.wait()
        finally:
            await server.close()

    asyncio.run(main())
