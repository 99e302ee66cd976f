"""Request/response between two peers: objects and blobs by id, inventories, arena lists, profiles.

Gossip is for small announcements; anything bulky (scripts, a chain being
synced) moves here, one stream per request, frames as in `wire`. Whatever a
peer returns is checked against the id that was asked for (the id is a hash of
the bytes) before anyone looks at it; a peer that sends bytes that do not hash
to the id, malformed frames or an oversized answer raises a `WireError`, which
the caller turns into a penalty for that peer.

The profile inventory and its summary ("pinv", "psum") are asked for under a
protocol id of their own, PROFILES_PROTOCOL: a peer running an older ratchet
does not offer it, so the question fails as UnsupportedError before anything is
sent, and neither side penalises the other.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from chain.errors import CorruptBlobError, DecodeError, NotFoundError
from chain.objects import ChainObject, decode
from node.p2p import wire

if TYPE_CHECKING:
    from libp2p.abc import IHost, INetStream
    from libp2p.peer.id import ID

    from chain.store import Store

log = logging.getLogger(__name__)

PROTOCOL = "/ratchet/req/1.0.0"
PROFILES_PROTOCOL = "/ratchet/req-profiles/1.0.0"
REQUEST_TIMEOUT_S = 30.0


class UnsupportedError(wire.CutError):
    """The peer does not offer the protocol asked for (an older ratchet): not misbehaviour."""


class PeerAnswerError(wire.WireError):
    """A peer's answer that does not match what was asked (wrong hash, too many frames)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def inventory_digest(ids: list[bytes]) -> bytes:
    """What two nodes compare before exchanging inventories: SHA-256 of the sorted ids."""
    h = hashlib.sha256()
    for oid in sorted(ids):
        h.update(oid)
    return h.digest()


class Summaries:
    """(count, digest) of each arena's inventory, recomputed only when the store changed."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[bytes, tuple[int, tuple[int, bytes]]] = {}

    def get(self, arena_id: bytes) -> tuple[int, bytes]:
        return self._cached(arena_id, lambda: self.arena_inventory(arena_id))

    def profiles(self) -> tuple[int, bytes]:
        """(count, digest) of the current profiles (Store.profile_inventory)."""
        return self._cached(b"", self.store.profile_inventory)

    def arena_inventory(self, arena_id: bytes) -> list[bytes]:
        """The arena's inventory (empty for an arena not held)."""
        try:
            return self.store.inventory(arena_id)
        except NotFoundError:
            return []

    def _cached(self, slot: bytes, ids_of: Callable[[], list[bytes]]) -> tuple[int, bytes]:
        version = self.store.data_version()
        hit = self._cache.get(slot)
        if hit is not None and hit[0] == version:
            return hit[1]
        ids = ids_of()
        value = (len(ids), inventory_digest(ids))
        self._cache[slot] = (version, value)
        return value


