"""Claims on the network: what the node publishes from its home's journal and what it accepts.

A claim ("trying topic X on head H", claims.py) is advisory: it
only reorders other contributors' searches (claimed topics are tried last), so
it is never stored in the chain store. The contributor signs claims into
`<home>/research/journal.sqlite3`; the node on the same home reads that file and
publishes what it has not published or received yet (after a restart: every
live claim there, once; receivers dedupe by claim id). It reads the journal's
`claims` table by rowid (journalfile.claims_after), so each tick reads only new
rows. Claims received from peers are written into that journal only if it
exists: a relay with no contributor gets no journal file, it just validates and forwards.

Receipt rules, in order (see `ClaimBook.receive`):
- undecodable, oversized, non-canonical, badly signed, wrong arena, created
  far in the future, or expired well before it arrived: the forwarder is at
  fault (an honest node validates before it forwards) and is scored down;
- expired within the clock slack: dropped quietly (it may have expired in transit);
- already known: accepted (pubsub forwards it like any duplicate);
- an author with `max_per_author` live claims on the same parent already, or a
  key over its gossip rate limit, or a full tracker: dropped, not forwarded,
  no penalty (the relaying peer may be honest).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import journalfile
from node.p2p.claims import ClaimError, TopicClaim

log = logging.getLogger(__name__)

MAX_PER_AUTHOR = 3  # live claims one key may have on one parent, as seen by this node
CLOCK_SLACK_MS = 60_000  # clocks of honest nodes may differ by this much
MAX_TRACKED = 100_000  # live claims remembered at once (bounded memory under a flood)
SCAN_BATCH = 500  # journal rows read per watch tick


@dataclass(frozen=True)
class Verdict:
    """What the gossip validator does with a claim: forward it or not, and whose fault."""

    accept: bool
    invalid: str = ""  # set when the forwarding peer is at fault
    claim: TopicClaim | None = None


class ClaimBook:
    """The node's view of live claims: dedup, per-author caps, and the link to its home's journal."""

    def __init__(self, home: Path, max_per_author: int = MAX_PER_AUTHOR,
                 clock_ms: Callable[[], int] | None = None) -> None:
        self.home = Path(home)
        self.max_per_author = max_per_author
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self.stored = 0
        self._expires: dict[bytes, int] = {}  # claim id -> expires_at, every live claim seen
        self._by_author: dict[tuple[bytes, bytes, bytes], set[bytes]] = {}  # (arena, parent, author)
        self._authors: dict[bytes, tuple[bytes, bytes, bytes]] = {}  # claim id -> its author key
        self._writer: sqlite3.Connection | None = None
        self._scan: sqlite3.Connection | None = None
        self._last_row = 0
        self._next_prune = 0

    def close(self) -> None:
        for conn in (self._writer, self._scan):
            if conn is not None:
                conn.close()
        self._writer = self._scan = None

    # -- receipt -------------------------------------------------------------------
    def receive(self, arena_id: bytes, encoded: bytes, allow_key: Callable[[bytes], bool]) -> Verdict:
        """Validate a claim that arrived on `arena_id`'s claims topic; remember and store it if good."""
        try:
            claim = TopicClaim.decode(encoded)
        except ClaimError as e:
            return Verdict(False, f"invalid claim: {e}")
        if claim.arena != arena_id:
            return Verdict(False, "claim for another arena")
        now = self.clock_ms()
        if claim.created_at > now + CLOCK_SLACK_MS:
            return Verdict(False, "claim created in the future")
        if claim.expires_at <= now - CLOCK_SLACK_MS:
            return Verdict(False, "claim expired long ago")
        if claim.expires_at <= now:
            return Verdict(False, claim=claim)  # expired in transit: nobody's fault
        if claim.id in self._expires:
            return Verdict(True, claim=claim)
        self._prune(now)
        group = self._by_author.get(_group(claim), set())
        if len(group) >= self.max_per_author or len(self._expires) >= MAX_TRACKED:
            log.debug("claim %s dropped: author %s over its cap", claim.id.hex()[:12], claim.author.hex()[:12])
            return Verdict(False, claim=claim)
        if not allow_key(claim.author):
            log.info("key %s over its rate limit: claim not forwarded", claim.author.hex()[:12])
            return Verdict(False, claim=claim)
        self._remember(claim)
        self._store(claim)
        return Verdict(True, claim=claim)

    # -- publishing ----------------------------------------------------------------
    def outgoing(self) -> list[TopicClaim]:
        """Live claims written into the home's journal that this node has neither published nor
        received yet (each returned once). Nothing, without creating it, if there is no journal."""
        if self._scan is None:  # opened once the contributor has created the journal
            try:
                self._scan = journalfile.open_existing(self.home, writable=True)
            except sqlite3.Error as e:
                log.warning("cannot open %s: %s", journalfile.journal_path(self.home), e)
        conn = self._scan
        if conn is None:
            return []
        try:
            rows = journalfile.claims_after(conn, self._last_row, SCAN_BATCH)
        except sqlite3.Error as e:
            log.warning("cannot read claims from %s: %s", journalfile.journal_path(self.home), e)
            return []
        now = self.clock_ms()
        self._prune(now)
        out = []
        for rowid, encoded in rows:
            self._last_row = max(self._last_row, rowid)
            try:
                claim = TopicClaim.decode(encoded)
            except ClaimError as e:
                log.warning("journal claim at row %d is not valid: %s", rowid, e)
                continue
            if claim.id in self._expires or not claim.live(now):
                continue
            self._remember(claim)
            out.append(claim)
        return out

    # -- internals -----------------------------------------------------------------
    def _remember(self, claim: TopicClaim) -> None:
        group = _group(claim)
        self._expires[claim.id] = claim.expires_at
        self._authors[claim.id] = group
        self._by_author.setdefault(group, set()).add(claim.id)

    def _prune(self, now: int) -> None:
        """Forget expired claims (at most once a second unless the tracker is full: it is O(n))."""
        if now < self._next_prune and len(self._expires) < MAX_TRACKED:
            return
        self._next_prune = now + 1000
        for cid in [c for c, exp in self._expires.items() if exp <= now]:
            del self._expires[cid]
            group = self._authors.pop(cid)
            ids = self._by_author[group]
            ids.discard(cid)
            if not ids:
                del self._by_author[group]

    def _store(self, claim: TopicClaim) -> None:
        if self._writer is None:
            path = journalfile.journal_path(self.home)
            if not path.exists():
                return  # a relay: no contributor here, nothing to tell
            try:
                self._writer = journalfile.create(self.home)
            except (sqlite3.Error, OSError) as e:
                log.warning("claims not stored: cannot open the journal at %s: %s", path, e)
                return
        try:
            journalfile.add_claim(self._writer, claim.id, claim.arena, claim.parent, claim.topic,
                                  claim.author, claim.expires_at, claim.encode())
            self.stored += 1
        except sqlite3.Error as e:
            log.warning("claim %s not stored: journal write failed: %s", claim.id.hex()[:12], e)


def _group(claim: TopicClaim) -> tuple[bytes, bytes, bytes]:
    return (claim.arena, claim.parent, claim.author)
