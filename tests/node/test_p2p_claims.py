"""Claims over gossip between real libp2p hosts on loopback: they travel, bad ones are refused."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from p2p_helpers import run_trio, running_hosts, running_networks, small_chain, wait_until

from chain.builders import key
from chain.store import Store
from journalfile import journal_path
from node.p2p import wire
from node.p2p.claimgossip import CLOCK_SLACK_MS, ClaimBook
from node.p2p.claims import TopicClaim
from node.research.journal import Journal

pytestmark = pytest.mark.timeout(240)

PARENT = b"\x07" * 32


def _home(path: Path, objs: list[Any], journal: bool) -> Path:
    with Store.open(path) as store:
        for obj in objs:
            store.add(obj)
    if journal:
        Journal.open(path).close()
    return path


def _write_claim(home: Path, claim: TopicClaim) -> None:
    """What the contributor's loop does: sign, then add to the journal of its home."""
    with Journal.open(home) as j:
        j.add_claim(claim.id, claim.arena, claim.parent, claim.topic, claim.author, claim.expires_at,
                    claim.encode())


def _journal_claims(home: Path, arena_id: bytes, parent: bytes = PARENT) -> set[bytes]:
    with Journal.open(home) as j:
        return {encoded for _, _, encoded in j.claims(arena_id, parent)}


def _mesh_ready(net: Any) -> bool:
    return any(len(peers) > 0 for peers in net._gossip.router.mesh.values())


def test_a_claim_travels_through_a_relay_that_has_no_journal(tmp_path: Path) -> None:
    """A -> relay -> B: one claim written before A's node starts, one while it runs. Both reach
    B's journal; the relay forwards them without creating a journal file."""
    arena, blobs, _, _ = small_chain(0)
    relay = _home(tmp_path / "relay", [arena, blobs[0]], journal=False)
    a = _home(tmp_path / "a", [arena, blobs[0]], journal=True)
    b = _home(tmp_path / "b", [arena, blobs[0]], journal=True)
    early = TopicClaim.create(key(10), arena.id, PARENT, "LR:+", 600)
    late = TopicClaim.create(key(10), arena.id, PARENT, "N_LAYER:-", 600)
    _write_claim(a, early)

    async def main() -> None:
        # target_peers=1: A and B each keep only the relay, so every claim must cross it
        async with running_networks([relay, a, b], target_peers=1) as (nr, na, nb):
            await wait_until(lambda: len(nr.connected()) == 2, 60)
            assert len(na.connected()) == len(nb.connected()) == 1
            await wait_until(lambda: early.encode() in _journal_claims(b, arena.id), 60)
            _write_claim(a, late)
            await wait_until(lambda: late.encode() in _journal_claims(b, arena.id), 60)
            assert na.counters.claims_published == 2
            assert nb.counters.claims_published == 0  # received claims are not published again
            assert nr.counters.claims_received >= 2
            assert not journal_path(relay).exists()
            assert not (relay / "research").exists()

    run_trio(main, 180)


@asynccontextmanager
async def _rogue(node: Any, arena_id: bytes) -> AsyncIterator[Any]:
    """A host that speaks gossipsub without validating, in the mesh of `node`'s claims topic;
    yields a function that publishes one payload there."""
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from libp2p.tools.anyio_service.context import background_trio_service
    from multiaddr import Multiaddr

    from node.p2p.gossip import GossipParams, make_pubsub, topic

    async with running_hosts(1) as (host,):
        pubsub, router = make_pubsub(host, GossipParams())
        async with background_trio_service(pubsub), background_trio_service(router):
            await pubsub.wait_until_ready()
            await host.connect(info_from_p2p_addr(Multiaddr(node.addrs[0])))
            name = topic(arena_id, "claims")
            await pubsub.subscribe(name)
            await wait_until(lambda: bool(router.mesh.get(name)) and _mesh_ready(node), 60)

            async def send(payload: bytes) -> None:
                await pubsub.publish(name, payload)

            send.peer_id = host.get_id()  # type: ignore[attr-defined]
            yield send


