"""Gossipsub with fixed parameters, per-arena topics, and validation before store and forward.

Topics per arena: `/ratchet/1/<arena hex>/proposals`, `.../attestations`,
`.../amendments` (one encoded object per message), `.../heads` ([arena, head, inventory size]) and
`.../claims` (one signed, expiring "trying X" claim; advisory, never stored in
the chain store: claimgossip.ClaimBook validates, caps and journals them).
One topic for the whole network, PROFILES_TOPIC: profiles belong to no arena.
Scripts never travel here: a proposal names its script's blob id, and peers
fetch the blob by request/response.

py-libp2p's defaults lose messages or slow them down; this module sets:
- heartbeat 1 s (default 120 s, and "adaptive gossip" stretches it to >= 30 s: off);
- its publish spam protection (10 msgs/s per topic, our own publishes too): off,
  our rate limits are per peer and per signing key (peers.PeerBook);
- "eclipse protection" wants 3 distinct IPs in a mesh: off (it starves loopback
  and LAN meshes);
- per-peer outbound queue 32 -> PEER_QUEUE_SIZE; subscription queues (32,
  dropped silently when full) are not used at all: the validator does the work;
- message ids are content hashes, so one object published by two nodes is one message.

The validator runs on every message before pubsub forwards it: it decodes,
checks the topic, stores the object (the store validates signatures and rules)
and only then lets it through. Invalid content costs the forwarding peer its
score (an honest peer never forwards what it has not validated).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chain.errors import (
    ChainError,
    DecodeError,
    StoreError,
    UnknownArenaError,
    UnknownParentError,
    UnknownProposalError,
)
from chain.objects import Amendment, Attestation, ChainObject, Profile, Proposal, decode
from node.p2p import wire
from node.p2p.claimgossip import ClaimBook
from node.p2p.claims import TopicClaim
from node.p2p.peers import PeerBook

if TYPE_CHECKING:
    from libp2p.abc import IHost
    from libp2p.peer.id import ID

    from chain.store import Store

log = logging.getLogger(__name__)

KINDS = {"proposals": Proposal, "attestations": Attestation, "amendments": Amendment,  # per arena
         "heads": None, "claims": None}
MESSAGE_KIND = {"proposals": "object", "attestations": "object", "amendments": "object", "heads": "head",
                "claims": "claim", "profiles": "object"}
TOPIC_KIND = {Proposal: "proposals", Attestation: "attestations", Amendment: "amendments"}
PROFILES_TOPIC = "/ratchet/1/profiles"
PEER_QUEUE_SIZE = 4096


@dataclass(frozen=True)
class GossipParams:
    degree: int = 6
    degree_low: int = 4
    degree_high: int = 12
    heartbeat_s: float = 1.0
    gossip_window: int = 3
    gossip_history: int = 5
    seen_ttl_s: int = 120


def topic(arena_id: bytes, kind: str) -> str:
    return f"/ratchet/1/{arena_id.hex()}/{kind}"


def topic_of(obj: ChainObject) -> str:
    """The topic a proposal, an attestation, an amendment or a profile travels on."""
    if isinstance(obj, Profile):
        return PROFILES_TOPIC
    return topic(obj.arena, TOPIC_KIND[type(obj)])


def parse_topic(name: str) -> tuple[bytes, str] | None:
    parts = name.split("/")
    if len(parts) != 5 or parts[:3] != ["", "ratchet", "1"] or parts[4] not in KINDS:
        return None
    try:
        arena_id = bytes.fromhex(parts[3])
    except ValueError:
        return None
    return (arena_id, parts[4]) if len(arena_id) == 32 else None


def _message_id(msg: Any) -> bytes:
    return hashlib.sha256(msg.data).digest()


def make_pubsub(host: IHost, params: GossipParams,
                on_bad: Callable[[ID, str], None] | None = None) -> tuple[Any, Any]:
    """(pubsub, gossipsub router) with the parameters above; run both as services.

    py-libp2p lets an unparseable RPC from a peer escape its stream handler, which
    takes the whole swarm down: here it is caught, the stream reset, and the peer
    reported to `on_bad`.
    """
    from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, GossipSub
    from libp2p.pubsub.pubsub import Pubsub

    class _Pubsub(Pubsub):  # type: ignore[misc]
        async def _handle_new_peer(self, peer_id: ID) -> None:
            await super()._handle_new_peer(peer_id)
            queue = self.peer_queues.get(peer_id)
            inner = getattr(queue, "_queue", None)
            if inner is not None and hasattr(inner, "max_size"):
                inner.max_size = PEER_QUEUE_SIZE

        def notify_subscriptions(self, publish_message: Any) -> None:
            """Nothing reads subscription queues: validators store what arrives."""

        async def stream_handler(self, stream: Any) -> None:
            peer_id = stream.muxed_conn.peer_id
            try:
                await super().stream_handler(stream)
            except Exception as e:  # anything a peer's bytes can raise in the library
                log.info("malformed pubsub stream from %s: %r", peer_id, e)
                if on_bad is not None:
                    on_bad(peer_id, f"malformed pubsub RPC: {type(e).__name__}")
                try:
                    await stream.reset()
                except Exception as reset_error:  # already closed
                    log.debug("reset: %s", reset_error)
                self._handle_dead_peer(peer_id)

    router = GossipSub(
        protocols=[PROTOCOL_ID_V11, PROTOCOL_ID],
        degree=params.degree, degree_low=params.degree_low, degree_high=params.degree_high,
        heartbeat_interval=params.heartbeat_s,  # type: ignore[arg-type]  # a float works (trio.sleep)
        heartbeat_initial_delay=0.1, gossip_window=params.gossip_window,
        gossip_history=params.gossip_history, do_px=False,
        adaptive_gossip_enabled=False, spam_protection_enabled=False,
        eclipse_protection_enabled=False,
    )
    pubsub = _Pubsub(host, router, seen_ttl=params.seen_ttl_s, msg_id_constructor=_message_id,
                     max_inbound_rpc_size=4 * wire.MAX_GOSSIP_BYTES)
    return pubsub, router


class GossipHandlers:
    """What the validator reports to the rest of the node."""

    def __init__(self,
                 on_object: Callable[[ChainObject, ID], None] | None = None,
                 on_missing: Callable[[bytes, ID], None] | None = None,
                 on_head: Callable[[bytes, bytes, int, ID, ID], None] | None = None,
                 on_claim: Callable[[TopicClaim | None, ID], None] | None = None) -> None:
        self.on_object = on_object or (lambda obj, peer: None)
        self.on_missing = on_missing or (lambda arena, peer: None)
        self.on_head = on_head or (lambda arena, head, size, origin, peer: None)
        self.on_claim = on_claim or (lambda claim, peer: None)


class Gossip:
    """The node's gossip: joins arena topics, validates and stores what arrives, publishes."""

    def __init__(self, host: IHost, store: Store, peers: PeerBook, handlers: GossipHandlers,
                 params: GossipParams | None = None, claims: ClaimBook | None = None) -> None:
        self.host = host
        self.store = store
        self.peers = peers
        self.handlers = handlers
        self.claims = claims  # None: the claims topics are not joined
        self.pubsub, self.router = make_pubsub(host, params or GossipParams(),
                                               on_bad=lambda peer, why: self._invalid(peer, why))
        self.joined: set[bytes] = set()
        self.received = 0
        self.rejected = 0

    async def join(self, arena_id: bytes) -> None:
        """Subscribe to the arena's topics (idempotent)."""
        if arena_id in self.joined:
            return
        self.joined.add(arena_id)
        for kind in KINDS:
            if kind == "claims" and self.claims is None:
                continue
            name = topic(arena_id, kind)
            self.pubsub.set_topic_validator(name, self._validator(arena_id, kind), False)
            await self.pubsub.subscribe(name)

    async def join_profiles(self) -> None:
        """Subscribe to the network's profile topic (once, when the node starts)."""
        self.pubsub.set_topic_validator(PROFILES_TOPIC, self._validator(None, "profiles"), False)
        await self.pubsub.subscribe(PROFILES_TOPIC)

    async def publish_object(self, obj: ChainObject) -> None:
        await self.pubsub.publish(topic_of(obj), wire.encode_gossip_object(obj.encode()))

    async def publish_head(self, arena_id: bytes, head_id: bytes, size: int) -> None:
        await self.pubsub.publish(topic(arena_id, "heads"), wire.encode_gossip_head(arena_id, head_id, size))

    async def publish_claim(self, claim: TopicClaim) -> None:
        await self.pubsub.publish(topic(claim.arena, "claims"), wire.encode_gossip_claim(claim.encode()))

    def can_reach(self, name: str) -> bool:
        """Whether a publish on topic `name` now would reach a peer (its mesh, or fanout peers)."""
        mesh = self.router.mesh.get(name)
        return bool(mesh) if mesh is not None else bool(self.pubsub.peer_topics.get(name))

    def _validator(self, arena_id: bytes | None, kind: str) -> Callable[[ID, Any], bool]:
        def validate(forwarder: ID, msg: Any) -> bool:
            if forwarder == self.host.get_id():
                return True  # our own publish: stored before it was published
            ok = self._check(arena_id, kind, forwarder, msg)
            self.received += 1
            if not ok:
                self.rejected += 1
            return ok

        return validate

    def _invalid(self, peer: ID, why: str) -> bool:
        log.info("rejected gossip from %s: %s", peer, why)
        self.peers.invalid(peer, why)
        return False

    def _check(self, arena_id: bytes | None, kind: str, forwarder: ID, msg: Any) -> bool:
        """Validate and store one message on an arena's topic (`arena_id`) or the profile topic (None)."""
        from libp2p.peer.id import ID

        if self.peers.is_banned(forwarder) or not self.peers.allow_peer(forwarder):
            return False
        if len(msg.topicIDs) != 1:
            return self._invalid(forwarder, "message on several topics")
        try:
            what, payload = wire.decode_gossip(msg.data)
        except wire.WireError as e:
            return self._invalid(forwarder, str(e))
        if what != MESSAGE_KIND[kind]:
            return self._invalid(forwarder, f"{what} message on a {kind} topic")
        if what == "claim" and arena_id is not None:
            return self._check_claim(arena_id, forwarder, payload)
        if what == "head" and arena_id is not None:
            head_arena, head_id, size = payload
            if head_arena != arena_id:
                return self._invalid(forwarder, "head for another arena")
            self.handlers.on_head(arena_id, head_id, size, ID(msg.from_id), forwarder)
            return True
        try:
            obj = decode(payload, verify=False)
        except DecodeError as e:
            return self._invalid(forwarder, f"undecodable object: {e}")
        name = PROFILES_TOPIC if arena_id is None else topic(arena_id, kind)
        if type(obj) not in (Proposal, Attestation, Amendment, Profile) or topic_of(obj) != name:
            return self._invalid(forwarder, f"{obj.TYPE} does not belong on {name}")
        if self.store.has(obj.id):
            return True
        if isinstance(obj, Profile):
            signer, allowed = obj.owner, self.peers.allow_profile(obj.owner)
        else:  # an amendment is charged to its first signer
            signer = (obj.author if isinstance(obj, Proposal) else
                      obj.verifier if isinstance(obj, Attestation) else obj.signers[0])
            allowed = self.peers.allow_key(signer)
        if not allowed:
            log.info("key %s over its rate limit: %s not forwarded", signer.hex()[:12], obj.hex[:12])
            return False
        try:
            self.store.add(obj)
        except (UnknownParentError, UnknownProposalError, UnknownArenaError) as e:
            log.debug("gossip %s waits for what it depends on (%s): sync", obj.hex[:12], e)
            self.handlers.on_missing(obj.arena, forwarder)
            return False
        except StoreError as e:
            log.warning("could not store gossip %s: %s", obj.hex[:12], e)
            return False
        except ChainError as e:
            return self._invalid(forwarder, f"{obj.TYPE} {obj.hex[:12]}: {e}")
        self.peers.reward(forwarder)
        self.handlers.on_object(obj, forwarder)
        return True

    def _check_claim(self, arena_id: bytes, forwarder: ID, payload: bytes) -> bool:
        if self.claims is None:
            return False
        verdict = self.claims.receive(arena_id, payload, self.peers.allow_key)
        if verdict.invalid:
            return self._invalid(forwarder, verdict.invalid)
        if verdict.accept:
            self.peers.reward(forwarder)
            self.handlers.on_claim(verdict.claim, forwarder)
        return verdict.accept
