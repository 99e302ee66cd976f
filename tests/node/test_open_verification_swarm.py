"""Open verification on a real network: five volunteers join a running arena, are admitted, the three
founders stop for good, and the chain goes on accepting good commits and rejecting bad ones.

Nine real libp2p hosts on loopback in one process (node.p2p.network.Network, as in test_p2p_network),
each with its own store; every verifier chooses its checks with the real queue (node.roles.verifier.
pending_checks: sortition, escalation, volunteer tickets) and signs with the scripted check
(node.roles.fakecheck: the verdict the script names), so it fits two cores.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from p2p_helpers import FAST, LOOPBACK, run_trio, wait_until

from chain.builders import key, make_arena, make_proposal
from chain.consensus import state_for
from chain.keys import SigningKey
from chain.store import Store
from node.roles.fakecheck import scripted
from node.roles.verifier import pending_checks

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]  # about 400 s on two shared cores
FOUNDERS = [key(1), key(2), key(3)]
VOLUNTEERS = [key(700 + i) for i in range(5)]
AUTHOR = key(10)
ESCALATE_S = 0.5  # an undecided proposal's threshold doubles this often (600 s in production)
MAX_PROPOSALS = 90
RESCAN_S = 0.5


@asynccontextmanager
async def _node(home: Path, bootstrap: tuple[str, ...]) -> AsyncIterator[Any]:
    from node.p2p.network import Network, NetworkConfig

    async with AsyncExitStack() as stack:
        store = stack.enter_context(Store.open(home))
        nursery = await stack.enter_async_context(trio.open_nursery())
        stack.callback(nursery.cancel_scope.cancel)
        net = Network(home, store, NetworkConfig(listen=LOOPBACK, bootstrap=bootstrap, **FAST))
        await nursery.start(net.run)
        yield net


async def _verify(net: Any, k: SigningKey) -> None:
    """A verifier: rescan when the store changed (at most every RESCAN_S, in a worker thread so the
    nine hosts sharing this event loop keep answering), check, publish."""
    version, last = -1, 0.0
    while True:
        current = net.store.data_version()
        if current != version or time.monotonic() - last > 1.0:
            version, last = current, time.monotonic()
            todo = await trio.to_thread.run_sync(lambda: pending_checks(net.store, k, escalate_after_s=ESCALATE_S))
            for p in todo:
                await net.publish(scripted(k, net.store, p))
        await trio.sleep(RESCAN_S)


def _script(name: str, verdict: str) -> bytes:
    return f"# reference train.py\nLR = 2e-3\n# {name}\n# verdict: {verdict}\n".encode()


def test_volunteers_take_over_when_the_founders_stop(tmp_path: Path) -> None:
    arena, ref = make_arena(key(0), [f.public for f in FOUNDERS], quorum=2)
    with Store.open(tmp_path / "relay") as s:
        s.add(ref)
        s.add(arena)
    made = {"n": 0}

    async def propose(relay: Any, parent: bytes, verdict: str) -> bytes:
        made["n"] += 1
        name = f"p{made['n']}"
        p, b = make_proposal(AUTHOR, arena, parent, script=_script(name, verdict), message=name,
                             timestamp=1_700_000_000_000 + made["n"])
        relay.store.add(b)
        await relay.publish(p)
        return p.id

    def status(relay: Any, pid: bytes) -> str:
        info = state_for(relay.store, arena.id).commits.get(pid)
        return info.status if info is not None else "missing"

    async def main() -> None:
        async with AsyncExitStack() as stack:
            relay = await stack.enter_async_context(_node(tmp_path / "relay", ()))
            boot = tuple(relay.addrs[:1])
            vnets = [await stack.enter_async_context(_node(tmp_path / f"volunteer-{i}", boot))
                     for i in range(len(VOLUNTEERS))]
            workers = await stack.enter_async_context(trio.open_nursery())  # exits before the nodes close
            stack.callback(workers.cancel_scope.cancel)
            for net, v in zip(vnets, VOLUNTEERS, strict=True):
                workers.start_soon(_verify, net, v)
            async with AsyncExitStack() as founders:
                fnets = [await founders.enter_async_context(_node(tmp_path / f"founder-{i}", boot))
                         for i in range(len(FOUNDERS))]
                fworkers = await founders.enter_async_context(trio.open_nursery())
                founders.callback(fworkers.cancel_scope.cancel)
                for net, f in zip(fnets, FOUNDERS, strict=True):
                    fworkers.start_soon(_verify, net, f)
                # Phase 1: a running network; volunteers check under their tickets and earn admission.
                head, rejected = arena.id, 0
                while True:
                    standing = state_for(relay.store, arena.id).standing
                    if all(standing.status(v.public) == "counted" for v in VOLUNTEERS):
                        break
                    assert made["n"] < MAX_PROPOSALS, f"volunteers not admitted in time: {standing.records}"
                    if made["n"] % 10 == 0:
                        print(f"{made['n']} proposals:",
                              [standing.record(v.public).streak for v in VOLUNTEERS], flush=True)
                    if made["n"] % 5 == 4:
                        bad = await propose(relay, head, "no_gain")
                        await wait_until(lambda b=bad: status(relay, b) == "rejected", 60)
                        rejected += 1
                    good = await propose(relay, head, "improves")
                    await wait_until(lambda g=good: status(relay, g) == "accepted", 60)
                    head = good
                phase1 = made["n"]
            # Phase 2: the founders' nodes and verifiers are gone for good.
            for _ in range(3):
                good = await propose(relay, head, "improves")
                await wait_until(lambda g=good: status(relay, g) == "accepted", 90)
                bad = await propose(relay, good, "no_gain")
                await wait_until(lambda b=bad: status(relay, b) == "rejected", 90)
                head = good
            state = state_for(relay.store, arena.id)
            assert state.head == head
            founders_keys = {f.public for f in FOUNDERS}
            for info in state.commits.values():
                if info.proposal.timestamp > 1_700_000_000_000 + phase1:  # decided without the founders
                    assert not (set(info.votes) & founders_keys) and len(info.votes) >= 2
            print(f"\nswarm: {phase1} proposals ({rejected} bad) until 5 volunteers were counted; "
                  f"then 3 good accepted and 3 bad rejected by them alone")

    run_trio(main, 540)