class Responder:
    """Serves requests from the local store. `on_bad(peer, reason)` hears about bad requests;
    `allow(peer)` may refuse a peer (banned, over its rate limit); `peer_addrs()` lists the
    addresses of connected peers for the "peers" request."""

    def __init__(self, store: Store, on_bad: Callable[[ID, str], None] | None = None,
                 allow: Callable[[ID], bool] | None = None,
                 peer_addrs: Callable[[], list[str]] | None = None) -> None:
        self.store = store
        self.on_bad = on_bad
        self.allow = allow
        self.peer_addrs = peer_addrs
        self.summaries = Summaries(store)
        self.served = 0

    def attach(self, host: IHost) -> None:
        from libp2p.custom_types import TProtocol

        host.set_stream_handler(TProtocol(PROTOCOL), self.handle)
        host.set_stream_handler(TProtocol(PROFILES_PROTOCOL), self.handle)

    async def handle(self, stream: INetStream) -> None:
        peer = stream.muxed_conn.peer_id
        if self.allow is not None and not self.allow(peer):
            await _reset(stream)
            return
        try:
            with trio.fail_after(REQUEST_TIMEOUT_S):
                kind, arg = wire.decode_request(await wire.read_frame(stream, 64 * 1024))
                await self._answer(stream, kind, arg)
            self.served += 1
        except wire.PeerGoneError as e:  # a peer that went away mid-request: not misbehaviour
            log.debug("request from %s cut short: %s", peer, e)
        except wire.WireError as e:
            log.info("bad request from %s: %s", peer, e)
            if self.on_bad is not None:
                self.on_bad(peer, str(e))
        except trio.TooSlowError:
            log.info("request from %s timed out", peer)
        except Exception as e:  # a broken stream is the peer's business, never the node's
            log.debug("request stream from %s failed: %s", peer, e)
        finally:
            await _close(stream)

    async def _answer(self, stream: INetStream, kind: str, arg: Any) -> None:
        if kind == "get":
            # Objects travel packed several to a frame (msgpack list of encodings, b"" for
            # one not held): one frame each costs a yamux frame and a Noise message apiece.
            chunk: list[bytes] = []
            size = 0
            for oid in arg:
                try:
                    data = self.store.get_encoded(oid)
                except NotFoundError:
                    data = b""
                except CorruptBlobError as e:  # our own disk's fault: answer "not held", say so
                    log.warning("not serving %s: %s", oid.hex()[:12], e)
                    data = b""
                if chunk and size + len(data) > wire.PACK_BYTES:
                    await wire.write_frame(stream, wire.pack(chunk))
                    chunk, size = [], 0
                chunk.append(data)
                size += len(data) + 5
            await wire.write_frame(stream, wire.pack(chunk))
        elif kind in ("inv", "pinv"):
            ids = self.summaries.arena_inventory(arg) if kind == "inv" else self.store.profile_inventory()
            step = wire.MAX_IDS_PER_FRAME
            for i in range(0, len(ids), step):
                await wire.write_frame(stream, wire.pack(ids[i : i + step]))
            await wire.write_frame(stream, wire.pack([]))
        elif kind == "have":
            await wire.write_frame(stream, wire.pack([self.store.has(oid) for oid in arg]))
        elif kind in ("sum", "psum"):
            count, digest = self.summaries.get(arg) if kind == "sum" else self.summaries.profiles()
            await wire.write_frame(stream, wire.pack([count, digest]))
        elif kind == "peers":
            addrs = self.peer_addrs() if self.peer_addrs is not None else []
            await wire.write_frame(stream, wire.pack(addrs[: wire.MAX_PEER_ADDRS]))
        else:
            arenas = [a.id for a in self.store.arenas()][: wire.MAX_IDS_PER_FRAME]
            await wire.write_frame(stream, wire.pack(arenas))


async def _close(stream: INetStream) -> None:
    try:
        await stream.close()
    except Exception as e:  # closing a stream the peer already reset
        log.debug("closing stream: %s", e)


async def _reset(stream: INetStream) -> None:
    try:
        await stream.reset()
    except Exception as e:  # already gone
        log.debug("resetting stream: %s", e)


async def _request(host: IHost, peer: ID, kind: str, arg: Any, protocol: str = PROTOCOL) -> INetStream:
    from libp2p.custom_types import TProtocol
    from libp2p.exceptions import BaseLibp2pError

    try:
        stream = await host.new_stream(peer, [TProtocol(protocol)])
    except BaseLibp2pError as e:  # no connection, the peer reset the stream, or lacks the protocol
        if _not_supported(e):
            raise UnsupportedError(f"the peer does not offer {protocol}") from e
        raise wire.CutError(f"opening a stream: {type(e).__name__}: {e}") from e
    await wire.write_frame(stream, wire.encode_request(kind, arg))
    return stream


def _not_supported(error: BaseException | None) -> bool:
    """Whether libp2p's error (or one it was raised from) says the peer lacks the protocol.

    py-libp2p 0.8.1 (pinned) reports it as a MultiselectClientError "protocols not supported",
    which the host wraps in a StreamFailure; the message is all that tells it from a cut stream.
    """
    from libp2p.protocol_muxer.exceptions import MultiselectClientError, ProtocolNotSupportedError

    seen = 0
    while error is not None and seen < 8:
        if isinstance(error, ProtocolNotSupportedError) or (
                isinstance(error, MultiselectClientError) and "not supported" in str(error)):
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


async def get_objects(host: IHost, peer: ID, ids: list[bytes],
                      timeout: float = REQUEST_TIMEOUT_S) -> list[ChainObject | None]:
    """The objects with these ids from `peer` (None where it has none), each checked against its id.

    Signatures are not checked here (the store checks them when it adds), only that
    the bytes are a well-formed object whose hash is the id asked for.
    """
    out: list[ChainObject | None] = []
    for i in range(0, len(ids), wire.MAX_FETCH_IDS):
        out.extend(await _get_batch(host, peer, ids[i : i + wire.MAX_FETCH_IDS], timeout))
    return out


