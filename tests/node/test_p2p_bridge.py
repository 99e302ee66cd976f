"""The trio-in-asyncio bridge: spawned tasks, clean stop, a crash that ends the run."""

from __future__ import annotations

import asyncio

import pytest
import trio

from node.p2p.bridge import BridgeError, TrioGuest

pytestmark = pytest.mark.timeout(30)


def test_spawned_tasks_stop_with_the_guest_and_a_stopped_guest_refuses_work() -> None:
    async def main() -> None:
        guest = TrioGuest()
        await guest.start()
        with pytest.raises(BridgeError):
            await guest.start()
        ticks: list[int] = []

        async def ticker() -> None:
            try:
                while True:
                    ticks.append(1)
                    await trio.sleep(0.01)
            finally:
                ticks.append(-1)

        guest.spawn(ticker)
        for _ in range(100):
            if len(ticks) >= 3:
                break
            await asyncio.sleep(0.01)
        await guest.stop(timeout=5)
        assert ticks[-1] == -1  # the task saw its cancellation and cleaned up
        assert guest.done is not None and guest.done.done() and guest.done.exception() is None
        with pytest.raises(BridgeError):
            guest.spawn(ticker)

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
