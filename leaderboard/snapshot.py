"""An immutable, indexed picture of every arena in a store at one data version.

The leaderboard never computes consensus per request: a Snapshot is built once
per store version (in a worker thread) and every page and API answer is a cheap
read of it. Building one is the only place the leaderboard reads chain objects
in bulk; it holds no transaction open between queries.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from chain.consensus import (
    ACCEPTED,
    IMPROVES,
    ORPHANED,
    PENDING,
    REJECTED,
    ChainState,
    CommitInfo,
    compute_state,
)
from chain.credit import ContributorCredit, Credit, VerifierCredit, compute_credit
from chain.objects import Arena, Attestation
from chain.store import Store

RECENT_EVENTS = 16


@dataclass(frozen=True)
class Check:
    """One verifier's verdict on one commit, and whether it agreed with the decided outcome."""

    verifier: bytes
    proposal: bytes
    verdict: str  # the verdict, or "conflicting" for a key that signed several
    agreed: bool | None  # None while the commit is pending
    attestations: tuple[Attestation, ...]


@dataclass(frozen=True)
class Event:
    """A line of recent activity: a proposal made or a verdict signed."""

    kind: str  # "proposal" | "attestation"
    timestamp: int
    commit: bytes
    key: bytes
    verdict: str = ""


@dataclass
class ArenaView:
    """One arena's chain state, credit and the indexes the pages need."""

    arena: Arena
    state: ChainState
    credit: Credit
    attestations: dict[bytes, list[Attestation]]  # proposal id -> its attestations (timestamp order)
    checks: dict[bytes, list[Check]]  # proposal id -> one check per verifier key
    mainline: list[bytes]  # the head's lineage, head first
    newest: list[bytes]  # every commit id, newest proposal first
    by_author: dict[bytes, list[bytes]]  # author key -> commit ids, newest first
    by_verifier: dict[bytes, list[Check]]  # verifier key -> its checks, newest commit first
    contributor: dict[bytes, ContributorCredit]
    verifier: dict[bytes, VerifierCredit]
    recent: list[Event]
    floor_ubpb: int | None  # the exact loss floor the head's checks measured, if the arena has one
    reference_ubpb: int | None  # the reference script's metric, as the first commits' checks measured it
    status_counts: dict[str, int] = field(default_factory=dict)

    @property
    def id(self) -> bytes:
        return self.arena.id

    def commit(self, cid: bytes) -> CommitInfo:
        return self.state.commits[cid]

    def metric(self, cid: bytes) -> int | None:
        """A commit's measured val_bpb: the quorum's when decided, else the median of what was measured."""
        info = self.state.commits[cid]
        if info.metric_ubpb is not None:
            return info.metric_ubpb
        return low_median([mean(a.candidate_ubpb) for a in self.attestations.get(cid, []) if a.candidate_ubpb])


@dataclass(frozen=True)
class Snapshot:
    version: int
    arenas: list[ArenaView]  # sorted by name, then id (the store's order)
    build_ms: float

    def find(self, name_or_prefix: str) -> ArenaView | None:
        """An arena by exact name or by an unambiguous hex id prefix (4+ characters)."""
        named = [a for a in self.arenas if a.arena.name == name_or_prefix]
        text = name_or_prefix.lower()
        prefixed = []
        if 4 <= len(text) <= 64 and all(c in "0123456789abcdef" for c in text):
            prefixed = [a for a in self.arenas if a.arena.hex.startswith(text)]
        found = {a.id: a for a in named + prefixed}
        return next(iter(found.values())) if len(found) == 1 else None


def mean(values: Iterable[int]) -> int:
    values = list(values)
    return sum(values) // len(values)


