"""Acceptance and fork choice: a pure function of an arena's proposals and attestations.

Every node holding the same objects computes the same state, whatever order
they arrived in: inputs are deduplicated by id and every choice is made on
sorted data. Rules (docs/ARCHITECTURE.md, "Acceptance and fork choice"):

- A vote counts only from a key counted at the proposal's height
  (chain.verifiers: the genesis's verifier set, plus keys the chain admitted,
  less those it demoted). A key that signed conflicting verdicts on one
  proposal counts for nothing there.
- A commit is rejected when at least r counted keys say anything but
  "improves" (r = n - quorum + 1 while only founding keys are counted: the
  point where "improves" can no longer reach the quorum; it stays that constant
  as admitted keys join, Roster.rejection_threshold); else accepted when its
  parent is accepted (or is the arena) and at least `quorum` counted keys say
  "improves", "orphaned" with the quorum but a parent not accepted; otherwise
  pending.
- Its gain is the low median of the quorum's per-attestation mean paired gain;
  the head is the accepted commit with the greatest cumulative gain, ties to the
  lower height, then the smaller id.
"""

from __future__ import annotations

from collections.abc import Collection, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from chain.errors import NotFoundError
from chain.objects import Amendment, Arena, Attestation, Proposal
from chain.verifiers import CONFLICTING, Check, Outcome, Roster, Standing

if TYPE_CHECKING:
    from chain.store import Store

ACCEPTED, PENDING, REJECTED, ORPHANED = "accepted", "pending", "rejected", "orphaned"
STATUSES = (ACCEPTED, PENDING, REJECTED, ORPHANED)
IMPROVES = "improves"
MeasuredField = Literal["candidate_ubpb", "parent_ubpb", "floor_ubpb"]  # per-seed lists of an Attestation


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
    compute_class: int = 0  # low median of the quorum's compute classes (verify.compute)
    compute_x_milli: int = 0  # low median of the quorum's drift measurements
    counted: frozenset[bytes] = frozenset()  # the keys counted at its height (chain.verifiers)


@dataclass(frozen=True)
class ChainState:
    arena: Arena
    commits: dict[bytes, CommitInfo]
    accepted: frozenset[bytes]
    head: bytes  # the arena id while nothing is accepted
    standing: Standing | None = None  # every key's verifier status after the walk (chain.verifiers)

    def lineage(self, commit_id: bytes) -> list[bytes]:
        """The commit, its parent, ... down to the first commit (the arena excluded)."""
        out = []
        cur = self.commits.get(commit_id)
        while cur is not None:
            out.append(cur.id)
            cur = self.commits.get(cur.proposal.parent)
        return out

    def compute_position(self, commit_id: bytes) -> tuple[int, int]:
        """(compute class, drift in 1/1000 classes) a child of this commit is checked against.

        The arena itself (the genesis script) is (0, 0); so is a commit not accepted here.
        """
        info = self.commits.get(commit_id)
        if info is None or info.status != ACCEPTED:
            return (0, 0)
        return (info.compute_class, info.compute_x_milli)

    def head_metric_ubpb(self) -> int | None:
        """The head's metric as its quorum measured it (None while the head is the arena)."""
        head = self.commits.get(self.head)
        return head.metric_ubpb if head is not None else None


