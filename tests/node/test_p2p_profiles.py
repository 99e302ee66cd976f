"""Profiles between real libp2p nodes on loopback: sync (newest wins on both), gossip, rate limit, bans,
and a peer whose ratchet predates profiles."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from p2p_helpers import connect, run_trio, running_hosts, running_networks, wait_until

from chain.builders import key
from chain.objects import Profile
from chain.store import Store
from node.p2p import reqresp, wire
from node.p2p.sync import SyncError, sync_with

pytestmark = pytest.mark.timeout(240)
T0 = 1_735_689_600_000


def profile(signer: int, name: str, ts: int = T0) -> Profile:
    return Profile.create(key(signer), name=name, team="Rockets", url="", timestamp=ts)


def _fill(home: Path, objs: list[Profile]) -> None:
    with Store.open(home) as store:
        for obj in objs:
            store.add(obj)


def test_two_nodes_sync_profiles_and_agree_on_the_newest_of_each_key(tmp_path: Path) -> None:
    a_has = [profile(1, "Ada"), profile(1, "Ada L.", T0 + 5), profile(2, "Bob")]
    b_has = [profile(2, "Bob B.", T0 + 9), profile(3, "Cy"), profile(1, "Ada (old)", T0 - 1)]
    homes = [tmp_path / "a", tmp_path / "b"]
    _fill(homes[0], a_has)
    _fill(homes[1], b_has)
    want = {key(1).public: a_has[1], key(2).public: b_has[0], key(3).public: b_has[1]}

    async def main() -> None:
        async with running_networks(homes) as (a, b):
            await wait_until(lambda: a.store.current_profiles() == want == b.store.current_profiles())
            assert a.store.profile_inventory() == b.store.profile_inventory()
            assert not b.store.has(a_has[0].id)  # superseded profiles are not asked for
            assert a.counters.sync_failures == b.counters.sync_failures == 0

    run_trio(main, 180)


def test_a_profile_written_by_another_process_is_gossiped(tmp_path: Path) -> None:
    homes = [tmp_path / "a", tmp_path / "b"]
    new = profile(4, "Dee")

    async def main() -> None:
        async with running_networks(homes, sync_interval_s=60.0) as (a, b):  # no sync round: gossip only
            await wait_until(lambda: len(b.connected()) == 1 and _profile_mesh(a) and _profile_mesh(b)
                             and a.counters.sync_rounds >= 1 and b.counters.sync_rounds >= 1)
            with Store.open(homes[0]) as other:  # a second handle, as `ratchet profile set` opens it
                other.add(new)
            await wait_until(lambda: b.store.has(new.id))
            assert a.counters.published >= 1 and b.counters.gossip_stored == 1

    run_trio(main, 180)


def _profile_mesh(net: Any) -> bool:
    from node.p2p.gossip import PROFILES_TOPIC

    return bool(net._gossip.router.mesh.get(PROFILES_TOPIC))


@asynccontextmanager
async def _rogue(node: Any) -> AsyncIterator[Any]:
    """A host that speaks gossipsub without validating, subscribed to the profile topic of `node`."""
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from libp2p.tools.anyio_service.context import background_trio_service
    from multiaddr import Multiaddr

    from node.p2p.gossip import PROFILES_TOPIC, GossipParams, make_pubsub

    async with running_hosts(1) as (rogue,):
        pubsub, router = make_pubsub(rogue, GossipParams())
        async with background_trio_service(pubsub), background_trio_service(router):
            await pubsub.wait_until_ready()
            await rogue.connect(info_from_p2p_addr(Multiaddr(node.addrs[0])))
            await pubsub.subscribe(PROFILES_TOPIC)
            await wait_until(lambda: rogue.get_id() in node.connected() and _profile_mesh(node))
            yield rogue, pubsub


def test_a_renaming_flood_is_capped_and_a_forged_profile_bans_its_sender(tmp_path: Path) -> None:
    from node.p2p.gossip import PROFILES_TOPIC
    from node.p2p.peers import Limits

    flood = [profile(5, f"name {i}", T0 + i) for i in range(12)]
    forged = bytearray(profile(6, "Eve").encode())
    forged[-1] ^= 1  # breaks the signature

    async def main() -> None:
        limits = Limits(profile_rate=0.001, profile_burst=3)
        async with running_networks([tmp_path / "a"], limits=limits) as (a,):
            async with _rogue(a) as (relay, pubsub):
                for p in flood:
                    await pubsub.publish(PROFILES_TOPIC, wire.encode_gossip_object(p.encode()))
                await wait_until(lambda: a.counters.gossip_stored >= 3)
                await trio.sleep(1.0)  # the rest arrive and are refused
                assert a.counters.gossip_stored == 3 and len(a.store.profiles()) == 3
                assert not a.peers.is_banned(relay.get_id())  # the relaying peer is not at fault
            async with _rogue(a) as (rogue, pubsub):
                for _ in range(100):  # until the node hears it (the mesh forms asynchronously)
                    await pubsub.publish(PROFILES_TOPIC, wire.encode_gossip_object(bytes(forged)))
                    if a.peers.is_banned(rogue.get_id()):
                        break
                    await trio.sleep(0.2)
                assert a.peers.is_banned(rogue.get_id()) and a.counters.bans == 1
            assert len(a.store.profiles()) == 3

    run_trio(main, 180)


def test_a_peer_without_profile_support_is_skipped_not_blamed(tmp_path: Path) -> None:
    from libp2p.custom_types import TProtocol

    old_store = Store.open(tmp_path / "old")
    ours = Store.open(tmp_path / "ours")
    ours.add(profile(1, "Ada"))

    async def main() -> None:
        async with running_hosts(2) as (old, new):
            # a ratchet from before profiles: it serves the request protocol only
            old.set_stream_handler(TProtocol(reqresp.PROTOCOL), reqresp.Responder(old_store).handle)
            await connect(new, old)
            with pytest.raises(reqresp.UnsupportedError):
                await reqresp.get_profile_summary(new, old.get_id())
            result = await sync_with(new, ours, old.get_id())
            assert result.pulled == 0 and result.compared == 0

    try:
        run_trio(main)
    finally:
        old_store.close()
        ours.close()


def test_a_peer_listing_another_object_as_a_profile_is_at_fault(tmp_path: Path) -> None:
    from chain.objects import Blob

    blob = Blob(data=b"not a profile")
    liar = Store.open(tmp_path / "liar")
    liar.add(blob)
    liar.profile_inventory = lambda: [blob.id]  # type: ignore[method-assign]
    ours = Store.open(tmp_path / "ours")

    async def main() -> None:
        async with running_hosts(2) as (a, b):
            reqresp.Responder(liar).attach(a)
            await connect(b, a)
            with pytest.raises(SyncError) as info:
                await sync_with(b, ours, a.get_id())
            assert info.value.peer_fault and "listed as a profile" in info.value.problem

    try:
        run_trio(main)
    finally:
        liar.close()
        ours.close()


def test_profile_requests_are_plain_wire_messages() -> None:
    assert wire.decode_request(wire.encode_request("pinv", b"")) == ("pinv", b"")
    assert wire.decode_request(wire.encode_request("psum", b"")) == ("psum", b"")
    with pytest.raises(wire.BadMessageError, match="takes no argument"):
        wire.decode_request(wire.encode_request("psum", b"\x01" * 32))
