"""Credit (the leaderboard's points): a pure function of a chain state and its attestations.

Authors earn one point per 0.0001 bpb (100 micro-bits) of verified gain on each
accepted commit. Verifiers earn 10 points per check whose verdict agreed with
the decided outcome: "improves" on an accepted or orphaned commit (the quorum
said improves), anything else on a rejected one. Checks of pending commits are
counted as pending and earn nothing yet. A key that signed conflicting verdicts
on one proposal made one check there, and it disagreed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from chain.consensus import ACCEPTED, IMPROVES, ORPHANED, PENDING, REJECTED, ChainState
from chain.objects import Attestation

UBPB_PER_AUTHOR_POINT = 100
POINTS_PER_AGREED_CHECK = 10


@dataclass(frozen=True)
class ContributorCredit:
    key: bytes
    points: int
    accepted: int
    proposals: int
    rejected: int
    gain_ubpb: int  # total verified gain of its accepted commits
    last_seen_ms: int  # latest proposal timestamp

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.proposals if self.proposals else 0.0


@dataclass(frozen=True)
class VerifierCredit:
    key: bytes
    points: int
    checks: int  # proposals it attested (one check per proposal)
    agreed: int
    disagreed: int
    pending: int
    compute_ms: int  # wall time of all its attestations
    hardware: tuple[str, ...]
    last_seen_ms: int

    @property
    def agreement_rate(self) -> float | None:
        decided = self.agreed + self.disagreed
        return self.agreed / decided if decided else None


@dataclass(frozen=True)
class Credit:
    contributors: list[ContributorCredit]  # points desc, then key
    verifiers: list[VerifierCredit]


def compute_credit(state: ChainState, attestations: Iterable[Attestation]) -> Credit:
    """Points of every author and verifier-set key active on the arena of `state`."""
    return Credit(_contributors(state), _verifiers(state, attestations))


def _contributors(state: ChainState) -> list[ContributorCredit]:
    acc: dict[bytes, list[int]] = {}  # key -> [points, accepted, proposals, rejected, gain, last]
    for c in state.commits.values():
        row = acc.setdefault(c.proposal.author, [0, 0, 0, 0, 0, 0])
        row[2] += 1
        row[5] = max(row[5], c.proposal.timestamp)
        if c.status == ACCEPTED:
            row[0] += c.gain_ubpb // UBPB_PER_AUTHOR_POINT
            row[1] += 1
            row[4] += c.gain_ubpb
        elif c.status == REJECTED:
            row[3] += 1
    out = [ContributorCredit(k, *r) for k, r in acc.items()]
    out.sort(key=lambda c: (-c.points, c.key))
    return out


def _verifiers(state: ChainState, attestations: Iterable[Attestation]) -> list[VerifierCredit]:
    arena = state.arena
    verifiers = frozenset(arena.verifiers)
    # verifier -> proposal -> {attestation id: attestation}, deduplicated by id.
    seen: dict[bytes, dict[bytes, dict[bytes, Attestation]]] = {}
    for a in attestations:
        if a.arena != arena.id or a.verifier not in verifiers or a.proposal not in state.commits:
            continue
        seen.setdefault(a.verifier, {}).setdefault(a.proposal, {})[a.id] = a
    out = []
    for key, by_proposal in seen.items():
        agreed = disagreed = pending = compute_ms = last = 0
        hardware: set[str] = set()
        for pid, atts in by_proposal.items():
            for a in atts.values():
                compute_ms += a.wall_ms
                hardware.add(a.hardware)
                last = max(last, a.timestamp)
            status = state.commits[pid].status
            verdicts = {a.verdict for a in atts.values()}
            if len(verdicts) > 1:
                disagreed += 1
            elif status == PENDING:
                pending += 1
            elif (status in (ACCEPTED, ORPHANED)) == (verdicts.pop() == IMPROVES):
                agreed += 1
            else:
                disagreed += 1
        out.append(VerifierCredit(
            key=key, points=agreed * POINTS_PER_AGREED_CHECK, checks=len(by_proposal),
            agreed=agreed, disagreed=disagreed, pending=pending, compute_ms=compute_ms,
            hardware=tuple(sorted(hardware)), last_seen_ms=last,
        ))
    out.sort(key=lambda v: (-v.points, v.key))
    return out
