"""What travels between nodes: length-prefixed frames on streams and the small msgpack messages in them.

Every message from a peer is untrusted: sizes are checked before anything is
read into memory, structures are checked field by field, and each failure is a
named `WireError` the caller turns into a peer penalty (never an assertion, never
a crash of the node).

Frame: 4-byte big-endian length, then that many bytes. Messages are msgpack
arrays of bin/str/int only, like chain objects.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgpack

from chain.encoding import MAX_OBJECT_BYTES
from chain.objects import ID_SIZE

FRAME_HEADER = 4
MAX_FRAME = MAX_OBJECT_BYTES + 1024  # one encoded object (a blob up to 512 KiB) plus slack
MAX_IDS_PER_FRAME = 8192  # 8192 x 34 bytes: ~280 KB, well under MAX_FRAME
MAX_FETCH_IDS = 512
PACK_BYTES = 256 * 1024  # objects of a "get" answer are packed into frames up to about this size
MAX_GOSSIP_BYTES = 64 * 1024  # gossip carries ids and small signed objects, never scripts


class WireError(Exception):
    """Base of every error about bytes received from a peer."""


class FrameTooLargeError(WireError):
    def __init__(self, limit: int, found: int) -> None:
        super().__init__(f"frame of {found} bytes exceeds the limit of {limit}")
        self.limit, self.found = limit, found


class PeerGoneError(WireError):
    """The peer went away mid-exchange (died, restarted, reset the stream): not misbehaviour."""


class TruncatedError(PeerGoneError):
    def __init__(self, expected: int, found: int) -> None:
        super().__init__(f"stream ended after {found} of {expected} bytes")
        self.expected, self.found = expected, found


class CutError(PeerGoneError):
    """Writing to, or opening, a stream the peer reset or closed."""

    def __init__(self, what: str) -> None:
        super().__init__(f"stream cut: {what}")
        self.what = what


class BadMessageError(WireError):
    def __init__(self, problem: str) -> None:
        super().__init__(f"bad message: {problem}")
        self.problem = problem


class ByteStream(Protocol):
    async def read(self, n: int | None = None) -> bytes: ...
    async def write(self, data: bytes) -> None: ...


async def read_exact(stream: ByteStream, n: int) -> bytes:
    """Exactly `n` bytes from `stream` (TruncatedError if it ends first)."""
    from libp2p.network.stream.exceptions import StreamEOF, StreamReset

    parts: list[bytes] = []
    got = 0
    while got < n:
        try:
            chunk = await stream.read(min(n - got, 1 << 16))
        except (StreamEOF, StreamReset):  # ended or reset by the other side: cut short
            chunk = b""
        if not chunk:
            raise TruncatedError(n, got)
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


async def read_frame(stream: ByteStream, max_bytes: int = MAX_FRAME) -> bytes:
    size = int.from_bytes(await read_exact(stream, FRAME_HEADER), "big")
    if size > max_bytes:
        raise FrameTooLargeError(max_bytes, size)
    return await read_exact(stream, size) if size else b""


async def write_frame(stream: ByteStream, data: bytes) -> None:
    if len(data) > MAX_FRAME:
        raise FrameTooLargeError(MAX_FRAME, len(data))
    from libp2p.network.stream.exceptions import StreamClosed, StreamReset

    try:
        await stream.write(len(data).to_bytes(FRAME_HEADER, "big") + data)
    except (StreamReset, StreamClosed) as e:  # the peer reset or closed it first
        raise CutError(type(e).__name__) from e


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def unpack(data: bytes, max_items: int = MAX_IDS_PER_FRAME + 4) -> list[Any]:
    """A msgpack array of plain values; anything else (maps, floats, ext, junk) is refused."""
    try:
        value = msgpack.unpackb(
            data, raw=False, use_list=True, max_map_len=0, max_ext_len=0,
            max_array_len=max_items, max_bin_len=MAX_FRAME, max_str_len=4096,
        )
    except (ValueError, TypeError, UnicodeDecodeError, msgpack.UnpackException) as e:
        raise BadMessageError(f"not msgpack: {e}") from e
    except RecursionError as e:
        raise BadMessageError("nesting too deep") from e
    if not isinstance(value, list):
        raise BadMessageError(f"expected an array, found {type(value).__name__}")
    return value


def check_id(value: Any, what: str = "id") -> bytes:
    if type(value) is not bytes or len(value) != ID_SIZE:
        raise BadMessageError(f"{what} is not a {ID_SIZE}-byte id")
    return value


def check_ids(value: Any, limit: int, what: str = "ids") -> list[bytes]:
    if type(value) is not list or len(value) > limit:
        raise BadMessageError(f"{what}: expected a list of at most {limit} ids")
    return [check_id(v, what) for v in value]


# -- request/response messages ------------------------------------------------------
# Request: [kind, arg]. Kinds: "get" (arg: list of ids) -> frames of packed encodings
# (b"" for an id not held), one entry per id; "have" (arg: list of ids) -> one frame
# with a list of booleans; "inv" (arg: arena id) -> frames of id lists, ending with
# an empty list; "sum" (arg: arena id) -> one frame [count, sha256 of the sorted ids];
# "arenas" (arg: b"") -> one frame with the list of arena ids held; "peers" (arg: b"")
# -> one frame with the multiaddrs (text) of the peers it is connected to; "pinv" and
# "psum" (arg: b"") -> as "inv" and "sum", over the current profile of every key.
REQUEST_KINDS = ("get", "have", "inv", "sum", "arenas", "peers", "pinv", "psum")
MAX_PEER_ADDRS = 64


def encode_request(kind: str, arg: Any) -> bytes:
    return pack([kind, arg])


def decode_request(data: bytes) -> tuple[str, Any]:
    msg = unpack(data, MAX_FETCH_IDS + 4)
    if len(msg) != 2 or msg[0] not in REQUEST_KINDS:
        raise BadMessageError("request must be [kind, arg] with a known kind")
    kind, arg = msg
    if kind in ("get", "have"):
        return kind, check_ids(arg, MAX_FETCH_IDS)
    if kind in ("inv", "sum"):
        return kind, check_id(arg, "arena")
    if arg != b"":
        raise BadMessageError(f"{kind} takes no argument")
    return kind, arg


def decode_summary(data: bytes) -> tuple[int, bytes]:
    msg = unpack(data, 4)
    if len(msg) != 2 or type(msg[0]) is not int or not 0 <= msg[0] < 2**40:
        raise BadMessageError("summary must be [count, digest]")
    return msg[0], check_id(msg[1], "digest")


def decode_peer_addrs(data: bytes) -> list[str]:
    msg = unpack(data, MAX_PEER_ADDRS + 1)
    if len(msg) > MAX_PEER_ADDRS or any(type(a) is not str or len(a) > 300 for a in msg):
        raise BadMessageError(f"peers must be at most {MAX_PEER_ADDRS} short strings")
    return msg


# -- gossip messages ----------------------------------------------------------------
# [kind, payload]: "object" carries one encoded proposal, attestation or profile; "head" carries
# [arena id, head id, inventory size] so peers that differ can sync; "claim" carries one
# encoded claim (node/p2p/claims.py, which checks its size and signature).
GOSSIP_KINDS = ("object", "head", "claim")


def encode_gossip_object(encoding: bytes) -> bytes:
    return pack(["object", encoding])


def encode_gossip_claim(encoding: bytes) -> bytes:
    return pack(["claim", encoding])


def encode_gossip_head(arena_id: bytes, head_id: bytes, inventory_size: int) -> bytes:
    return pack(["head", [arena_id, head_id, inventory_size]])


def decode_gossip(data: bytes) -> tuple[str, Any]:
    if len(data) > MAX_GOSSIP_BYTES:
        raise FrameTooLargeError(MAX_GOSSIP_BYTES, len(data))
    msg = unpack(data, 8)
    if len(msg) != 2 or msg[0] not in GOSSIP_KINDS:
        raise BadMessageError("gossip must be [kind, payload] with a known kind")
    kind, payload = msg
    if kind in ("object", "claim"):
        if type(payload) is not bytes:
            raise BadMessageError(f"{kind} payload must be bytes")
        return kind, payload
    if type(payload) is not list or len(payload) != 3:
        raise BadMessageError("head payload must be [arena, head, size]")
    arena_id, head_id = check_id(payload[0], "arena"), check_id(payload[1], "head")
    size = payload[2]
    if type(size) is not int or not 0 <= size < 2**40:
        raise BadMessageError("head inventory size out of range")
    return kind, (arena_id, head_id, size)
