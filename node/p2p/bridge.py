"""Trio (py-libp2p's loop) hosted inside the running asyncio loop, in trio's guest mode.

The node's network side is trio code; the leaderboard (aiohttp) and the CLI are
asyncio. Guest mode runs both on one thread: asyncio stays the host loop and
trio schedules its ticks through `loop.call_soon_threadsafe`. This module is the
only place the two meet:

- `TrioGuest.start()` starts trio and waits until it is ready;
- `guest.spawn(fn, *args)` starts a long-lived trio task in trio's nursery;
- `await guest.stop()` cancels every trio task and waits for trio to finish.

A trio task that crashes ends the guest run; `guest.done` (an asyncio future)
then holds the error, so the host program can notice and exit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import outcome
import trio


class BridgeError(Exception):
    """The trio guest is not running (never started, stopped, or crashed)."""


class TrioGuest:
    """One trio run hosted in the current asyncio loop."""

    def __init__(self) -> None:
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._ready: asyncio.Future[None] | None = None
        self.done: asyncio.Future[None] | None = None

    @property
    def running(self) -> bool:
        return self.done is not None and not self.done.done() and self._nursery is not None

    async def start(self) -> None:
        """Start trio as a guest of the running asyncio loop; returns once trio is ready."""
        if self.done is not None:
            raise BridgeError("this guest was already started")
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        self.done = loop.create_future()
        trio.lowlevel.start_guest_run(
            self._main,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            run_sync_soon_not_threadsafe=loop.call_soon,
            done_callback=self._finished,
            # asyncio owns signal handling (loop.add_signal_handler); trio must not take it.
            host_uses_signal_set_wakeup_fd=True,
            restrict_keyboard_interrupt_to_checkpoints=True,
        )
        await asyncio.wait([self._ready, self.done], return_when=asyncio.FIRST_COMPLETED)
        if self.done.done():
            self.done.result()  # raises the error that ended trio before it was ready
            raise BridgeError("trio ended before it was ready")

    async def _main(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._token = trio.lowlevel.current_trio_token()
            assert self._ready is not None
            self._ready.set_result(None)
            await trio.sleep_forever()

    def _finished(self, result: outcome.Outcome[None]) -> None:
        self._nursery = None
        if self._ready is not None and not self._ready.done():
            self._ready.cancel()
        if self.done is None or self.done.done():
            return
        if isinstance(result, outcome.Error):
            error = result.error
            if isinstance(error, BaseExceptionGroup):
                cancels = error.subgroup(lambda e: isinstance(e, trio.Cancelled))
                rest = error.subgroup(lambda e: not isinstance(e, trio.Cancelled))
                if rest is None and cancels is not None:
                    self.done.set_result(None)
                    return
            if isinstance(error, trio.Cancelled):
                self.done.set_result(None)
                return
            self.done.set_exception(error)
        else:
            self.done.set_result(None)

    def _schedule(self, fn: Callable[[], object]) -> None:
        if not self.running or self._token is None:
            raise BridgeError("the trio guest is not running")
        try:
            self._token.run_sync_soon(fn)
        except trio.RunFinishedError as e:
            raise BridgeError("the trio guest has finished") from e

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start `fn(*args)` as a trio task that lives until it returns or the guest stops."""

        def start() -> None:
            if self._nursery is not None:
                self._nursery.start_soon(fn, *args)

        self._schedule(start)

    async def stop(self, timeout: float = 10.0) -> None:
        """Cancel every trio task and wait (at most `timeout` s) for the trio run to end."""
        if self.done is None or self.done.done():
            return

        def cancel() -> None:
            if self._nursery is not None:
                self._nursery.cancel_scope.cancel()

        try:
            self._schedule(cancel)
        except BridgeError:
            return
        await asyncio.wait_for(asyncio.shield(self.done), timeout)

