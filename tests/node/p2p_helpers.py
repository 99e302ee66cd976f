"""Helpers for the p2p tests: bounded trio runs and N real libp2p hosts on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import trio

from chain.builders import key, make_arena, make_attestation, make_proposal
from chain.objects import Arena, Attestation, Blob, Proposal

LOOPBACK = "127.0.0.1"


def run_trio(fn: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    """Run `fn` under trio with a hard deadline (a hung test fails instead of hanging CI)."""

    async def main() -> Any:
        with trio.fail_after(timeout):
            return await fn()

    return trio.run(main)


@asynccontextmanager
async def running_hosts(n: int) -> AsyncIterator[list[Any]]:
    """`n` real hosts (Noise, yamux, TCP on 127.0.0.1, any port), closed on exit."""
    import os

    from libp2p.crypto.ed25519 import create_new_key_pair

    from node.p2p.host import listen_addrs, make_host

    async with AsyncExitStack() as stack:
        hosts = []
        for _ in range(n):
            host = make_host(create_new_key_pair(os.urandom(32)))
            await stack.enter_async_context(host.run(listen_addrs(LOOPBACK, 0)))
            hosts.append(host)
        yield hosts


async def connect(a: Any, b: Any) -> None:
    """Dial b from a."""
    from libp2p.peer.peerinfo import info_from_p2p_addr

    await a.connect(info_from_p2p_addr(b.get_addrs()[0]))


def small_chain(commits: int, verifiers: int = 3, quorum: int = 2,
                ) -> tuple[Arena, list[Blob], list[Proposal], list[Attestation]]:
    """An arena and a linear chain of `commits` accepted commits (quorum attestations each)."""
    vkeys = [key(i + 1) for i in range(verifiers)]
    arena, ref = make_arena(key(0), [v.public for v in vkeys], quorum=quorum)
    blobs, props, atts = [ref], [], []
    parent = arena.id
    for i in range(commits):
        p, b = make_proposal(key(10), arena, parent, message=f"commit {i}", timestamp=1_700_000_001_000 + i)
        blobs.append(b)
        props.append(p)
        atts.extend(make_attestation(v, p, timestamp=1_700_000_002_000 + i) for v in vkeys[:quorum])
        parent = p.id
    return arena, blobs, props, atts


FAST = dict(sync_interval_s=1.0, announce_interval_s=0.3, watch_interval_s=0.05, dial_interval_s=0.3)


@asynccontextmanager
async def running_networks(homes: list[Any], bootstrap_first: bool = True,
                           **config: Any) -> AsyncIterator[list[Any]]:
    """One Network per home (each with its own store), all on 127.0.0.1; node i > 0 bootstraps
    to node 0 when `bootstrap_first`. Everything is cancelled and closed on exit, even on failure."""
    from chain.store import Store
    from node.p2p.network import Network, NetworkConfig

    settings = {**FAST, **config}
    async with AsyncExitStack() as stack:
        stores = [stack.enter_context(Store.open(h)) for h in homes]
        nursery = await stack.enter_async_context(trio.open_nursery())
        stack.callback(nursery.cancel_scope.cancel)
        nets = []
        for i, (home, store) in enumerate(zip(homes, stores, strict=True)):
            boot = tuple(nets[0].addrs[:1]) if bootstrap_first and i > 0 else ()
            net = Network(home, store, NetworkConfig(listen=LOOPBACK, bootstrap=boot, **settings))
            await nursery.start(net.run)
            nets.append(net)
        yield nets


async def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, poll: float = 0.05) -> None:
    """Poll `predicate` until true; fail with a clear error after `timeout` seconds."""
    with trio.move_on_after(timeout):
        while not predicate():
            await trio.sleep(poll)
        return
    raise AssertionError(f"condition not met within {timeout}s")
