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

First every seed runs both scripts at the parent's class; from the median
rel of those pairs the candidate's class is

    class = min(parent_class + floor(rel + SLACK),       (i)  at most the parent's compute, plus SLACK
                floor(parent_x + rel + SLACK_DRIFT))     (ii) the chain's drift against the genesis

where parent_x is the parent commit's position: the sum of the measured rel
along the accepted chain from the genesis (x = 0). If the class differs from
the parent's, the candidate runs again on every seed at its own class, and
the median rel of those runs must keep the class with RECHECK more slack, or
the verdict is invalid:over_compute (a script fast only while it is being
classed). Below K_MIN (over 1.5**7 = 17x its parent's CPU time per token)
the verdict is invalid:over_compute too.

Short runs measure their rate with an absolute jitter besides the relative
noise SLACK covers: identical scripts paired at 20,000 tokens (2.0 CPU s a
run) spread by rel sd 0.16, at 60,000 tokens (2.8 s) by 0.09, each about
0.1 CPU s of jitter (scripts/bench_compute.py, BENCHMARKS.md). So every rel
is first shrunk toward 0 by NOISE = log(1 + NOISE_CPU_S / parent CPU s) /
log(STEP), the parent's median CPU time per run at its class (the trusted
side: a candidate cannot widen it): a class moves only on a difference
the measurement resolves. NOISE_CPU_S is three times that jitter: 0.35 class
for a 2 s run, 0.009 at the shipped 4M-token budget (85 s). Without it, a
one-seed check of a script against itself at 20,000 tokens moved a class
once in 12 pairs idle, five times under load, and trained the two on
different token counts.

The allowance comes from the noise (scripts/bench_compute.py, BENCHMARKS.md):
identical scripts paired at 1M tokens measured CPU ratios within 1.03x
(1.05x with extra load), medians closer still, so STEP = 1.5 and SLACK =
0.25: a candidate gets at most 1.5**0.25 = 1.11x its parent's compute at
the parent's class, a candidate 1.5**0.75 = 1.36x faster per token the next
class (1.5x the tokens), and rule (ii) keeps small slowdowns, each within
SLACK, from creeping past 1.5**0.5 = 1.22x of the genesis's compute per
class. (A first choice, SLACK 0.5 from noisier 400k-token pairs, let four
optimizer steps per batch win at 400k tokens with 1.35x its parent's
compute: bench_verify section 5.) A script that spends 1.5x, 2x or 4x the
compute per token lands 1, 2 or 4 classes down (tokens / 1.5, / 2.25, /
5.1): it trains on fewer tokens for at most its parent's compute. Identical
scripts get the same class and train on the same tokens: bitwise the same
result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

STEP = 1.5
SLACK = 0.25
SLACK_DRIFT = 0.5
RECHECK = 0.15
NOISE_CPU_S = 0.3
K_MIN, K_MAX = -7, 5
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


def noise(parent_cpu_s: float) -> float:
    """The rel a measurement cannot resolve when the parent's runs take `parent_cpu_s` (module doc)."""
    if parent_cpu_s <= 0:
        raise ValueError("the parent's CPU time must be positive")
    return math.log1p(NOISE_CPU_S / parent_cpu_s) / math.log(STEP)


def _shrunk(rel: float, allowance: float) -> float:
    """`rel` moved toward 0 by `allowance` (0 within it)."""
    return math.copysign(max(0.0, abs(rel) - allowance), rel)


def class_for(parent: Position, rel: float, extra: float = 0.0, allowance: float = 0.0) -> int:
    """The candidate's class given its measured rel (see the module doc); not clamped below.

    `allowance` (noise(), in classes) is the part of rel the measurement cannot resolve.
    """
    own = parent.klass + math.floor(_shrunk(rel, allowance) + SLACK + extra)
    drift = math.floor(_shrunk(parent.x + rel, allowance) + SLACK_DRIFT + extra)
    return min(own, drift, K_MAX)


def keeps_class(parent: Position, klass: int, rel: float, allowance: float = 0.0) -> bool:
    """Whether a later measurement `rel` still earns `klass`, with RECHECK (and the noise) more slack."""
    return class_for(parent, rel, RECHECK + allowance) >= klass


def position_after(parent: Position, klass: int, rels: list[float]) -> Position:
    """The candidate's own position: its class and the parent's drift plus its median rel."""
    ordered = sorted(rels)
    mid = ordered[(len(ordered) - 1) // 2] if ordered else 0.0
    return Position(klass, parent.x_milli + int(round(mid * MILLI)))


def over_detail(rel: float) -> str:
    """Why a class is below K_MIN, in words."""
    return (f"the candidate used {STEP ** -rel:.2f}x its parent's CPU time per training token, "
            f"more than the arena's compute classes reach ({STEP ** -K_MIN:.1f}x the reference)")
