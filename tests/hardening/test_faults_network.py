"""Network faults on real libp2p hosts over loopback: garbage and fuzzed streams, malicious answers,
half messages that stall, and a node SIGKILLed in the middle of a sync.

Every fault ends with the node still answering, its store consistent
(chain.audit.validate_store) and, after a restart, the same objects and head
as its peer.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import trio
from fuzzkit import Mutator, build_corpus
from wirefuzz import wire_seeds

from chain.audit import validate_store
from chain.consensus import state_for
from chain.objects import ChainObject
from chain.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "node"))
from p2p_helpers import connect, run_trio, running_hosts, running_networks, small_chain, wait_until  # noqa: E402

pytestmark = pytest.mark.timeout(120)
CORPUS = build_corpus()
NODE_CHILD = str(Path(__file__).parent / "node_child.py")


def _fill(home: Path, objs: list[ChainObject]) -> None:
    with Store.open(home) as store:
        for obj in objs:
            store.add(obj)


def _stream_errors() -> tuple[type[BaseException], ...]:
    """What a stream may raise when the other side resets or vanishes (the callers catch these)."""
    from libp2p.network.stream.exceptions import StreamError
    from libp2p.stream_muxer.exceptions import MuxedConnError, MuxedStreamError

    return (StreamError, MuxedStreamError, MuxedConnError)


async def _drain(stream: Any, limit_s: float) -> str:
    """Read until the node closes or resets the stream; how it ended."""
    with trio.move_on_after(limit_s):
        try:
            while await stream.read(65536):
                pass
            return "eof"
        except _stream_errors() as e:
            return type(e).__name__
    return "still open"


def test_responder_survives_fuzzed_requests_on_real_streams(tmp_path: Path) -> None:
    from libp2p.custom_types import TProtocol

    from node.p2p import reqresp, wire

    _fill(tmp_path / "a", CORPUS.preload)
    arena_id = CORPUS.preload[1].id
    seeds = wire_seeds(CORPUS)["request"]
    rng = random.Random(8)
    mutator = Mutator(rng, CORPUS)
    mutator.pool = mutator.pool + seeds
    endings: dict[str, int] = {}

    async def main() -> None:
        with Store.open(tmp_path / "a") as store:
            responder = reqresp.Responder(store)
            async with running_hosts(2) as (a, rogue):
                responder.attach(a)
                await connect(rogue, a)
                want = await reqresp.get_summary(rogue, a.get_id(), arena_id)
                for i in range(60):
                    body = mutator.mutate(rng.choice(seeds))
                    frame = len(body).to_bytes(4, "big") + body if rng.random() < 0.7 else body
                    stream = await rogue.new_stream(a.get_id(), [TProtocol(reqresp.PROTOCOL)])
                    await stream.write(frame[: rng.randint(1, len(frame))] if rng.random() < 0.2 else frame)
                    if rng.random() < 0.5:
                        await stream.close()
                    ending = await _drain(stream, 3.0)
                    endings[ending] = endings.get(ending, 0) + 1
                    if i % 20 == 0:  # the node still answers an honest request, correctly
                        assert await reqresp.get_summary(rogue, a.get_id(), arena_id, timeout=5) == want
                assert await reqresp.get_objects(rogue, a.get_id(), [arena_id]) == [CORPUS.preload[1]]
            assert store.data_version() == len(CORPUS.preload)
            _ = wire

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(reqresp, "REQUEST_TIMEOUT_S", 1.0)  # a half-written request is dropped after 1 s
        run_trio(main, 100)
    print(endings)
    assert "still open" not in endings, endings


def test_client_survives_a_malicious_responder(tmp_path: Path) -> None:
    """A peer answering every request with mutated bytes: the client gets a value checked against
    what it asked, a WireError, a timeout, or a stream error; never anything else."""
    from libp2p.custom_types import TProtocol

    from node.p2p import reqresp, wire

    _fill(tmp_path / "m", CORPUS.preload)
    arena_id = CORPUS.preload[1].id
    ids = [o.id for o in CORPUS.preload]
    rng = random.Random(9)
    mutator = Mutator(rng, CORPUS)
    outcomes: dict[str, int] = {}
    findings: list[str] = []

    class Capture:
        def __init__(self) -> None:
            self.data = b""

        async def write(self, data: bytes) -> None:
            self.data += data

    async def main() -> None:
        with Store.open(tmp_path / "m") as store:
            honest = reqresp.Responder(store)

            async def evil(stream: Any) -> None:
                try:
                    kind, arg = wire.decode_request(await wire.read_frame(stream))
                    cap = Capture()
                    await honest._answer(cap, kind, arg)  # noqa: SLF001 - the true answer, then mutated
                    answer = mutator.mutate(cap.data, max_ops=2) if rng.random() < 0.9 else cap.data
                    await stream.write(answer)
                    if rng.random() < 0.15:
                        await trio.sleep(5)  # stall with the stream open
                    await stream.close()
                except (wire.WireError, *_stream_errors()):
                    await stream.reset()

            async with running_hosts(2) as (m, client):
                m.set_stream_handler(TProtocol(reqresp.PROTOCOL), evil)
                await connect(client, m)
                calls = [
                    ("get", lambda: reqresp.get_objects(client, m.get_id(), ids, timeout=1.0)),
                    ("inv", lambda: reqresp.get_inventory(client, m.get_id(), arena_id, timeout=1.0)),
                    ("sum", lambda: reqresp.get_summary(client, m.get_id(), arena_id, timeout=1.0)),
                    ("have", lambda: reqresp.have(client, m.get_id(), ids, timeout=1.0)),
                    ("arenas", lambda: reqresp.get_arenas(client, m.get_id(), timeout=1.0)),
                    ("peers", lambda: reqresp.get_peer_addrs(client, m.get_id(), timeout=1.0)),
                ]
                for i in range(90):
                    name, call = calls[i % len(calls)]
                    try:
                        value = await call()
                        if name == "get":
                            for oid, obj in zip(ids, value, strict=True):
                                if obj is not None and obj.id != oid:
                                    findings.append(f"get returned {obj.hex} for {oid.hex()}")
                        outcome = "value"
                    except (wire.WireError, trio.TooSlowError, *_stream_errors()) as e:
                        outcome = type(e).__name__
                    except Exception as e:  # noqa: BLE001 - a finding, reported below
                        outcome = f"UNEXPECTED {type(e).__name__}"
                        findings.append(f"{name}: {type(e).__name__}: {e}")
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1

    run_trio(main, 100)
    print(outcomes)
    assert not findings, findings[:5]
    assert outcomes.get("value", 0) > 0 and len(outcomes) >= 3, outcomes


def test_half_messages_that_stall_neither_block_nor_leak(tmp_path: Path) -> None:
    """40 streams that send part of a frame and stall: honest peers are served meanwhile, and the
    node closes every stalled stream when its request timeout passes."""
    from libp2p.custom_types import TProtocol

    from node.p2p import reqresp

    arena, blobs, props, atts = small_chain(5)
    _fill(tmp_path / "a", [arena, *blobs, *props, *atts])
    closed: dict[str, int] = {}

    async def main() -> None:
        async with running_networks([tmp_path / "a"]) as (a,), running_hosts(2) as (rogue, honest):
            await connect(rogue, a.host)
            await connect(honest, a.host)
            stalled = []
            for i in range(40):
                s = await rogue.new_stream(a.host.get_id(), [TProtocol(reqresp.PROTOCOL)])
                await s.write(b"\x00\x00" if i % 2 else (100).to_bytes(4, "big") + b"\x92" * 50)
                stalled.append(s)
            t0 = trio.current_time()
            count, _ = await reqresp.get_summary(honest, a.host.get_id(), arena.id, timeout=5)
            objs = await reqresp.get_objects(honest, a.host.get_id(), [p.id for p in props], timeout=5)
            served_s = trio.current_time() - t0
            assert count == len(a.store.inventory(arena.id)) and objs == props
            assert served_s < 3.0, f"honest requests took {served_s:.1f}s beside 40 stalled streams"
            for s in stalled:
                ending = await _drain(s, 6.0)
                closed[ending] = closed.get(ending, 0) + 1
            assert not a.peers.is_banned(honest.get_id())

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(reqresp, "REQUEST_TIMEOUT_S", 2.0)
        run_trio(main, 60)
    assert closed.get("still open", 0) == 0, closed


def test_a_stalled_answer_times_out_the_client(tmp_path: Path) -> None:
    from libp2p.custom_types import TProtocol

    from node.p2p import reqresp, wire

    arena_id = CORPUS.preload[1].id

    async def stall(stream: Any) -> None:
        await wire.read_frame(stream)
        await stream.write((5000).to_bytes(4, "big") + b"\x91\xc5")  # half a frame
        await trio.sleep(30)

    async def main() -> float:
        async with running_hosts(2) as (m, client):
            m.set_stream_handler(TProtocol(reqresp.PROTOCOL), stall)
            await connect(client, m)
            t0 = trio.current_time()
            with pytest.raises(trio.TooSlowError):
                await reqresp.get_objects(client, m.get_id(), [arena_id], timeout=1.0)
            with pytest.raises(trio.TooSlowError):
                await reqresp.get_summary(client, m.get_id(), arena_id, timeout=1.0)
            return trio.current_time() - t0

    assert run_trio(main, 30) < 5.0


def _start_node(home: Path, *bootstrap: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    p = subprocess.Popen([sys.executable, NODE_CHILD, str(home), *bootstrap], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None
    line = p.stdout.readline()
    if not line.startswith("ready "):
        p.kill()
        raise AssertionError(f"node did not start: {line!r} {p.stderr.read()[-3000:] if p.stderr else ''}")
    return p, json.loads(line[6:])


def _count(home: Path) -> int:
    with Store.open(home) as s:
        return sum(s.counts().values())


def test_sigkill_during_sync_then_restart_converges(tmp_path: Path) -> None:
    arena, blobs, props, atts = small_chain(300)
    every = [arena, *blobs, *props, *atts]
    _fill(tmp_path / "a", every)
    total = len(every)
    home_b = tmp_path / "b"
    Store.open(home_b).close()
    seen: dict[str, Any] = {}

    async def main() -> None:
        async with running_networks([tmp_path / "a"]) as (a,):
            boot = a.addrs[0]
            child, _ = _start_node(home_b, boot)
            try:
                deadline = time.monotonic() + 60
                n = 0
                while time.monotonic() < deadline:  # kill while the sync is under way
                    n = await trio.to_thread.run_sync(_count, home_b)
                    if n >= total // 10:
                        break
                    await trio.sleep(0.02)
                os.kill(child.pid, signal.SIGKILL)
                child.wait(timeout=10)
                seen["at_kill"] = n
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
            with Store.open(home_b) as s:
                seen["after_kill"] = validate_store(s, workers=0).objects
            t0 = time.monotonic()
            child, _ = _start_node(home_b, boot)
            try:
                await wait_until(lambda: _count(home_b) == total, 60, poll=0.2)
                seen["resync_s"] = time.monotonic() - t0
            finally:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
            with Store.open(home_b) as s:
                validate_store(s, workers=0)
                assert sorted(s.inventory(arena.id)) == sorted(a.store.inventory(arena.id))
                assert state_for(s, arena.id).head == state_for(a.store, arena.id).head == props[-1].id

    run_trio(main, 110)
    print(seen)
    assert 0 < seen["after_kill"] < total, f"the kill did not land mid-sync: {seen}"

def test_a_peer_that_dies_mid_answer_is_not_a_bad_peer(tmp_path: Path) -> None:
    from libp2p.custom_types import TProtocol

    from node.p2p import reqresp
    from node.p2p.sync import SyncError, sync_with

    async def crash(stream) -> None:  # reads the request, then the process "dies"
        await stream.reset()

    async def main() -> None:
        with Store.open(tmp_path / "b") as store:
            async with running_hosts(2) as (dying, b):
                dying.set_stream_handler(TProtocol(reqresp.PROTOCOL), crash)
                await connect(b, dying)
                try:
                    await sync_with(b, store, dying.get_id())
                except SyncError as e:
                    assert not e.peer_fault, f"a cut stream was blamed on the peer: {e}"

    run_trio(main, 30)


def test_writing_to_a_stream_the_peer_reset_is_a_cut_not_a_fault(tmp_path: Path) -> None:
    """The write side of a cut stream: a request written after the peer reset it.

    (It failed CI once as a raw StreamReset out of sync_with: which side of the
    exchange meets the reset first is a race, so both are forced here.)
    """
    from libp2p.custom_types import TProtocol

    from node.p2p import reqresp, wire
    from node.p2p.sync import SyncError, sync_with

    async def crash(stream) -> None:
        await stream.reset()

    async def main() -> None:
        async with running_hosts(2) as (dying, b):
            dying.set_stream_handler(TProtocol(reqresp.PROTOCOL), crash)
            await connect(b, dying)
            stream = await b.new_stream(dying.get_id(), [TProtocol(reqresp.PROTOCOL)])
            with pytest.raises(wire.TruncatedError):
                await wire.read_frame(stream)  # the reset has arrived
            with pytest.raises(wire.CutError):
                await wire.write_frame(stream, wire.encode_request("arenas", b""))
            with Store.open(tmp_path / "b") as store:
                for _ in range(5):  # either side may meet the reset first: never the peer's fault
                    with pytest.raises(SyncError) as e:
                        await sync_with(b, store, dying.get_id())
                    assert not e.value.peer_fault, e.value

    run_trio(main, 30)


def test_a_corrupt_blob_does_not_get_its_node_banned(tmp_path: Path) -> None:
    arena, blobs, props, atts = small_chain(5)
    with Store.open(tmp_path / "a") as s:
        for o in [arena, *blobs, *props, *atts]:
            s.add(o)
        s.blob_path(blobs[3].id).write_bytes(b"rot")
    total = 2 + 5 + 5 + 10  # arena, 6 blobs, 5 proposals, 10 attestations = 22

    async def main() -> None:
        async with running_networks([tmp_path / "a", tmp_path / "b"]) as (a, b):
            await wait_until(lambda: sum(b.store.counts().values()) == total - 1, 20)
            await trio.sleep(1.0)
            assert not b.peers.is_banned(a.host.get_id()), b.peers.summary()

    run_trio(main, 40)
