"""Helpers of the leaderboard tests: a real store with a small chain, a real server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from chain.builders import REFERENCE_SCRIPT, key, make_arena, make_attestation, make_proposal
from chain.keys import SigningKey
from chain.objects import Arena, Profile, Proposal
from chain.store import Store
from leaderboard.app import create_app
from leaderboard.state import Settings

T = TypeVar("T")
EVIL = '<script>alert("x")</script> & <b>bold</b>'
T0 = 1_700_000_001_000


@dataclass
class World:
    """Quorum 2 of 3. Three accepted commits (v3 says no_gain on each), one rejected, one pending."""

    home: Path
    arena: Arena
    verifiers: list[SigningKey]
    authors: list[SigningKey]
    accepted: list[Proposal] = field(default_factory=list)
    rejected: Proposal | None = None
    pending: Proposal | None = None


def script(i: int) -> bytes:
    return REFERENCE_SCRIPT.replace(b"3e-3", f"{3 + i}e-3".encode()) + f'NAME = "step {i}"  # note\n'.encode()


def build_world(home: Path) -> World:
    verifiers = [key(1), key(2), key(3)]
    authors = [key(10), key(11)]
    arena, blob = make_arena(key(0), [v.public for v in verifiers], quorum=2)
    w = World(home, arena, verifiers, authors)
    with Store.open(home) as s:
        s.add(blob)
        s.add(arena)
        parent = arena.id
        for i in range(3):
            p, b = make_proposal(authors[i % 2], arena, parent, script=script(i),
                                 message=f"lower the learning rate, step {i}\n\nlonger body {i}",
                                 timestamp=T0 + i * 10_000)
            s.add(b)
            s.add(p)
            for v in verifiers[:2]:
                s.add(make_attestation(v, p, gain_ubpb=1000 * (i + 1), parent_ubpb=1_500_000 - 5000 * i,
                                       timestamp=T0 + i * 10_000 + 1000))
            s.add(make_attestation(verifiers[2], p, "no_gain", gain_ubpb=-10, timestamp=T0 + i * 10_000 + 2000))
            w.accepted.append(p)
            parent = p.id
        p, b = make_proposal(authors[1], arena, parent, script=script(9), message=EVIL, timestamp=T0 + 50_000)
        s.add(b)
        s.add(p)
        for v in verifiers[:2]:
            s.add(make_attestation(v, p, "no_gain", gain_ubpb=5, timestamp=T0 + 51_000))
        w.rejected = p
        p, b = make_proposal(authors[0], arena, parent, script=script(7), message="wider mlp",
                             timestamp=T0 + 60_000)
        s.add(b)
        s.add(p)
        s.add(make_attestation(verifiers[0], p, gain_ubpb=700, timestamp=T0 + 61_000))
        w.pending = p
    return w


FAST = Settings(poll_s=0.05, wait_s=2.0, heartbeat_s=1.0, builder="thread")


@asynccontextmanager
async def serving(home: Path, settings: Settings = FAST) -> AsyncIterator[str]:
    """A real server on 127.0.0.1, port chosen by the OS; yields its base URL."""
    runner = web.AppRunner(create_app(home, settings), shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def run(coro: Awaitable[T], timeout: float = 30.0) -> T:
    """Run one test coroutine with a hard deadline."""
    return asyncio.run(asyncio.wait_for(coro, timeout))  # type: ignore[arg-type]


async def poll(predicate: Callable[[], Awaitable[Any]], timeout: float = 10.0, every: float = 0.05) -> Any:
    """Await until predicate() returns something truthy; fail after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(every)


HOSTILE_NAME = "<img src=x onerror=alert(1)>"  # valid display text: only escaping keeps it text
HOSTILE_TEAM = "</td><script>alert(2)</script>"


def add_profiles(world: World, ts: int = T0) -> dict[str, Profile]:
    """Names and teams: author 0 "Ada" and verifier 0 "Ada" (the same name: look-alikes), both in
    Rockets with verifier 1; author 1 a hostile name in a hostile team; verifier 2 in "Rоckets" (a
    Cyrillic o: a look-alike team)."""
    made = {
        "ada": Profile.create(world.authors[0], name="Ada", team="Rockets", url="https://ada.example/",
                              timestamp=ts),
        "hostile": Profile.create(world.authors[1], name=HOSTILE_NAME, team=HOSTILE_TEAM, url="",
                                  timestamp=ts),
        "ada2": Profile.create(world.verifiers[0], name="Ada", team="Rockets", url="", timestamp=ts),
        "vera": Profile.create(world.verifiers[1], name="Vera", team="Rockets", url="", timestamp=ts),
        "cy": Profile.create(world.verifiers[2], name="Cy", team="R\u043eckets", url="", timestamp=ts),
    }
    with Store.open(world.home) as s:
        for p in made.values():
            s.add(p)
    return made
