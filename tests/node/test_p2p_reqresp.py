"""Two real libp2p hosts on loopback: identity, Noise-only security, objects/blobs/inventories by id."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest
import trio
from p2p_helpers import connect, run_trio, running_hosts, small_chain

from chain.builders import key, make_proposal
from chain.objects import Blob
from chain.store import Store
from node.p2p import reqresp, wire
from node.p2p.bridge import TrioGuest
from node.p2p.host import IdentityFileError, load_identity

pytestmark = pytest.mark.timeout(60)


def test_identity_is_created_once_private_and_reloaded(tmp_path: Path) -> None:
    from libp2p.peer.id import ID

    first = load_identity(tmp_path)
    path = tmp_path / "p2p" / "peer.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_identity(tmp_path)
    assert ID.from_pubkey(first.public_key) == ID.from_pubkey(again.public_key)
    path.write_bytes(b"short")
    with pytest.raises(IdentityFileError, match="32-byte seed"):
        load_identity(tmp_path)


def test_host_offers_noise_only() -> None:
    async def main() -> None:
        async with running_hosts(1) as (host,):
            offered = set(host.get_network().upgrader.security_multistream.transports)
            assert offered == {"/noise"}

    run_trio(main)


@pytest.fixture
def filled_store(tmp_path: Path) -> Store:
    arena, blobs, props, atts = small_chain(5)
    store = Store.open(tmp_path / "a")
    for obj in [arena, *blobs, *props, *atts]:
        store.add(obj)
    big = Blob(data=bytes(range(256)) * 2000)  # 512,000 bytes
    store.add(big)
    yield store
    store.close()


def test_fetch_objects_blobs_and_inventory_between_two_hosts(filled_store: Store) -> None:
    store = filled_store
    arena = store.arenas()[0]
    inventory = store.inventory(arena.id)
    big_id = Blob(data=bytes(range(256)) * 2000).id
    missing = b"\x01" * 32

    async def main() -> None:
        async with running_hosts(2) as (a, b):
            reqresp.Responder(store).attach(a)
            await connect(b, a)
            assert await reqresp.get_arenas(b, a.get_id()) == [arena.id]
            got_inv = await reqresp.get_inventory(b, a.get_id(), arena.id)
            assert got_inv == inventory
            objs = await reqresp.get_objects(b, a.get_id(), [*inventory, big_id, missing])
            assert [o.id for o in objs[:-1]] == [*inventory, big_id]
            assert objs[-1] is None
            assert len(objs[-2].data) == 512_000
            assert await reqresp.get_inventory(b, a.get_id(), missing) == []

    run_trio(main)


def test_an_answer_that_does_not_hash_to_the_id_is_refused(filled_store: Store) -> None:
    """A lying peer answers with a different valid object: the requester refuses it."""
    from libp2p.custom_types import TProtocol

    arena = filled_store.arenas()[0]
    other, _ = make_proposal(key(10), arena, arena.id, message="not what was asked")

    async def liar(stream) -> None:  # type: ignore[no-untyped-def]
        await wire.read_frame(stream)
        await wire.write_frame(stream, wire.pack([other.encode()]))
        await stream.close()

    async def main() -> None:
        async with running_hosts(2) as (a, b):
            a.set_stream_handler(TProtocol(reqresp.PROTOCOL), liar)
            await connect(b, a)
            with pytest.raises(reqresp.PeerAnswerError, match="id mismatch"):
                await reqresp.get_objects(b, a.get_id(), [arena.id])

    run_trio(main)


def test_bad_requests_are_reported_and_the_server_keeps_serving(filled_store: Store) -> None:
    from libp2p.custom_types import TProtocol

    bad: list[str] = []
    arena = filled_store.arenas()[0]

    async def main() -> None:
        async with running_hosts(2) as (a, b):
            reqresp.Responder(filled_store, on_bad=lambda peer, why: bad.append(why)).attach(a)
            await connect(b, a)
            for junk in (b"\xc1", wire.pack(["get", [b"short"]]), wire.pack({"a": 1})):
                stream = await b.new_stream(a.get_id(), [TProtocol(reqresp.PROTOCOL)])
                await wire.write_frame(stream, junk)
                with pytest.raises(wire.WireError):
                    await wire.read_frame(stream)
            stream = await b.new_stream(a.get_id(), [TProtocol(reqresp.PROTOCOL)])
            await stream.write((wire.MAX_FRAME * 4).to_bytes(4, "big"))
            with pytest.raises(wire.WireError):
                await wire.read_frame(stream)
            for _ in range(100):
                if len(bad) == 4:
                    break
                await trio.sleep(0.01)
            assert await reqresp.get_arenas(b, a.get_id()) == [arena.id]

    run_trio(main)
    assert len(bad) == 4
    assert any("exceeds the limit" in why for why in bad)


def test_hosts_run_inside_asyncio_through_the_bridge(filled_store: Store) -> None:
    """As `ratchet node` runs them (node.roles.runner): spawned into a trio guest of asyncio."""
    arena = filled_store.arenas()[0]

    async def main() -> list[bytes]:
        guest = TrioGuest()
        await guest.start()
        got: asyncio.Future[list[bytes]] = asyncio.get_running_loop().create_future()

        async def trio_side() -> None:  # trio runs on asyncio's thread: it may resolve the future
            async with running_hosts(2) as (a, b):
                reqresp.Responder(filled_store).attach(a)
                await connect(b, a)
                got.set_result(await reqresp.get_arenas(b, a.get_id()))

        guest.spawn(trio_side)
        try:
            assert guest.done is not None
            await asyncio.wait([got, guest.done], timeout=20, return_when=asyncio.FIRST_COMPLETED)
            assert got.done(), guest.done  # if not: the trio side crashed (guest.done says why) or hung
            return got.result()
        finally:
            await guest.stop()

    assert asyncio.run(main()) == [arena.id]
