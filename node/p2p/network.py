"""The node's network: one libp2p host, gossip, request/response, sync and discovery around a store.

`Network.run()` is a trio task that lives until cancelled. Its loops:
- dial: keeps bootstrap peers connected, learns more peers from its peers, drops banned ones;
- sync: an anti-entropy round with each new peer, with every peer every
  `sync_interval_s`, and with a peer whose head announcement shows it holds more;
- watch: notices objects written to the store by another process (`ratchet
  propose`, `ratchet profile set`, a verifier worker) or by this one, and gossips
  them; joins the topics of arenas that appear; publishes the claims a contributor on this home signed
  into its journal (claimgossip.ClaimBook; received claims go into that journal);
- blobs: fetches the script of each proposal gossip delivered;
- announce: publishes each arena's head (peers that hold less then sync);
- status: writes `<home>/p2p/status.json` every second (statusfile; `ratchet status` reads it).

Dialing lives in dialer.Dialer, script fetching in blobs.BlobFetcher.
Everything received is validated (by the store) before it is stored or forwarded;
peers that send invalid data are banned and disconnected (peers.PeerBook).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from chain.consensus import state_for
from chain.objects import Amendment, Attestation, ChainObject, Profile, Proposal
from node.p2p import reqresp
from node.p2p.blobs import BlobFetcher
from node.p2p.claimgossip import MAX_PER_AUTHOR, ClaimBook
from node.p2p.dialer import Dialer, disconnect, peer_addrs
from node.p2p.gossip import Gossip, GossipHandlers, GossipParams, topic
from node.p2p.host import dialable, listen_addrs, load_identity, make_host
from node.p2p.peers import Limits, PeerBook
from node.p2p.statusfile import STATUS_INTERVAL_S, write_status
from node.p2p.sync import SyncError, sync_with

if TYPE_CHECKING:
    from libp2p.abc import IHost
    from libp2p.peer.id import ID

    from chain.store import Store
    from node.p2p.claims import TopicClaim

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class NetworkConfig:
    listen: str = "0.0.0.0"
    port: int = 0
    bootstrap: tuple[str, ...] = ()
    mdns: bool = False
    sync_interval_s: float = 15.0
    announce_interval_s: float = 5.0
    watch_interval_s: float = 0.2
    dial_interval_s: float = 3.0
    target_peers: int = 8
    max_parallel_syncs: int = 4
    claims_per_author: int = MAX_PER_AUTHOR  # live claims per author and parent accepted from gossip
    gossip: GossipParams = field(default_factory=GossipParams)
    limits: Limits = field(default_factory=Limits)


@dataclass
class Counters:
    sync_rounds: int = 0
    sync_failures: int = 0
    pulled: int = 0
    published: int = 0
    gossip_stored: int = 0
    blobs_fetched: int = 0
    bans: int = 0
    claims_published: int = 0
    claims_received: int = 0


class Network:
    """One node's presence on the network. Create, then run `run()` in a trio nursery."""

    def __init__(self, home: Path, store: Store, config: NetworkConfig | None = None,
                 status_extra: Callable[[], dict[str, Any]] | None = None) -> None:
        self.home = home
        self.store = store
        self.config = config or NetworkConfig()
        self.status_extra = status_extra
        self.counters = Counters()
        self.ready = trio.Event()
        self.host: IHost | None = None
        self.peers = PeerBook(self.config.limits, on_ban=self._on_ban)
        self._gossip: Gossip | None = None
        self._nursery: trio.Nursery | None = None
        self._sync_wanted: dict[ID, None] = {}
        self._sync_running: set[ID] = set()
        self._sync_wake = trio.Event()
        self._seen_peers: set[ID] = set()
        self._blobs: BlobFetcher | None = None
        self._summaries = reqresp.Summaries(store)  # shared by the responder and sync rounds
        self._known: dict[bytes, set[bytes]] = {}
        self._known_profiles: set[bytes] = set()  # current profiles this node has gossiped or received
        self._version = 0
        self._net_added = 0
        self._heads: dict[bytes, tuple[int, bytes, int]] = {}  # arena -> (version, head, size)
        self._addrs: list[str] | None = None
        self.claims = ClaimBook(home, self.config.claims_per_author)
        self._claims_out: list[TopicClaim] = []  # read from the journal, waiting for a peer to hear them

    # -- public ------------------------------------------------------------------
    @property
    def peer_id(self) -> str:
        return str(self._host.get_id())

    @property
    def addrs(self) -> list[str]:
        """Addresses others can dial (a wildcard listen address expands to this machine's IPs)."""
        if self._addrs is None:
            pid = self.peer_id
            out: list[str] = []
            for a in self._host.get_addrs():
                text = str(a) if "/p2p/" in str(a) else f"{a}/p2p/{pid}"
                out.extend(dialable(text))
            self._addrs = out
        return self._addrs

    def connected(self) -> list[ID]:
        return list(self._host.get_connected_peers())

    async def publish(self, obj: ChainObject) -> bool:
        """Store a locally made object (the store validates it) and gossip it. True if new."""
        new = self.store.add(obj)
        if new:
            self._note_stored(obj)
        if isinstance(obj, Proposal | Attestation | Amendment | Profile):
            await self._gossip_object(obj)
        return new

    def request_sync(self, peer: ID | None = None) -> None:
        """Sync soon with `peer`, or with every connected peer."""
        for p in [peer] if peer is not None else self.connected():
            self._sync_wanted[p] = None
        self._sync_wake.set()

    def snapshot(self) -> dict[str, Any]:
        """What `ratchet status` shows: identity, peers, heads, counters."""
        arenas = []
        for arena in self.store.arenas():
            version, head, size = self._heads.get(arena.id, (0, arena.id, 0))
            arenas.append({"id": arena.hex, "name": arena.name, "head": head.hex(), "objects": size})
        peers = self.peers.summary()
        out: dict[str, Any] = {
            "pid": os.getpid(), "updated_ms": int(time.time() * 1000), "peer_id": self.peer_id,
            "addrs": self.addrs,
            "peers": [{"id": str(p), **peers.get(str(p), {"score": 0.0})} for p in self.connected()],
            "banned": sorted(p for p, rec in peers.items() if rec["banned"]),
            "arenas": arenas, "counters": vars(self.counters).copy(),
        }
        if self.status_extra is not None:
            out.update(self.status_extra())
        return out

    # -- lifecycle ---------------------------------------------------------------
    @property
    def _host(self) -> IHost:
        if self.host is None:
            raise RuntimeError("the network is not running")
        return self.host

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        cfg = self.config
        self.host = make_host(load_identity(self.home), mdns=cfg.mdns)
        self._gossip = Gossip(self.host, self.store, self.peers, GossipHandlers(
            on_object=self._on_gossip_object, on_missing=self._on_missing, on_head=self._on_head,
            on_claim=self._on_claim,
        ), cfg.gossip, claims=self.claims)
        host = self.host
        responder = reqresp.Responder(self.store, on_bad=self._on_bad_request, allow=self._allow,
                                      peer_addrs=lambda: peer_addrs(host))
        responder.summaries = self._summaries
        self._blobs = BlobFetcher(host, self.store, self.peers, self._on_blob, cfg.watch_interval_s)
        dialer = Dialer(host, self.store, self.peers, cfg.bootstrap, cfg.mdns, cfg.target_peers,
                        cfg.dial_interval_s)
        try:
            await self._run_host(responder, dialer, task_status)
        finally:
            self.claims.close()

    async def _run_host(self, responder: reqresp.Responder, dialer: Dialer, task_status: Any) -> None:
        from libp2p.tools.anyio_service.context import background_trio_service

        cfg = self.config
        assert self.host is not None and self._gossip is not None and self._blobs is not None
        async with self.host.run(listen_addrs(cfg.listen, cfg.port)):
            responder.attach(self.host)
            async with background_trio_service(self._gossip.pubsub), \
                    background_trio_service(self._gossip.router):
                await self._gossip.pubsub.wait_until_ready()
                self._version = self.store.data_version()
                self._known_profiles = set(self.store.profile_inventory())
                await self._gossip.join_profiles()
                for arena in self.store.arenas():
                    await self._join(arena.id)
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    nursery.start_soon(dialer.run, nursery)
                    nursery.start_soon(self._blobs.run)
                    for loop in (self._sync_loop, self._watch_loop, self._announce_loop, self._status_loop):
                        nursery.start_soon(loop)
                    self.ready.set()
                    task_status.started(self)

    async def _join(self, arena_id: bytes) -> None:
        assert self._gossip is not None
        if arena_id not in self._known:
            self._known[arena_id] = set(self.store.inventory(arena_id))
        await self._gossip.join(arena_id)

    # -- callbacks from gossip and requests ----------------------------------------
    def _note_stored(self, obj: ChainObject) -> None:
        if isinstance(obj, Profile):
            self._known_profiles.add(obj.id)
        arena = obj.id if obj.TYPE == "arena" else getattr(obj, "arena", None)
        if arena is not None and arena in self._known:
            self._known[arena].add(obj.id)
        self._net_added += 1

    def _on_gossip_object(self, obj: ChainObject, peer: ID) -> None:
        self._note_stored(obj)
        self.counters.gossip_stored += 1
        if isinstance(obj, Proposal) and self._blobs is not None:
            self._blobs.want(obj.script, peer)

    def _on_blob(self, obj: ChainObject) -> None:
        self._note_stored(obj)
        self.counters.blobs_fetched += 1

    def _on_claim(self, claim: TopicClaim | None, peer: ID) -> None:
        self.counters.claims_received += 1

    def _on_missing(self, arena_id: bytes, peer: ID) -> None:
        self.request_sync(peer)

    def _on_head(self, arena_id: bytes, head: bytes, size: int, origin: ID, peer: ID) -> None:
        cached = self._heads.get(arena_id)
        if not self.store.has(head) or (cached is not None and size > cached[2]):
            self.request_sync(origin if origin in self.connected() else peer)

    def _on_bad_request(self, peer: ID, why: str) -> None:
        self.peers.invalid(peer, why)

    def _allow(self, peer: ID) -> bool:
        return not self.peers.is_banned(peer) and self.peers.allow_peer(peer)

    def _on_ban(self, peer: Any, reason: str) -> None:
        log.warning("banning peer %s: %s", peer, reason)
        self.counters.bans += 1
        if self._gossip is not None:
            self._gossip.pubsub.blacklisted_peers.add(peer)
        if self.host is not None:  # so the library's auto-connector does not dial it again
            self.host.get_peerstore().clear_addrs(peer)
        if self._nursery is not None:
            self._nursery.start_soon(disconnect, self._host, peer)

    # -- loops ---------------------------------------------------------------------
    async def _sync_loop(self) -> None:
        next_round = trio.current_time() + self.config.sync_interval_s
        while True:
            for peer in self.connected():
                if peer not in self._seen_peers:
                    self._seen_peers.add(peer)
                    self._sync_wanted[peer] = None
            if trio.current_time() >= next_round:
                next_round = trio.current_time() + self.config.sync_interval_s
                for peer in self.connected():
                    self._sync_wanted[peer] = None
            for peer in list(self._sync_wanted):
                if len(self._sync_running) >= self.config.max_parallel_syncs:
                    break
                if peer in self._sync_running:
                    continue
                del self._sync_wanted[peer]
                if self.peers.is_banned(peer) or peer not in self.connected():
                    continue
                self._sync_running.add(peer)
                assert self._nursery is not None
                self._nursery.start_soon(self._sync_one, peer)
            self._sync_wake = trio.Event()
            with trio.move_on_after(self.config.watch_interval_s):
                await self._sync_wake.wait()

    async def _sync_one(self, peer: ID) -> None:
        try:
            result = await sync_with(self._host, self.store, peer, on_stored=self._note_stored,
                                     summaries=self._summaries)
            self.counters.sync_rounds += 1
            self.counters.pulled += result.pulled
            for arena_id in result.arenas_new:
                await self._join(arena_id)
            if result.pulled:
                log.info("synced %d objects from %s in %.1fs", result.pulled, peer, result.seconds)
        except SyncError as e:
            self.counters.sync_failures += 1
            log.info("sync with %s failed: %s", peer, e)
            if e.peer_fault:
                self.peers.invalid(peer, e.problem)
        except Exception as e:  # streams reset, timeouts, peers gone: retried next round
            self.counters.sync_failures += 1
            log.debug("sync with %s interrupted: %r", peer, e)
        finally:
            self._sync_running.discard(peer)
            self._sync_wake.set()

    async def _watch_loop(self) -> None:
        """Gossip objects that other processes (or this one) wrote to the store."""
        while True:
            await trio.sleep(self.config.watch_interval_s)
            await self._publish_claims()
            version = self.store.data_version()
            if version == self._version:
                continue
            outside = version - self._version - self._net_added
            self._version, self._net_added = version, 0
            for arena in self.store.arenas():
                if arena.id not in self._known:
                    await self._join(arena.id)
                    continue
                if outside > 0:
                    await self._publish_new(arena.id)
            if outside > 0:
                await self._publish_new_profiles()

    async def _publish_new(self, arena_id: bytes) -> None:
        known = self._known[arena_id]
        new = [oid for oid in self.store.inventory(arena_id) if oid not in known]
        for oid in new:
            known.add(oid)
            obj = self.store.get(oid)
            if isinstance(obj, Proposal | Attestation | Amendment):
                await self._gossip_object(obj)

    async def _publish_new_profiles(self) -> None:
        for oid in self.store.profile_inventory():
            if oid not in self._known_profiles:
                self._known_profiles.add(oid)
                await self._gossip_object(self.store.get(oid))

    async def _publish_claims(self) -> None:
        """Gossip new claims from the home's journal once a peer can hear them (no anti-entropy
        for claims: one published into an empty mesh would be lost); expired ones are dropped."""
        assert self._gossip is not None
        self._claims_out.extend(self.claims.outgoing())
        now_ms = int(time.time() * 1000)
        waiting: list[TopicClaim] = []
        for claim in self._claims_out:
            if not claim.live(now_ms):
                continue
            if not self._gossip.can_reach(topic(claim.arena, "claims")):
                waiting.append(claim)
                continue
            try:
                await self._gossip.publish_claim(claim)
                self.counters.claims_published += 1
            except Exception as e:  # a peer went away mid-send: claims are advisory, not retried
                log.debug("publishing claim %s: %s", claim.id.hex()[:12], e)
        self._claims_out = waiting

    async def _gossip_object(self, obj: ChainObject) -> None:
        assert self._gossip is not None
        try:
            await self._gossip.publish_object(obj)
            self.counters.published += 1
        except Exception as e:  # no peers yet, or a peer went away mid-send: sync covers it
            log.debug("publishing %s: %s", obj.hex[:12], e)

    async def _announce_loop(self) -> None:
        assert self._gossip is not None
        last: dict[bytes, tuple[bytes, int]] = {}
        while True:
            version = self.store.data_version()
            for arena in self.store.arenas():
                cached = self._heads.get(arena.id)
                if cached is None or cached[0] != version:
                    head = state_for(self.store, arena.id).head
                    size = len(self.store.inventory(arena.id))
                    self._heads[arena.id] = (version, head, size)
                _, head, size = self._heads[arena.id]
                if last.get(arena.id) != (head, size) and self.connected():
                    try:
                        await self._gossip.publish_head(arena.id, head, size)
                        last[arena.id] = (head, size)
                    except Exception as e:  # nobody subscribed yet: next round
                        log.debug("announcing head: %s", e)
            await trio.sleep(self.config.announce_interval_s)

    async def _status_loop(self) -> None:
        while True:
            write_status(self.home, self.snapshot())
            await trio.sleep(STATUS_INTERVAL_S)

