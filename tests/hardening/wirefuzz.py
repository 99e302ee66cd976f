"""The network's decoders as fuzz entry points (in-process, no sockets).

- node.p2p.wire: decode_request, decode_summary, decode_peer_addrs, decode_gossip,
  unpack (the answer frames of get/inv/arenas), read_frame over a stream that
  delivers the bytes in random pieces;
- node.p2p.gossip: the gossipsub validator of a real Gossip (a real host object,
  never started, and a real store), on every topic kind: it must return True or
  False and never raise; a False must leave the store as it was; a True for an
  object must mean the object is valid and stored.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import msgpack
import trio
from fuzzkit import Corpus
from fuzzoracle import Entry, OracleError, StoreOracle, check_accepted

from chain.objects import Arena, Attestation, Proposal, decode
from chain.store import Store


class GossipRefused(Exception):
    """The validator returned False (counted as a rejection under the penalty reason's first words)."""

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.label = f"refused: {label}"


class _PieceStream:
    """A ByteStream that hands out its bytes in random-sized pieces, then EOF."""

    def __init__(self, data: bytes, rng: random.Random) -> None:
        self.data, self.rng = data, rng

    async def read(self, n: int | None = None) -> bytes:
        take = min(n or len(self.data), self.rng.randint(1, 4096))
        piece, self.data = self.data[:take], self.data[take:]
        return piece

    async def write(self, data: bytes) -> None:
        raise OSError("read-only test stream")


def wire_seeds(corpus: Corpus) -> dict[str, list[bytes]]:
    from node.p2p import wire

    ids = corpus.ids
    arena_id = next(o.id for o in corpus.objects if isinstance(o, Arena))
    addr = "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp"
    encs = corpus.encodings()
    return {
        "request": [wire.encode_request("get", ids[:5]), wire.encode_request("have", ids),
                    wire.encode_request("inv", arena_id), wire.encode_request("sum", arena_id),
                    wire.encode_request("arenas", b""), wire.encode_request("peers", b"")],
        "summary": [wire.pack([len(ids), os.urandom(32)]), wire.pack([0, b"\x00" * 32])],
        "peers": [wire.pack([addr, addr.replace("4001", "4002")]), wire.pack([])],
        "gossip": [wire.encode_gossip_object(o.encode()) for o in corpus.objects
                   if isinstance(o, Proposal | Attestation)]
                  + [wire.encode_gossip_head(arena_id, ids[5], 17)],
        "answer": [wire.pack(encs[i : i + 3]) for i in range(0, len(encs), 3)] + [wire.pack(ids), wire.pack([])],
        "frame": [len(e).to_bytes(4, "big") + e for e in encs[:6]] + [b"\x00\x00\x00\x00"],
    }


def entries(corpus: Corpus, tmp: Path) -> list[Entry]:
    from node.p2p import wire

    seeds = wire_seeds(corpus)
    named = (wire.WireError,)
    rng = random.Random(0)

    def answer(data: bytes) -> str:
        return f"list of {len(wire.unpack(data))}"

    def frame(data: bytes) -> str:
        async def go() -> bytes:
            return await wire.read_frame(_PieceStream(data, rng))

        return f"frame of {len(trio.run(go))}"

    return [
        Entry("wire.decode_request", lambda d: wire.decode_request(d)[0], seeds["request"], named),
        Entry("wire.decode_summary", lambda d: str(wire.decode_summary(d)[0]), seeds["summary"], named),
        Entry("wire.decode_peer_addrs", lambda d: str(len(wire.decode_peer_addrs(d))), seeds["peers"], named),
        Entry("wire.decode_gossip", lambda d: wire.decode_gossip(d)[0], seeds["gossip"], named,
              wrap=lambda encs: wire.encode_gossip_object(encs[0])),
        Entry("wire.unpack (answers)", answer, seeds["answer"], named, wrap=lambda encs: wire.pack(encs)),
        Entry("wire.read_frame", frame, seeds["frame"], named,
              wrap=lambda encs: len(encs[0]).to_bytes(4, "big") + encs[0]),
        gossip_entry(corpus, tmp),
    ]


def gossip_entry(corpus: Corpus, tmp: Path) -> Entry:
    """The validator of a real Gossip over a real store (its host built but never started)."""
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.id import ID
    from libp2p.pubsub.pb import rpc_pb2

    from node.p2p import wire
    from node.p2p.gossip import KINDS, Gossip, GossipHandlers, topic
    from node.p2p.host import make_host
    from node.p2p.peers import Limits, PeerBook

    store = Store.open(tmp / "gossip-home")
    model = StoreOracle(store, corpus.preload)  # for its snapshot and admission model
    host = make_host(create_new_key_pair(os.urandom(32)))
    gossip = Gossip(host, store, PeerBook(Limits(key_rate=1e9, key_burst=1e9)), GossipHandlers())
    arena_ids = [o.id for o in corpus.objects if isinstance(o, Arena)] + [os.urandom(32)]
    validators = {(a, k): gossip._validator(a, k) for a in arena_ids for k in KINDS}  # noqa: SLF001
    forwarders = [ID(create_new_key_pair(os.urandom(32)).public_key.serialize()) for _ in range(64)]
    rng = random.Random(1)
    counter = [0]

    def run(data: bytes) -> str:
        counter[0] += 1
        if counter[0] % 50 == 0:  # forget scores now and then: a banned forwarder short-cuts everything
            gossip.peers.records.clear()
        arena_id = arena_ids[0] if rng.random() < 0.8 else rng.choice(arena_ids)
        kind = _kind_of(data, rng)
        fw = rng.choice(forwarders)
        msg = rpc_pb2.Message(from_id=fw.to_bytes(), data=data, seqno=counter[0].to_bytes(8, "big"),
                              topicIDs=[topic(arena_id, kind)])
        before = model.snapshot()
        ok = validators[(arena_id, kind)](fw, msg)
        if type(ok) is not bool:
            raise OracleError(f"validator returned {ok!r}")
        if not ok:
            if model.snapshot() != before:
                raise OracleError("a refused gossip message changed the store")
            reason = gossip.peers.records.get(fw)
            why = reason.reasons[-1] if reason is not None and reason.reasons else "not forwarded"
            words = [w.rstrip(":") for w in why.split() if w.rstrip(":").isalpha()]  # no ids, sizes, fields
            raise GossipRefused(" ".join(words[:2]))
        what, payload = wire.decode_gossip(data)
        if what == "object":
            obj = decode(payload)  # full checks: a forwarded object must be valid
            check_accepted(payload, obj)
            if not store.has(obj.id) or not model.admissible(obj) and obj.id not in model.held:
                raise OracleError("validator passed an object the store does not hold")
            model.held[obj.id] = obj
        return what

    return Entry("gossip validator", run, wire_seeds(corpus)["gossip"], (GossipRefused,),
                 wrap=lambda encs: wire.encode_gossip_object(encs[0]))


def _kind_of(data: bytes, rng: random.Random) -> str:
    """The topic a sender would use for this message (sometimes a wrong one on purpose)."""
    if rng.random() < 0.1:
        return rng.choice(["proposals", "attestations", "heads"])
    try:
        value: Any = msgpack.unpackb(data, raw=False)
        if value[0] == "head":
            return "heads"
        return "proposals" if msgpack.unpackb(value[1], raw=False)[0] == "proposal" else "attestations"
    except Exception:  # noqa: BLE001 - any garbage: pick at random
        return rng.choice(["proposals", "attestations"])