def low_median(values: list[int]) -> int | None:
    if not values:
        return None
    values = sorted(values)
    return values[(len(values) - 1) // 2]


def build_snapshot(store: Store) -> Snapshot:
    """Read everything once (version first, so a concurrent write only makes it conservative)."""
    started = time.perf_counter()
    version = store.data_version()
    views = []
    for arena in store.arenas():
        proposals = store.proposals(arena.id)
        atts = store.attestations(arena.id)
        state = compute_state(arena, proposals, atts)
        views.append(build_view(state, atts))
    return Snapshot(version, views, (time.perf_counter() - started) * 1000)


def build_view(state: ChainState, atts: list[Attestation]) -> ArenaView:
    """Index one arena's state (pure: tests can build views without a store)."""
    arena = state.arena
    credit = compute_credit(state, atts)
    by_proposal: dict[bytes, list[Attestation]] = {}
    for a in atts:
        if a.proposal in state.commits:
            by_proposal.setdefault(a.proposal, []).append(a)
    newest = sorted(state.commits, key=lambda c: (-state.commits[c].proposal.timestamp, c))
    rank = {cid: i for i, cid in enumerate(newest)}

    verifiers = frozenset(arena.verifiers)
    checks: dict[bytes, list[Check]] = {}
    by_verifier: dict[bytes, list[Check]] = {}
    for pid, plist in by_proposal.items():
        status = state.commits[pid].status
        per_key: dict[bytes, dict[bytes, Attestation]] = {}
        for a in plist:
            if a.verifier in verifiers:
                per_key.setdefault(a.verifier, {})[a.id] = a
        for vkey in sorted(per_key):
            group = tuple(per_key[vkey].values())
            check = _check(vkey, pid, status, group)
            checks.setdefault(pid, []).append(check)
            by_verifier.setdefault(vkey, []).append(check)
    for lst in by_verifier.values():
        lst.sort(key=lambda c: rank[c.proposal])

    by_author: dict[bytes, list[bytes]] = {}
    counts = {ACCEPTED: 0, PENDING: 0, REJECTED: 0, ORPHANED: 0}
    for cid in newest:
        info = state.commits[cid]
        by_author.setdefault(info.proposal.author, []).append(cid)
        counts[info.status] = counts.get(info.status, 0) + 1

    mainline = state.lineage(state.head) if state.head != arena.id else []
    return ArenaView(
        arena=arena, state=state, credit=credit, attestations=by_proposal, checks=checks,
        mainline=mainline, newest=newest, by_author=by_author, by_verifier=by_verifier,
        contributor={c.key: c for c in credit.contributors},
        verifier={v.key: v for v in credit.verifiers},
        recent=_recent(state, atts, newest),
        floor_ubpb=_floor(state, by_proposal, mainline),
        reference_ubpb=_reference(state, by_proposal, mainline),
        status_counts=counts,
    )


def _check(vkey: bytes, pid: bytes, status: str, group: tuple[Attestation, ...]) -> Check:
    """The same agreement rule as chain.credit: conflicting verdicts always disagree."""
    verdicts = {a.verdict for a in group}
    if len(verdicts) > 1:
        return Check(vkey, pid, "conflicting", False, group)
    verdict = verdicts.pop()
    if status == PENDING:
        agreed = None
    else:
        agreed = (status in (ACCEPTED, ORPHANED)) == (verdict == IMPROVES)
    return Check(vkey, pid, verdict, agreed, group)


def _recent(state: ChainState, atts: list[Attestation], newest: list[bytes]) -> list[Event]:
    events = [Event("proposal", state.commits[c].proposal.timestamp, c, state.commits[c].proposal.author)
              for c in newest[:RECENT_EVENTS]]
    events += [Event("attestation", a.timestamp, a.proposal, a.verifier, a.verdict)
               for a in atts[-RECENT_EVENTS:] if a.proposal in state.commits]
    events.sort(key=lambda e: (-e.timestamp, e.kind, e.commit, e.key))
    return events[:RECENT_EVENTS]


def _floor(state: ChainState, by_proposal: dict[bytes, list[Attestation]], mainline: list[bytes]) -> int | None:
    """The median floor the head's checks measured (arenas with an exact floor record one per seed)."""
    for cid in mainline or list(state.commits):
        floors = [mean(a.floor_ubpb) for a in by_proposal.get(cid, []) if a.floor_ubpb]
        if floors:
            return low_median(floors)
    return None


def _reference(state: ChainState, by_proposal: dict[bytes, list[Attestation]], mainline: list[bytes]) -> int | None:
    """The reference script's metric: what checks of a first commit measured for its parent."""
    firsts = [mainline[-1]] if mainline else []
    firsts += [c for c, info in state.commits.items() if info.height == 1]
    for cid in firsts:
        parents = [mean(a.parent_ubpb) for a in by_proposal.get(cid, []) if a.parent_ubpb]
        if parents:
            return low_median(parents)
    return None
