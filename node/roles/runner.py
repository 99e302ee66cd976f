"""Run a role unattended: asyncio as the host loop, the network on trio through the bridge.

`run_role` owns the process: it installs SIGINT/SIGTERM handlers, opens the
store, starts trio as asyncio's guest (so an aiohttp server could share the
process), starts the network and the role's own trio tasks, and on a signal
cancels them all and closes the store. A role keeps no state outside the store
(and the node's identity file), so killing it at any instant and starting it
again resumes where it was.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from chain.store import Store
from node.p2p.bridge import TrioGuest
from node.p2p.network import Network, NetworkConfig

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 15.0


class Reporter:
    """Progress lines for a person (text) or for a program (one JSON object per line)."""

    def __init__(self, as_json: bool = False, out: Any = None) -> None:
        self.as_json = as_json
        self.out = out or sys.stdout

    def event(self, kind: str, text: str, **data: Any) -> None:
        if self.as_json:
            line = json.dumps({"event": kind, "time_ms": int(time.time() * 1000), **data},
                              sort_keys=True, default=str)
        else:
            line = f"{time.strftime('%H:%M:%S')} {text}"
        print(line, file=self.out, flush=True)


@dataclass
class RoleContext:
    """What a role's trio tasks get: the store, the running network, a reporter."""

    home: Path
    store: Store
    network: Network
    reporter: Reporter


RoleTask = Callable[[RoleContext], Awaitable[None]]


def setup_logging() -> None:
    """Our warnings (bans, refused objects) to stderr; py-libp2p only when it is critical, since it
    logs ordinary events (a peer hanging up mid-stream) as errors. RATCHET_LOG=info|debug for more."""
    level = getattr(logging, os.environ.get("RATCHET_LOG", "warning").upper(), logging.WARNING)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    import libp2p  # noqa: F401 - it resets its loggers when first imported: import it first

    logging.getLogger("libp2p").setLevel(level if level <= logging.DEBUG else logging.CRITICAL)


def run_role(home: Path, config: NetworkConfig, name: str, tasks: list[RoleTask],
             reporter: Reporter, status_extra: Callable[[], dict[str, Any]] | None = None) -> int:
    """Run the network plus `tasks` until SIGINT/SIGTERM; returns the process exit code."""
    setup_logging()
    return asyncio.run(_main(home, config, name, tasks, reporter, status_extra))


async def _main(home: Path, config: NetworkConfig, name: str, tasks: list[RoleTask],
                reporter: Reporter, status_extra: Callable[[], dict[str, Any]] | None) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig.name)
        stop.set()

    # Installed before trio starts, so trio leaves signal handling to asyncio.
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    store = Store.open(home)
    guest = TrioGuest()
    code = 0
    try:
        network = Network(home, store, config, status_extra=lambda: {"role": name, **(
            status_extra() if status_extra is not None else {})})
        await guest.start()

        async def start_network() -> None:
            async with trio.open_nursery() as nursery:
                await nursery.start(network.run)
                ctx = RoleContext(home, store, network, reporter)
                for task in tasks:
                    nursery.start_soon(task, ctx)

        guest.spawn(start_network)
        await _wait_ready(guest, network)
        reporter.event("started", f"{name} {network.peer_id} listening on {' '.join(network.addrs)}",
                       role=name, peer_id=network.peer_id, addrs=network.addrs)
        assert guest.done is not None
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait([stopper, guest.done], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if guest.done.done() and guest.done.exception() is not None:
            error = guest.done.exception()
            reporter.event("crashed", f"{name} stopped on an error: {error!r}", error=repr(error))
            code = 1
    finally:
        try:
            await guest.stop(SHUTDOWN_TIMEOUT_S)
        except TimeoutError:
            reporter.event("shutdown", "network did not stop in time; exiting anyway")
            code = code or 1
        except BaseException as e:  # the guest's own failure was reported above
            log.debug("guest ended with %r", e)
        store.close()
    reporter.event("stopped", f"{name} stopped" + (f" ({received[0]})" if received else ""),
                   signal=received[0] if received else None)
    return code


async def _wait_ready(guest: TrioGuest, network: Network) -> None:
    assert guest.done is not None
    while not network.ready.is_set():
        if guest.done.done():
            guest.done.result()  # raises the startup error
            raise RuntimeError("the network stopped before it was ready")
        await asyncio.sleep(0.02)