def low_median(values: Iterable[int]) -> int:
    """The middle value, the lower of the two middle ones for an even count (not empty)."""
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def median_mean(per_attestation: Iterable[Sequence[int]]) -> int | None:
    """Low median of each non-empty measurement's floored mean (None if all are empty)."""
    means = [sum(m) // len(m) for m in per_attestation if m]
    return low_median(means) if means else None


@dataclass(frozen=True)
class Tally:
    """One proposal's attestations as consensus counts them: the single place of the vote rules."""

    signed: dict[bytes, dict[bytes, Attestation]]  # counted key -> {id: attestation} it signed here
    votes: dict[bytes, str]  # counted key -> verdict; a key that signed conflicting verdicts is absent
    improving: list[Attestation]  # per improves voter, its attestation of smallest id (same verdict twice)
    others: dict[bytes, dict[bytes, Attestation]] = field(default_factory=dict)  # uncounted keys, likewise
    other_votes: dict[bytes, str] = field(default_factory=dict)  # uncounted key -> verdict (not conflicting)

    @property
    def gain_ubpb(self) -> int:
        """Low median of the improves voters' mean paired gains (0 without any)."""
        return low_median(a.mean_gain_ubpb for a in self.improving) if self.improving else 0

    @property
    def metric_ubpb(self) -> int | None:
        """Low median of the improves voters' mean candidate metric."""
        return median_mean(a.candidate_ubpb for a in self.improving)

    @property
    def compute_position(self) -> tuple[int, int]:
        """Low medians of the improves voters' compute class and drift ((0, 0) without any)."""
        if not self.improving:
            return (0, 0)
        classes = [a.compute_class for a in self.improving]
        drifts = [a.compute_x_milli for a in self.improving]
        if classes.count(classes[0]) == len(classes) and drifts.count(drifts[0]) == len(drifts):
            return (classes[0], drifts[0])  # the common case, without sorting
        return (low_median(classes), low_median(drifts))

    def measured(self, field: MeasuredField) -> int | None:
        """Low median of every counted attestation's mean of that measurement (None if none has it)."""
        return median_mean(getattr(a, field) for atts in self.signed.values() for a in atts.values())

    def verdict(self, key: bytes) -> str:
        """The key's verdict (counted or not), or CONFLICTING."""
        return self.votes.get(key, self.other_votes.get(key, CONFLICTING))

    def agreed(self, key: bytes, status: str) -> bool | None:
        """Whether the key's check agreed with the decided `status`: "improves" on accepted or orphaned,
        anything else on rejected, None while pending; conflicting verdicts are one check that disagreed."""
        verdict = self.votes.get(key, self.other_votes.get(key))
        if verdict is None:
            return False
        return None if status == PENDING else (status in (ACCEPTED, ORPHANED)) == (verdict == IMPROVES)

    def checks(self) -> dict[bytes, Check]:
        """Every key's check here, counted or not, as chain.verifiers reads it."""
        out: dict[bytes, Check] = {}
        for by_key in (self.signed, self.others):
            for key, atts in by_key.items():
                out[key] = Check(self.verdict(key), atts[min(atts)].seed_proof)
        return out


Counted = Mapping[bytes, Collection[bytes]]  # proposal id -> the keys counted at its height


def tallies(arena: Arena, proposals: Container[bytes], attestations: Iterable[Attestation],
            counted: Counted | None = None) -> dict[bytes, Tally]:
    """A Tally per proposal id in `proposals` that any key attested on `arena` (duplicates ignored).

    `counted` names each proposal's counted keys (ChainState.counted_sets); without it, the genesis's
    verifier set counts everywhere."""
    everyone = frozenset(arena.verifiers)
    return {pid: _count(by_key, everyone if counted is None else counted.get(pid, everyone))
            for pid, by_key in _signed(arena, proposals, attestations).items()}


def tally(arena: Arena, proposal: bytes, attestations: Iterable[Attestation],
          counted: Collection[bytes] | None = None) -> Tally:
    """The Tally of one proposal (`counted`: its counted keys, the genesis's verifier set by default)."""
    keys = frozenset(arena.verifiers) if counted is None else counted
    return _count(_signed(arena, (proposal,), attestations).get(proposal, {}), keys)


def state_tallies(state: ChainState, attestations: Iterable[Attestation]) -> dict[bytes, Tally]:
    """tallies() of every commit of `state`, each counted by the keys counted at its height."""
    return tallies(state.arena, state.commits, attestations, counted_sets(state))


def counted_sets(state: ChainState) -> dict[bytes, frozenset[bytes]]:
    """Commit id -> the keys counted at its height."""
    return {cid: c.counted for cid, c in state.commits.items()}


def _signed(arena: Arena, proposals: Container[bytes], attestations: Iterable[Attestation]
            ) -> dict[bytes, dict[bytes, dict[bytes, Attestation]]]:
    """proposal id -> signing key -> {attestation id: attestation}, every key."""
    arena_id = arena.id
    out: dict[bytes, dict[bytes, dict[bytes, Attestation]]] = {}
    for a in attestations:
        pid, key = a.proposal, a.verifier
        if pid not in proposals or a.arena != arena_id:
            continue
        by_key = out.get(pid)
        if by_key is None:
            out[pid] = {key: {a.id: a}}
        elif key in by_key:
            by_key[key][a.id] = a
        else:
            by_key[key] = {a.id: a}
    return out


def _count(by_key: dict[bytes, dict[bytes, Attestation]], counted: Collection[bytes]) -> Tally:
    signed: dict[bytes, dict[bytes, Attestation]] = {}
    others: dict[bytes, dict[bytes, Attestation]] = {}
    votes: dict[bytes, str] = {}
    other_votes: dict[bytes, str] = {}
    improving: list[Attestation] = []
    for key in sorted(by_key):
        atts = by_key[key]
        is_counted = key in counted
        (signed if is_counted else others)[key] = atts
        first = atts[min(atts)]  # same verdict signed twice: the smaller id speaks
        verdict = first.verdict
        if len(atts) > 1 and any(a.verdict != verdict for a in atts.values()):
            continue  # conflicting verdicts from one key: it counts for nothing here
        if not is_counted:
            other_votes[key] = verdict
            continue
        votes[key] = verdict
        if verdict == IMPROVES:
            improving.append(first)
    return Tally(signed, votes, improving, others, other_votes)


def compute_state(
    arena: Arena, proposals: Iterable[Proposal], attestations: Iterable[Attestation],
    amendments: Iterable[Amendment] = (),
) -> ChainState:
    """The arena's commits, accepted set, head and verifier standing from the objects given (any order)."""
    arena_id = arena.id
    props: dict[bytes, Proposal] = {}
    for p in proposals:
        if p.arena == arena_id:
            props[p.id] = p
    children: dict[bytes, list[bytes]] = {}
    for pid, p in props.items():
        children.setdefault(p.parent, []).append(pid)
    signed = _signed(arena, props, attestations)
    mine = [a for a in amendments if a.arena == arena_id]
    roster = Roster.genesis(arena.verifiers, arena.quorum, mine)
    founders = frozenset(arena.verifiers)
    # No amendment and only founding keys ever attested: the counted set never moves (the old rule).
    static = not mine and all(k in founders for by_key in signed.values() for k in by_key)

    commits: dict[bytes, CommitInfo] = {}
    accepted: set[bytes] = set()
    best: tuple[int, int, bytes] | None = None  # (-cumulative, height, id): min wins
    # Breadth-first from the arena: parents are decided before their children.
    frontier = sorted(children.get(arena_id, []))
    height = 1
    counted = founders
    while frontier:
        if not static:
            counted = roster.begin(height)
        n, quorum = len(counted), roster.quorum
        reject_at = roster.rejection_threshold(n)
        outcomes: list[Outcome] = []
        nxt: list[bytes] = []
        for cid in frontier:
            p = props[cid]
            parent = commits.get(p.parent)
            parent_ok = parent is None or parent.status == ACCEPTED  # None: the arena itself
            t = _count(signed.get(cid, {}), counted)  # one at a time: thousands kept alive cost the GC
            votes, improves = t.votes, len(t.improving)
            against = len(votes) - improves
            gain = cumulative = 0
            metric: int | None = None
            position = (0, 0)
            if against >= reject_at:
                status = REJECTED
                reason = _rejection_reason(votes, improves, quorum, n)
            elif improves >= quorum:
                metric = t.metric_ubpb
                position = t.compute_position
                if parent_ok:
                    status = ACCEPTED
                    reason = f"{improves} of {n} verifiers confirmed (quorum {quorum})"
                    gain = t.gain_ubpb
                    cumulative = gain + (parent.cumulative_ubpb if parent is not None else 0)
                else:
                    status = ORPHANED
                    reason = f"quorum says improves, but parent is {parent.status}"  # type: ignore[union-attr]
            else:
                status = PENDING
                reason = f"{improves} of {quorum} improves votes so far ({len(votes)} of {n} verifiers voted)"
                if not parent_ok:
                    reason += f"; its parent is {parent.status}"  # type: ignore[union-attr]
            info = CommitInfo(cid, p, height, status, reason, votes, gain, cumulative, metric, *position,
                              counted=counted)
            commits[cid] = info
            if status == ACCEPTED:
                accepted.add(cid)
                rank = (-cumulative, height, cid)
                if best is None or rank < best:
                    best = rank
            if not static and status != PENDING:
                outcomes.append(Outcome(cid, status != REJECTED, t.checks()))
            nxt.extend(children.get(cid, ()))
        if not static:
            roster.end(height, counted, outcomes)
        frontier = sorted(nxt)
        height += 1
    if not static:
        roster.begin(height)
    head = best[2] if best is not None else arena_id
    return ChainState(arena, commits, frozenset(accepted), head, roster.standing(height))


def _rejection_reason(votes: dict[bytes, str], improves: int, quorum: int, n: int) -> str:
    counts: dict[str, int] = {}
    for v in votes.values():
        if v != IMPROVES:
            counts[v] = counts.get(v, 0) + 1
    detail = ", ".join(f"{c} {v}" for v, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    if len(votes) - improves > n - quorum:
        return f"cannot reach the quorum of {quorum} improves ({improves} improves; {detail})"
    return f"{len(votes) - improves} counted verifiers say otherwise ({improves} improves; {detail})"


def state_for(store: Store, arena_id: bytes) -> ChainState:
    """compute_state over everything `store` holds for the arena."""
    arena = store.get(arena_id)
    if not isinstance(arena, Arena):
        raise NotFoundError(f"arena {arena_id.hex()} (that id names a {arena.TYPE})")
    return compute_state(arena, store.proposals(arena_id), store.attestations(arena_id),
                         store.amendments(arena_id))
