"""The compute-fair rule of `compute` arenas: equal compute for parent and candidate, in quantized classes.

A candidate must not gain by spending more compute than its parent, and a
candidate that does the same training faster must be able to gain. The
verifier measures compute itself: the CPU time of the trainer's whole process
tree, from torch imported until training ended (model.harness.cpuclock), in a
run paired with the parent's, concurrently on the same machine, one thread
each, both waiting for the other before evaluating (so neither can slow the
other with work that is not charged). A script's rate is its CPU seconds per
training token; what the script prints counts for nothing.

Compute is charged in classes. Class k trains on `tokens_at(N, k)` = N * STEP**k
tokens, N being the arena's budget_value (the genesis script is class 0).
Rates are compared on a log scale in units of STEP:

    rel = log(parent rate / candidate rate) / log(STEP)   (> 0: the candidate is faster)

and the candidate's class is

    class = min(parent_class + floor(rel + SLACK),       (i)  at most the parent's compute, plus SLACK
                floor(parent_x + rel + SLACK_DRIFT))     (ii) the chain's drift against the genesis

where parent_x is the parent commit's position: the sum of the measured rel
along the accepted chain from the genesis (x = 0). Rule (i) gives a candidate
at most STEP**SLACK of its parent's compute (1.25**0.45 = 1.106x) and a faster
one the next class (1.25x the tokens) once it is 1.25**(1 - SLACK) = 1.13x
faster; rule (ii) stops small slowdowns, each within SLACK, from creeping: the
chain's compute per class never exceeds STEP**SLACK_DRIFT (1.18x) of the
genesis. Identical scripts measure |rel| far below SLACK (scripts/bench_compute.py),
so they get the same class and train on the same tokens: bitwise the same
result. A script that spends 1.5x, 2x or 4x the compute per token lands 2, 4
or 7 classes down (tokens / 1.56, / 2.4, / 4.8): it trains on fewer tokens
for about the parent's compute. Below K_MIN (over 1.25**12 = 14.6x the
genesis's compute per token) the verdict is invalid:over_compute.

Later seeds run the candidate at its class; each must measure a rel that
keeps the class with RECHECK more slack, or the verdict is
invalid:over_compute (a script fast only while it is being classed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

STEP = 1.25
SLACK = 0.45
SLACK_DRIFT = 0.75
RECHECK = 0.3
K_MIN, K_MAX = -12, 8
MILLI = 1000  # positions (x) travel in the chain as integers, in thousandths of a class


@dataclass(frozen=True)
class Position:
    """Where a commit stands: its class (the token count it trains on) and its drift x (in classes)."""

    klass: int = 0
    x_milli: int = 0

    @property
    def x(self) -> float:
        return self.x_milli / MILLI


GENESIS = Position(0, 0)


def tokens_at(base_tokens: int, klass: int) -> int:
    """Training tokens of class `klass` for an arena of `base_tokens` (class 0)."""
    return max(1, int(base_tokens * STEP ** klass))


def relative(parent_cpu_s: float, parent_tokens: int, candidate_cpu_s: float, candidate_tokens: int) -> float:
    """log(parent rate / candidate rate) in classes; positive when the candidate is faster per token."""
    if min(parent_cpu_s, candidate_cpu_s) <= 0 or min(parent_tokens, candidate_tokens) <= 0:
        raise ValueError("a rate needs positive CPU time and tokens")
    rp, rc = parent_cpu_s / parent_tokens, candidate_cpu_s / candidate_tokens
    return math.log(rp / rc) / math.log(STEP)


def class_for(parent: Position, rel: float, extra: float = 0.0) -> int:
    """The candidate's class given its measured rel (see the module doc); not clamped below."""
    own = parent.klass + math.floor(rel + SLACK + extra)
    drift = math.floor(parent.x + rel + SLACK_DRIFT + extra)
    return min(own, drift, K_MAX)


def keeps_class(parent: Position, klass: int, rel: float) -> bool:
    """Whether a later measurement `rel` still earns `klass`, with RECHECK more slack."""
    return class_for(parent, rel, RECHECK) >= klass


def position_after(parent: Position, klass: int, rels: list[float]) -> Position:
    """The candidate's own position: its class and the parent's drift plus its median rel."""
    ordered = sorted(rels)
    mid = ordered[(len(ordered) - 1) // 2] if ordered else 0.0
    return Position(klass, parent.x_milli + int(round(mid * MILLI)))


def over_detail(rel: float) -> str:
    """Why a class is below K_MIN, in words."""
    return (f"the candidate used {STEP ** -rel:.2f}x its parent's CPU time per training token, "
            f"more than the arena's compute classes reach ({STEP ** -K_MIN:.1f}x the reference)")