async def _get_batch(host: IHost, peer: ID, ids: list[bytes], timeout: float) -> list[ChainObject | None]:
    out: list[ChainObject | None] = []
    with trio.fail_after(timeout):
        stream = await _request(host, peer, "get", ids)
        try:
            datas: list[bytes] = []
            while len(datas) < len(ids):
                chunk = wire.unpack(await wire.read_frame(stream), wire.MAX_FETCH_IDS)
                if not chunk or any(type(d) is not bytes for d in chunk):
                    raise PeerAnswerError("an answer frame must be a non-empty list of encodings")
                datas.extend(chunk)
            if len(datas) != len(ids):
                raise PeerAnswerError(f"asked for {len(ids)} objects, got {len(datas)}")
            for oid, data in zip(ids, datas, strict=True):
                if not data:
                    out.append(None)
                    continue
                try:
                    out.append(decode(data, expected_id=oid, verify=False))
                except DecodeError as e:
                    raise PeerAnswerError(f"object {oid.hex()[:12]}: {e}") from e
        finally:
            await _close(stream)
    return out


async def get_inventory(host: IHost, peer: ID, arena_id: bytes,
                        timeout: float = REQUEST_TIMEOUT_S, max_ids: int = 2_000_000) -> list[bytes]:
    """The ids `peer` holds for an arena, in its dependency order (arena, blobs, proposals, attestations)."""
    return await _read_ids(host, peer, "inv", arena_id, PROTOCOL, timeout, max_ids)


async def get_profile_inventory(host: IHost, peer: ID, timeout: float = REQUEST_TIMEOUT_S,
                                max_ids: int = 2_000_000) -> list[bytes]:
    """The ids of the current profile of every key `peer` knows (UnsupportedError: an older peer)."""
    return await _read_ids(host, peer, "pinv", b"", PROFILES_PROTOCOL, timeout, max_ids)


async def _read_ids(host: IHost, peer: ID, kind: str, arg: bytes, protocol: str, timeout: float,
                    max_ids: int) -> list[bytes]:
    ids: list[bytes] = []
    with trio.fail_after(timeout):
        stream = await _request(host, peer, kind, arg, protocol)
        try:
            while True:
                chunk = wire.check_ids(wire.unpack(await wire.read_frame(stream)), wire.MAX_IDS_PER_FRAME)
                if not chunk:
                    return ids
                ids.extend(chunk)
                if len(ids) > max_ids:
                    raise PeerAnswerError(f"inventory longer than {max_ids} ids")
        finally:
            await _close(stream)


async def get_summary(host: IHost, peer: ID, arena_id: bytes,
                      timeout: float = REQUEST_TIMEOUT_S) -> tuple[int, bytes]:
    """(count, digest) of `peer`'s inventory of an arena."""
    return await _read_summary(host, peer, "sum", arena_id, PROTOCOL, timeout)


async def get_profile_summary(host: IHost, peer: ID, timeout: float = REQUEST_TIMEOUT_S) -> tuple[int, bytes]:
    """(count, digest) of `peer`'s current profiles (UnsupportedError: an older peer)."""
    return await _read_summary(host, peer, "psum", b"", PROFILES_PROTOCOL, timeout)


async def _read_summary(host: IHost, peer: ID, kind: str, arg: bytes, protocol: str,
                        timeout: float) -> tuple[int, bytes]:
    with trio.fail_after(timeout):
        stream = await _request(host, peer, kind, arg, protocol)
        try:
            return wire.decode_summary(await wire.read_frame(stream))
        finally:
            await _close(stream)


async def have(host: IHost, peer: ID, ids: list[bytes], timeout: float = REQUEST_TIMEOUT_S) -> list[bool]:
    """Which of `ids` (at most wire.MAX_FETCH_IDS) `peer` holds."""
    with trio.fail_after(timeout):
        stream = await _request(host, peer, "have", ids[: wire.MAX_FETCH_IDS])
        try:
            answer = wire.unpack(await wire.read_frame(stream), wire.MAX_FETCH_IDS)
        finally:
            await _close(stream)
    if len(answer) != min(len(ids), wire.MAX_FETCH_IDS) or any(type(b) is not bool for b in answer):
        raise PeerAnswerError("a have answer must be one boolean per id")
    return answer


async def get_peer_addrs(host: IHost, peer: ID, timeout: float = REQUEST_TIMEOUT_S) -> list[str]:
    """Multiaddrs (with /p2p/ ids) of the peers `peer` is connected to."""
    with trio.fail_after(timeout):
        stream = await _request(host, peer, "peers", b"")
        try:
            return wire.decode_peer_addrs(await wire.read_frame(stream))
        finally:
            await _close(stream)


async def get_arenas(host: IHost, peer: ID, timeout: float = REQUEST_TIMEOUT_S) -> list[bytes]:
    """The ids of the arenas `peer` holds."""
    with trio.fail_after(timeout):
        stream = await _request(host, peer, "arenas", b"")
        try:
            return wire.check_ids(wire.unpack(await wire.read_frame(stream)), wire.MAX_IDS_PER_FRAME)
        finally:
            await _close(stream)

