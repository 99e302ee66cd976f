"""Anti-entropy: compare what two nodes hold per arena and pull what is missing.

Gossip can drop a message, a node can be offline for a day, a new node starts
empty; sync repairs all three. One round with a peer:

1. ask for its arena list; fetch arenas this node lacks (and their reference scripts);
2. per shared arena, compare (count, digest of the sorted ids); equal -> done;
3. otherwise fetch its inventory (in its dependency order: arena, blobs,
   proposals parent first, attestations) and pull the missing ids in batches,
   each object checked against its id and then validated by the store;
4. the same for profiles, which belong to no arena: compare the summaries of
   the current profile of every key, and pull the ones this node lacks (a peer
   whose ratchet predates profiles is skipped, not blamed).

An object whose dependency is not there yet (a peer that lists out of order)
is retried after the rest; an object that fails validation, or an answer that
does not match what was asked, is the peer's fault: the round stops and the
peer is penalised.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chain.errors import (
    ChainError,
    StoreError,
    UnknownArenaError,
    UnknownParentError,
    UnknownProposalError,
)
from chain.objects import Arena, ChainObject, Profile
from node.p2p import reqresp, wire

if TYPE_CHECKING:
    from libp2p.abc import IHost
    from libp2p.peer.id import ID

    from chain.store import Store

log = logging.getLogger(__name__)

PULL_BATCH = 256
MAX_NEW_ARENAS_PER_ROUND = 16
MAX_RETRY_PASSES = 4
_DEPENDENCY_ERRORS = (UnknownParentError, UnknownProposalError, UnknownArenaError)


class SyncError(Exception):
    """A sync round that stopped because of the peer (its `peer_fault`) or of this node."""

    def __init__(self, problem: str, peer_fault: bool) -> None:
        super().__init__(problem)
        self.problem, self.peer_fault = problem, peer_fault


@dataclass
class SyncResult:
    arenas_new: list[bytes] = field(default_factory=list)
    pulled: int = 0
    unresolved: int = 0  # listed by the peer but not stored (missing there, or dependencies)
    compared: int = 0
    seconds: float = 0.0
    on_stored: Callable[[ChainObject], None] | None = field(default=None, repr=False)


async def sync_with(host: IHost, store: Store, peer: ID, result: SyncResult | None = None,
                    arenas: list[bytes] | None = None,
                    on_stored: Callable[[ChainObject], None] | None = None,
                    summaries: reqresp.Summaries | None = None) -> SyncResult:
    """One anti-entropy round with `peer` (all shared arenas, or just `arenas`).

    `on_stored(obj)` hears about each object this round stored; `summaries` is this node's
    cache of its own inventory digests (shared across rounds, recomputed when the store changes).
    """
    summaries = summaries or reqresp.Summaries(store)
    result = result or SyncResult()
    result.on_stored = on_stored
    started = time.monotonic()
    try:
        their_arenas = await reqresp.get_arenas(host, peer)
        ours = {a.id for a in store.arenas()}
        new = [a for a in their_arenas if a not in ours][:MAX_NEW_ARENAS_PER_ROUND]
        if new:
            await _pull_arenas(host, store, peer, new, result)
        wanted = set(their_arenas) if arenas is None else set(arenas) & set(their_arenas)
        for arena_id in sorted(wanted):
            if store.has(arena_id):
                await _sync_arena(host, store, peer, arena_id, result, summaries)
        await _sync_profiles(host, store, peer, result, summaries)
    except wire.PeerGoneError as e:  # the peer died or restarted mid-exchange
        raise SyncError(f"exchange cut short: {e}", peer_fault=False) from e
    except wire.WireError as e:
        raise SyncError(f"bad answer: {e}", peer_fault=True) from e
    finally:
        result.seconds += time.monotonic() - started
    return result


async def _pull_arenas(host: IHost, store: Store, peer: ID, ids: list[bytes], result: SyncResult) -> None:
    objs = await reqresp.get_objects(host, peer, ids)
    for oid, obj in zip(ids, objs, strict=True):
        if obj is None:
            continue
        if not isinstance(obj, Arena):
            raise SyncError(f"{oid.hex()[:12]} listed as an arena is a {obj.TYPE}", peer_fault=True)
        if _store(store, obj):
            result.pulled += 1
            if result.on_stored is not None:
                result.on_stored(obj)
        result.arenas_new.append(oid)


async def _sync_arena(host: IHost, store: Store, peer: ID, arena_id: bytes, result: SyncResult,
                      summaries: reqresp.Summaries) -> None:
    result.compared += 1
    theirs = await reqresp.get_summary(host, peer, arena_id)
    if theirs == summaries.get(arena_id):
        return
    inventory = await reqresp.get_inventory(host, peer, arena_id)
    held = set(store.inventory(arena_id))
    missing = [oid for oid in dict.fromkeys(inventory) if oid not in held and not store.has(oid)]
    if missing:
        await pull(host, store, peer, missing, result)


async def _sync_profiles(host: IHost, store: Store, peer: ID, result: SyncResult,
                         summaries: reqresp.Summaries) -> None:
    try:
        theirs = await reqresp.get_profile_summary(host, peer)
    except reqresp.UnsupportedError:
        log.debug("%s predates profiles: not synced", peer)
        return
    if theirs == summaries.profiles():
        return
    inventory = await reqresp.get_profile_inventory(host, peer)
    missing = [oid for oid in dict.fromkeys(inventory) if not store.has(oid)]
    if missing:
        await pull(host, store, peer, missing, result, only=Profile)


async def pull(host: IHost, store: Store, peer: ID, ids: list[bytes], result: SyncResult,
               only: type[ChainObject] | None = None) -> None:
    """Fetch `ids` from `peer` in batches and store them, dependencies first (`only`: the one type
    the peer listed them as)."""
    deferred: list[ChainObject] = []
    for i in range(0, len(ids), PULL_BATCH):
        batch = ids[i : i + PULL_BATCH]
        objs = await reqresp.get_objects(host, peer, batch)
        for obj in objs:
            if obj is not None and only is not None and not isinstance(obj, only):
                raise SyncError(f"{obj.hex[:12]} listed as a {only.TYPE} is a {obj.TYPE}", peer_fault=True)
            if obj is None:
                result.unresolved += 1
            elif not _try_store(store, obj, result):
                deferred.append(obj)
    for _ in range(MAX_RETRY_PASSES):
        if not deferred:
            break
        before = len(deferred)
        deferred = [obj for obj in deferred if not _try_store(store, obj, result)]
        if len(deferred) == before:
            break
    result.unresolved += len(deferred)


def _try_store(store: Store, obj: ChainObject, result: SyncResult) -> bool:
    """Store one pulled object: True when done (stored or held), False when a dependency is missing."""
    try:
        if _store(store, obj):
            result.pulled += 1
            if result.on_stored is not None:
                result.on_stored(obj)
    except _DEPENDENCY_ERRORS:
        return False
    return True


def _store(store: Store, obj: ChainObject) -> bool:
    try:
        return store.add(obj)
    except _DEPENDENCY_ERRORS:
        raise
    except StoreError as e:
        raise SyncError(f"cannot store {obj.TYPE} {obj.hex[:12]}: {e}", peer_fault=False) from e
    except ChainError as e:
        raise SyncError(f"invalid {obj.TYPE} {obj.hex[:12]}: {e}", peer_fault=True) from e
