"""The trio-in-asyncio bridge: calls both ways, errors, cancellation, clean stop."""

from __future__ import annotations

import asyncio

import pytest
import trio

from node.p2p.bridge import BridgeError, TrioGuest, trio_await_asyncio

pytestmark = pytest.mark.timeout(30)


def test_call_returns_trio_result_and_raises_trio_errors() -> None:
    async def main() -> None:
        guest = TrioGuest()
        await guest.start()

        async def add(a: int, b: int) -> int:
            await trio.sleep(0.01)
            return a + b

        async def boom() -> None:
            await trio.sleep(0)
            raise ValueError("from trio")

        assert await guest.call(add, 2, 3) == 5
        with pytest.raises(ValueError, match="from trio"):
            await guest.call(boom)
        # trio is still healthy after a failed call
        assert await guest.call(add, 1, 1) == 2
        await guest.stop()
        assert guest.done is not None and guest.done.done() and guest.done.exception() is None
        with pytest.raises(BridgeError):
            await guest.call(add, 1, 1)

    asyncio.run(main())


def test_cancelling_the_asyncio_await_cancels_the_trio_call() -> None:
    async def main() -> None:
        guest = TrioGuest()
        await guest.start()
        cancelled = []

        async def slow() -> None:
            try:
                await trio.sleep(60)
            except trio.Cancelled:
                cancelled.append(True)
                raise

        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(guest.call(slow), 0.2)
        for _ in range(100):
            if cancelled:
                break
            await asyncio.sleep(0.01)
        assert cancelled == [True]
        await guest.stop()

    asyncio.run(main())


def test_trio_awaits_asyncio_and_spawned_tasks_stop_with_the_guest() -> None:
    async def main() -> None:
        guest = TrioGuest()
        await guest.start()
        loop = asyncio.get_running_loop()
        ticks: list[int] = []

        async def ticker() -> None:
            try:
                while True:
                    ticks.append(1)
                    await trio.sleep(0.01)
            finally:
                ticks.append(-1)

        async def asyncio_side(x: int) -> int:
            await asyncio.sleep(0.01)
            return x * 2

        async def via_asyncio() -> int:
            return await trio_await_asyncio(loop, asyncio_side(21))

        guest.spawn(ticker)
        assert await guest.call(via_asyncio) == 42
        for _ in range(100):
            if len(ticks) >= 3:
                break
            await asyncio.sleep(0.01)
        await guest.stop(timeout=5)
        assert ticks[-1] == -1  # the task saw its cancellation and cleaned up

    asyncio.run(main())


def test_a_crashing_task_ends_the_guest_with_its_error() -> None:
    async def main() -> None:
        guest = TrioGuest()
        await guest.start()

        async def crash() -> None:
            raise RuntimeError("task crashed")

        guest.spawn(crash)
        assert guest.done is not None
        with pytest.raises(BaseException) as info:  # noqa: B017 - trio wraps it in a group
            await asyncio.wait_for(guest.done, 5)
        assert "task crashed" in repr(info.value) or any(
            "task crashed" in str(e) for e in getattr(info.value, "exceptions", [])
        )
        assert not guest.running

    asyncio.run(main())
