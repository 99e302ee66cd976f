"""Credit (the leaderboard's points): a pure function of a chain state and its attestations.

Authors earn one point per 0.0001 bpb (100 micro-bits) of verified gain on each
accepted commit. Verifiers earn 10 points per counted check whose verdict agreed
with the decided outcome (chain.consensus.Tally.agreed: "improves" on an
accepted or orphaned commit, anything else on a rejected one; a key that signed
conflicting verdicts on one proposal made one check there, and it disagreed).
Checks of pending commits are counted as pending and earn nothing yet. A check
by a key not counted at the commit's height (a volunteer's, chain.verifiers) is
listed with its agreement and compute but earns no points: copying a decided
verdict costs nothing, so it must not buy a rank.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from chain.consensus import ACCEPTED, REJECTED, ChainState, Tally, state_tallies
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
    checks: int  # proposals it attested (one check per proposal), counted or not
    agreed: int
    disagreed: int
    pending: int
    compute_ms: int  # what all its attestations cost (check_compute_ms)
    hardware: tuple[str, ...]
    last_seen_ms: int
    counted_checks: int = 0  # of `checks`, those made while counted at the commit's height

    @property
    def agreement_rate(self) -> float | None:
        decided = self.agreed + self.disagreed
        return self.agreed / decided if decided else None


@dataclass(frozen=True)
class Credit:
    contributors: list[ContributorCredit]  # points desc, then key
    verifiers: list[VerifierCredit]


COMPUTE_MEASURED = ("CPU time of each check's training runs (parent and candidate, as its verifier measured "
                    "and signed it), or the check's wall-clock time where no run was measured")


def check_compute_ms(attestation: Attestation) -> int:
    """What one check cost its verifier, in milliseconds: the one place compute given is read.

    The CPU time of the training runs the attestation records (harness 2), else the wall-clock
    time the verifier signed (a check that ended before every seed was measured).
    """
    cpu = sum(attestation.parent_cpu_ms) + sum(attestation.candidate_cpu_ms)
    return cpu if cpu > 0 else attestation.wall_ms


def compute_credit(state: ChainState, attestations: Iterable[Attestation]) -> Credit:
    """Points of every author and verifying key active on the arena of `state`."""
    return credit_from(state, state_tallies(state, attestations))


def credit_from(state: ChainState, counted: Mapping[bytes, Tally]) -> Credit:
    """compute_credit from tallies of state's commits already made (chain.consensus.state_tallies)."""
    return Credit(_contributors(state), _verifiers(state, counted))


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


def _verifiers(state: ChainState, counted: Mapping[bytes, Tally]) -> list[VerifierCredit]:
    # key -> (agreed, counted, signed) per check
    made: dict[bytes, list[tuple[bool | None, bool, dict[bytes, Attestation]]]] = {}
    for pid, t in counted.items():
        status = state.commits[pid].status
        for key, atts in t.signed.items():
            made.setdefault(key, []).append((t.agreed(key, status), True, atts))
        for key, atts in t.others.items():
            made.setdefault(key, []).append((t.agreed(key, status), False, atts))
    out = []
    for key, checks in made.items():
        agreed = sum(1 for ok, _, _ in checks if ok)
        earned = sum(1 for ok, is_counted, _ in checks if ok and is_counted)
        signed = [a for _, _, atts in checks for a in atts.values()]
        out.append(VerifierCredit(
            key=key, points=earned * POINTS_PER_AGREED_CHECK, checks=len(checks), agreed=agreed,
            disagreed=sum(1 for ok, _, _ in checks if ok is False),
            pending=sum(1 for ok, _, _ in checks if ok is None),
            compute_ms=sum(check_compute_ms(a) for a in signed), hardware=tuple(sorted({a.hardware for a in signed})),
            last_seen_ms=max(a.timestamp for a in signed),
            counted_checks=sum(1 for _, is_counted, _ in checks if is_counted),
        ))
    out.sort(key=lambda v: (-v.points, v.key))
    return out
