"""Acceptance and fork choice: a pure function of an arena's proposals and attestations.

Every node holding the same objects computes the same state, whatever order
they arrived in: inputs are deduplicated by id and every choice is made on
sorted data. Rules (DESIGN.md):

- A vote counts only from a key in the arena's verifier set. A key that signed
  conflicting verdicts on one proposal counts for nothing there.
- A commit is accepted when its parent is accepted (or is the arena) and at
  least `quorum` counted keys say "improves"; with the quorum but a parent not
  accepted it is "orphaned"; it is rejected once "improves" can no longer reach
  the quorum; otherwise pending.
- Its gain is the low median of the quorum's per-attestation mean paired gain;
  the head is the accepted commit with the greatest cumulative gain, ties to the
  lower height, then the smaller id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chain.errors import NotFoundError
from chain.objects import Arena, Attestation, Proposal

if TYPE_CHECKING:
    from chain.store import Store

ACCEPTED, PENDING, REJECTED, ORPHANED = "accepted", "pending", "rejected", "orphaned"
IMPROVES = "improves"


@dataclass(frozen=True)
class CommitInfo:
    id: bytes
    proposal: Proposal
    height: int  # the first commit on the arena has height 1
    status: str  # accepted | pending | rejected | orphaned
    reason: str  # why rejected / what it waits for
    votes: dict[bytes, str]  # counted verifier key -> verdict
    gain_ubpb: int  # low median of the quorum's mean paired gains; 0 unless accepted
    cumulative_ubpb: int  # sum of gain_ubpb over the accepted ancestry, itself included
    metric_ubpb: int | None = None  # low median of the quorum's mean candidate metric


@dataclass(frozen=True)
class ChainState:
    arena: Arena
    commits: dict[bytes, CommitInfo]
    accepted: frozenset[bytes]
    head: bytes  # the arena id while nothing is accepted

    def lineage(self, commit_id: bytes) -> list[bytes]:
        """The commit, its parent, ... down to the first commit (the arena excluded)."""
        out = []
        cur = self.commits.get(commit_id)
        while cur is not None:
            out.append(cur.id)
            cur = self.commits.get(cur.proposal.parent)
        return out

    def head_metric_ubpb(self) -> int | None:
        """The head's metric as its quorum measured it (None while the head is the arena)."""
        head = self.commits.get(self.head)
        return head.metric_ubpb if head is not None else None


def _low_median(values: list[int]) -> int:
    values = sorted(values)
    return values[(len(values) - 1) // 2]


def compute_state(
    arena: Arena, proposals: Iterable[Proposal], attestations: Iterable[Attestation]
) -> ChainState:
    """The arena's commits, accepted set and head from the objects given (any order)."""
    arena_id = arena.id
    props: dict[bytes, Proposal] = {}
    for p in proposals:
        if p.arena == arena_id:
            props[p.id] = p
    children: dict[bytes, list[bytes]] = {}
    for pid, p in props.items():
        children.setdefault(p.parent, []).append(pid)

    verifiers = frozenset(arena.verifiers)
    tallies: dict[bytes, dict[bytes, dict[bytes, Attestation]]] = {}
    for a in attestations:
        pid, key = a.proposal, a.verifier
        if pid not in props or key not in verifiers or a.arena != arena_id:
            continue
        by_key = tallies.get(pid)
        if by_key is None:
            tallies[pid] = {key: {a.id: a}}
        elif key in by_key:
            by_key[key][a.id] = a
        else:
            by_key[key] = {a.id: a}

    n, quorum = len(verifiers), arena.quorum
    commits: dict[bytes, CommitInfo] = {}
    accepted: set[bytes] = set()
    best: tuple[int, int, bytes] | None = None  # (-cumulative, height, id): min wins
    # Breadth-first from the arena: parents are decided before their children.
    frontier = sorted(children.get(arena_id, []))
    height = 1
    while frontier:
        nxt: list[bytes] = []
        for cid in frontier:
            p = props[cid]
            parent = commits.get(p.parent)
            parent_ok = parent is None or parent.status == ACCEPTED  # None: the arena itself
            votes, quorum_atts = _count(tallies.get(cid, {}))
            improves = len(quorum_atts)
            against = len(votes) - improves
            gain = cumulative = 0
            metric: int | None = None
            if improves >= quorum:
                metric = _metric(quorum_atts)
                if parent_ok:
                    status = ACCEPTED
                    reason = f"{improves} of {n} verifiers confirmed (quorum {quorum})"
                    gain = _low_median([a.mean_gain_ubpb for a in quorum_atts])
                    cumulative = gain + (parent.cumulative_ubpb if parent is not None else 0)
                else:
                    status = ORPHANED
                    reason = f"quorum says improves, but parent is {parent.status}"  # type: ignore[union-attr]
            elif against > n - quorum:
                status = REJECTED
                reason = _rejection_reason(votes, improves, quorum)
            else:
                status = PENDING
                reason = f"{improves} of {quorum} improves votes so far ({len(votes)} of {n} verifiers voted)"
                if not parent_ok:
                    reason += f"; its parent is {parent.status}"  # type: ignore[union-attr]
            info = CommitInfo(cid, p, height, status, reason, votes, gain, cumulative, metric)
            commits[cid] = info
            if status == ACCEPTED:
                accepted.add(cid)
                rank = (-cumulative, height, cid)
                if best is None or rank < best:
                    best = rank
            nxt.extend(children.get(cid, ()))
        frontier = sorted(nxt)
        height += 1
    head = best[2] if best is not None else arena_id
    return ChainState(arena, commits, frozenset(accepted), head)


def _count(by_key: dict[bytes, dict[bytes, Attestation]]) -> tuple[dict[bytes, str], list[Attestation]]:
    """Counted votes (equivocators dropped) and, per improves voter, its representative attestation."""
    votes: dict[bytes, str] = {}
    improving: list[Attestation] = []
    for key in sorted(by_key):
        atts = by_key[key]
        verdicts = {a.verdict for a in atts.values()}
        if len(verdicts) != 1:
            continue  # conflicting verdicts from one key: it counts for nothing here
        verdict = verdicts.pop()
        votes[key] = verdict
        if verdict == IMPROVES:
            improving.append(atts[min(atts)])  # same verdict signed twice: the smaller id speaks
    return votes, improving


def _metric(atts: list[Attestation]) -> int | None:
    means = [sum(c) // len(c) for c in (a.candidate_ubpb for a in atts) if c]
    return _low_median(means) if means else None


def _rejection_reason(votes: dict[bytes, str], improves: int, quorum: int) -> str:
    counts: dict[str, int] = {}
    for v in votes.values():
        if v != IMPROVES:
            counts[v] = counts.get(v, 0) + 1
    detail = ", ".join(f"{c} {v}" for v, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"cannot reach the quorum of {quorum} improves ({improves} improves; {detail})"


def state_for(store: Store, arena_id: bytes) -> ChainState:
    """compute_state over everything `store` holds for the arena."""
    arena = store.get(arena_id)
    if not isinstance(arena, Arena):
        raise NotFoundError(f"arena {arena_id.hex()} (that id names a {arena.TYPE})")
    return compute_state(arena, store.proposals(arena_id), store.attestations(arena_id))
