"""Topic claims (TopicClaim): short signed "trying X on head H" messages that expire.

Before an experiment the loop may sign a claim naming the head and a topic
(e.g. `LR:+`, the knob and direction it is about to try) so other contributors
can skip duplicate work. A claim is not a chain object (chain/objects.py is
consensus-critical and claims are advisory): it has its own small canonical
msgpack encoding, its own signature domain (`ratchet/v1/claim`) and a lifetime
capped at MAX_TTL_S. The loop signs claims into the journal's claims table;
the `ratchet node` on the same home publishes them on the arena's `claims`
gossip topic, and a node that receives a valid one writes it into its home's
journal if a contributor keeps one there (claimgossip.py). A claim is
only a hint from an unauthenticated key: receivers cap live claims per author
and parent, and the search tries claimed topics last rather than never.
Claims live here, with the other messages peers exchange, so that the p2p
layer needs nothing from the research package that signs them.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass

import msgpack

from chain import keys
from chain.encoding import pack

TYPE = "claim"
VERSION = 1
MAX_TTL_S = 6 * 3600
MAX_ENCODED = 512
TOPIC_RE = re.compile(r"[A-Za-z0-9_.:+\-\[\]~=;]{1,200}")


class ClaimError(Exception):
    """A claim message that does not decode or whose signature does not verify."""


@dataclass(frozen=True)
class TopicClaim:
    """A signed "trying `topic` on `parent`" hint, live until `expires_at`."""

    arena: bytes
    parent: bytes
    topic: str
    created_at: int  # unix ms
    expires_at: int  # unix ms
    author: bytes
    signature: bytes

    def payload(self) -> bytes:
        return pack([TYPE, VERSION, self.arena, self.parent, self.topic, self.created_at,
                     self.expires_at, self.author])

    def encode(self) -> bytes:
        return pack([TYPE, VERSION, self.arena, self.parent, self.topic, self.created_at,
                     self.expires_at, self.author, self.signature])

    @property
    def id(self) -> bytes:
        return hashlib.sha256(b"ratchet/v1/id/claim\x00" + self.encode()).digest()

    def live(self, now_ms: int | None = None) -> bool:
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        return self.created_at <= now + 60_000 and now < self.expires_at

    @classmethod
    def create(cls, key: keys.SigningKey, arena: bytes, parent: bytes, topic: str, ttl_s: int,
               now_ms: int | None = None) -> TopicClaim:
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        ttl_s = max(1, min(ttl_s, MAX_TTL_S))
        unsigned = cls(arena, parent, _topic(topic), now, now + ttl_s * 1000, key.public, b"")
        return cls(arena, parent, unsigned.topic, now, unsigned.expires_at, key.public,
                   key.sign(TYPE, unsigned.payload()))

    @classmethod
    def decode(cls, data: bytes) -> TopicClaim:
        """Parse and verify a claim from an untrusted peer; ClaimError on anything wrong."""
        if len(data) > MAX_ENCODED:
            raise ClaimError(f"claim of {len(data)} bytes exceeds {MAX_ENCODED}")
        try:
            items = msgpack.unpackb(data, raw=False, max_map_len=0, max_ext_len=0)
        except (ValueError, msgpack.UnpackException) as e:
            raise ClaimError(f"claim is not msgpack: {e}") from e
        if not isinstance(items, list) or len(items) != 9 or items[:2] != [TYPE, VERSION]:
            raise ClaimError("not a version-1 claim")
        arena, parent, topic, created, expires, author, sig = items[2:]
        for name, v, n in (("arena", arena, 32), ("parent", parent, 32), ("author", author, 32),
                           ("signature", sig, keys.SIGNATURE_SIZE)):
            if not isinstance(v, bytes) or len(v) != n:
                raise ClaimError(f"claim.{name} must be {n} bytes")
        if not isinstance(topic, str) or not TOPIC_RE.fullmatch(topic):
            raise ClaimError("claim.topic is not a valid topic")
        if type(created) is not int or type(expires) is not int or not 0 <= created < expires:
            raise ClaimError("claim times are not increasing integers")
        if expires - created > MAX_TTL_S * 1000:
            raise ClaimError(f"claim lives longer than {MAX_TTL_S}s")
        claim = cls(arena, parent, topic, created, expires, author, sig)
        if claim.encode() != data:
            raise ClaimError("claim encoding is not canonical")
        if not keys.verify(author, sig, TYPE, claim.payload()):
            raise ClaimError("claim signature does not verify")
        return claim


def _topic(topic: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.:+\-\[\]~=;]", "_", topic)[:200]
    return cleaned or "_"