def test_invalid_claims_are_refused_and_their_sender_banned(tmp_path: Path) -> None:
    arena, blobs, _, _ = small_chain(0)
    b = _home(tmp_path / "b", [arena, blobs[0]], journal=True)
    now = int(time.time() * 1000)
    expired = TopicClaim.create(key(10), arena.id, PARENT, "LR:+", 60, now_ms=now - 3_600_000)
    good = TopicClaim.create(key(10), arena.id, PARENT, "LR:-", 600)
    forged = bytearray(good.encode())
    forged[-1] ^= 1  # breaks the signature
    other_arena = TopicClaim.create(key(10), b"\x09" * 32, PARENT, "LR:+", 600)
    cases = {
        "expired long ago": wire.encode_gossip_claim(expired.encode()),
        "signature does not verify": wire.encode_gossip_claim(bytes(forged)),
        "exceeds 512": wire.encode_gossip_claim(b"\x99" + b"\x00" * 600),
        "another arena": wire.encode_gossip_claim(other_arena.encode()),
    }

    async def main() -> None:
        async with running_networks([b]) as (nb,):
            for i, (reason, payload) in enumerate(cases.items()):
                async with _rogue(nb, arena.id) as send:
                    for _ in range(50):  # until the node hears it
                        await send(payload)
                        if nb.peers.is_banned(send.peer_id):
                            break
                        await trio.sleep(0.2)
                    assert nb.peers.is_banned(send.peer_id)
                    assert reason in nb.peers.summary()[str(send.peer_id)]["last_reason"]
                    assert nb.counters.bans == i + 1
            assert nb.counters.claims_received == 0

    run_trio(main, 180)
    assert _journal_claims(b, arena.id) == set()
    assert _journal_claims(b, other_arena.arena) == set()


def test_each_author_has_at_most_three_live_claims_per_parent(tmp_path: Path) -> None:
    """Fresh keys cost nothing, so claims are capped per author and parent at receipt: the
    extras are dropped (not stored, not forwarded) and the relaying peer is not at fault."""
    arena, blobs, _, _ = small_chain(0)
    b = _home(tmp_path / "b", [arena, blobs[0]], journal=True)
    flood = [TopicClaim.create(key(20), arena.id, PARENT, f"K{i}:+", 600) for i in range(6)]
    other = TopicClaim.create(key(21), arena.id, PARENT, "LR:+", 600)

    async def main() -> None:
        async with running_networks([b]) as (nb,):
            async with _rogue(nb, arena.id) as send:
                for c in [*flood, other]:
                    await send(wire.encode_gossip_claim(c.encode()))
                await wait_until(lambda: other.encode() in _journal_claims(b, arena.id), 60)
                await wait_until(lambda: nb.counters.claims_received >= 4, 10)
                assert not nb.peers.is_banned(send.peer_id)
            assert nb.counters.claims_received == 4

    run_trio(main, 180)
    stored = _journal_claims(b, arena.id)
    assert stored == {c.encode() for c in flood[:3]} | {other.encode()}


def test_claim_book_timing_rules(tmp_path: Path) -> None:
    """Clock edges, without a network: future and long-expired claims are the sender's fault,
    one that expired in transit is not; a known claim passes again without counting twice."""
    now = 1_800_000_000_000
    book = ClaimBook(tmp_path, max_per_author=1, clock_ms=lambda: now)
    arena = b"\x05" * 32

    def claim(created: int, ttl_s: int = 60, topic: str = "LR:+") -> bytes:
        return TopicClaim.create(key(30), arena, PARENT, topic, ttl_s, now_ms=created).encode()

    assert "future" in book.receive(arena, claim(now + CLOCK_SLACK_MS + 1000), lambda k: True).invalid
    in_transit = book.receive(arena, claim(now - 61_000), lambda k: True)
    assert not in_transit.accept and not in_transit.invalid
    assert "expired" in book.receive(arena, claim(now - 200_000), lambda k: True).invalid
    fresh = claim(now)
    assert book.receive(arena, fresh, lambda k: True).accept
    assert book.receive(arena, fresh, lambda k: True).accept  # a duplicate
    capped = book.receive(arena, claim(now, topic="LR:-"), lambda k: True)
    assert not capped.accept and not capped.invalid
    limited = TopicClaim.create(key(31), arena, PARENT, "LR:+", 60, now_ms=now).encode()
    over_rate = book.receive(arena, limited, lambda k: False)  # its key is over its gossip rate
    assert not over_rate.accept and not over_rate.invalid
    assert book.receive(arena, limited, lambda k: True).accept
    assert book.stored == 0 and not journal_path(tmp_path).exists()  # no journal: none created
