"""Peer scores, rate limits and bans.

A peer starts at 0. Sending something invalid (a malformed or oversized
message, an object whose signature or rules fail, an answer that does not hash
to the id asked for) costs `INVALID` points at once, which is below the ban
threshold: an honest node validates before it forwards, so one invalid object
is proof enough. Exceeding a rate limit costs a little each time, so a flood
ends in a ban too. A banned peer is disconnected (the `on_ban` callback) and
refused for `ban_s` seconds.

Two kinds of rate limit: per peer (messages and requests it sends us) and per
signing key (new proposals/attestations of one author or verifier that gossip
will store and forward): one key cannot flood the network through many peers.
Profiles have a key limit of their own, far lower (a person renames rarely).
Objects over a key's limit are not forwarded; anti-entropy sync still brings
them later, at the pace of sync (and for profiles only each key's newest).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

INVALID = -100.0
RATE_EXCEEDED = -5.0
BAN_THRESHOLD = -100.0
GOOD_MESSAGE = 0.1
MAX_SCORE = 50.0


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, burst, now

    def take(self, now: float, cost: float = 1.0) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < cost:
            return False
        self.tokens -= cost
        return True


@dataclass
class PeerRecord:
    score: float = 0.0
    banned_until: float = 0.0
    penalties: int = 0
    reasons: deque[str] = field(default_factory=lambda: deque(maxlen=8))


@dataclass(frozen=True)
class Limits:
    peer_rate: float = 200.0  # messages/requests per second from one peer
    peer_burst: float = 2000.0
    key_rate: float = 2.0  # new objects per second from one signing key, via gossip
    key_burst: float = 60.0
    profile_rate: float = 1 / 60  # new profiles per second from one key, via gossip
    profile_burst: float = 5.0
    ban_s: float = 600.0


class PeerBook:
    """Scores and limits of the peers this node talks to (keys: libp2p peer ids)."""

    def __init__(self, limits: Limits | None = None, on_ban: Callable[[Hashable, str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or Limits()
        self.on_ban = on_ban
        self.clock = clock
        self.records: dict[Hashable, PeerRecord] = {}
        self._peer_buckets: dict[Hashable, TokenBucket] = {}
        self._key_buckets: dict[bytes, TokenBucket] = {}
        self._profile_buckets: dict[bytes, TokenBucket] = {}

    def record(self, peer: Hashable) -> PeerRecord:
        rec = self.records.get(peer)
        if rec is None:
            rec = self.records[peer] = PeerRecord()
        return rec

    def is_banned(self, peer: Hashable) -> bool:
        rec = self.records.get(peer)
        return rec is not None and rec.banned_until > self.clock()

    def penalize(self, peer: Hashable, points: float, reason: str) -> bool:
        """Lower a peer's score; ban it (and call on_ban) when it falls to the threshold. True if banned."""
        rec = self.record(peer)
        rec.score += points
        rec.penalties += 1
        rec.reasons.append(reason)
        if rec.score <= BAN_THRESHOLD and rec.banned_until <= self.clock():
            rec.banned_until = self.clock() + self.limits.ban_s
            if self.on_ban is not None:
                self.on_ban(peer, reason)
            return True
        return False

    def invalid(self, peer: Hashable, reason: str) -> bool:
        return self.penalize(peer, INVALID, reason)

    def reward(self, peer: Hashable, points: float = GOOD_MESSAGE) -> None:
        rec = self.record(peer)
        rec.score = min(MAX_SCORE, rec.score + points)

    def allow_peer(self, peer: Hashable, cost: float = 1.0) -> bool:
        """Take from the peer's bucket; over the limit costs it RATE_EXCEEDED points."""
        now = self.clock()
        bucket = self._peer_buckets.get(peer)
        if bucket is None:
            bucket = self._peer_buckets[peer] = TokenBucket(self.limits.peer_rate, self.limits.peer_burst, now)
        if bucket.take(now, cost):
            return True
        self.penalize(peer, RATE_EXCEEDED, "rate limit exceeded")
        return False

    def allow_key(self, key: bytes) -> bool:
        """Whether one more new object signed by `key` may be stored and forwarded from gossip now."""
        return self._take(self._key_buckets, key, self.limits.key_rate, self.limits.key_burst)

    def allow_profile(self, key: bytes) -> bool:
        """Whether one more new profile of `key` may be stored and forwarded from gossip now."""
        return self._take(self._profile_buckets, key, self.limits.profile_rate, self.limits.profile_burst)

    def _take(self, buckets: dict[bytes, TokenBucket], key: bytes, rate: float, burst: float) -> bool:
        now = self.clock()
        bucket = buckets.get(key)
        if bucket is None:
            if len(buckets) > 100_000:
                buckets.clear()  # bounded memory under a flood of fresh keys
            bucket = buckets[key] = TokenBucket(rate, burst, now)
        return bucket.take(now)

    def summary(self) -> dict[str, dict[str, object]]:
        now = self.clock()
        return {
            str(peer): {"score": round(rec.score, 1), "banned": rec.banned_until > now,
                        "penalties": rec.penalties, "last_reason": rec.reasons[-1] if rec.reasons else ""}
            for peer, rec in self.records.items()
        }
