"""The verdict rule: does the candidate beat its parent by more than the arena's margin?

THE RULE (quoted in the README)

For each of the n seeds a verifier runs the parent and the candidate on the
same data and the same initialisation, and takes the paired gain
d_i = parent_i - candidate_i (val_bpb in micro-bits; positive means the
candidate is better). With mean d̄, sample standard deviation s and
standard error se = s / sqrt(n), the verdict is

    improves   iff   d̄ - t(0.95, n - 1) * se  >  margin
    no_gain    otherwise

that is, iff the one-sided 95% lower confidence bound on the mean paired
gain (Student's t with n - 1 degrees of freedom) clears the arena's margin.
With a single seed no spread can be estimated and the rule asks for
d_1 > 2 * margin instead. Pairing removes most seed-to-seed variation (both
runs see the same data and initial weights), so the spread that remains is
what the candidate's change does to the trajectory; the margin is the
smallest gain worth a commit, calibrated so that perturbations which change
the trajectory but not the expected quality (scripts/bench_verify.py) do
not pass. Ties and equal scores are `no_gain`.

Pure functions of integers: every verifier computes the same verdict from
the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CONFIDENCE = 0.95
SINGLE_SEED_FACTOR = 2  # with one seed: gain must exceed this many margins

# One-sided 95% quantiles of Student's t, degrees of freedom 1..30.
_T95 = (6.3138, 2.9200, 2.3534, 2.1318, 2.0150, 1.9432, 1.8946, 1.8595, 1.8331, 1.8125,
        1.7959, 1.7823, 1.7709, 1.7613, 1.7531, 1.7459, 1.7396, 1.7341, 1.7291, 1.7247,
        1.7207, 1.7171, 1.7139, 1.7109, 1.7081, 1.7056, 1.7033, 1.7011, 1.6991, 1.6973)
_Z95 = 1.6448536269514722


class StatsError(ValueError):
    """The measurements cannot be compared (no seeds, or unpaired lists)."""


@dataclass(frozen=True)
class Decision:
    verdict: str  # "improves" | "no_gain"
    mean_gain: float  # mean paired gain, micro-bits (positive: candidate better)
    stderr: float  # standard error of that mean (0 with one seed)
    t: float  # (mean_gain - margin) / stderr; +-inf when stderr is 0
    lower_bound: float  # the one-sided 95% lower bound on the mean gain the rule compares
    n: int


def t95(df: int) -> float:
    """One-sided 95% quantile of Student's t with `df` degrees of freedom."""
    if df < 1:
        raise StatsError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T95):
        return _T95[df - 1]
    z = _Z95  # Cornish-Fisher expansion: within 1e-4 of the exact value beyond 30
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def paired_gains(parent_ubpb: list[int], candidate_ubpb: list[int]) -> list[int]:
    if len(parent_ubpb) != len(candidate_ubpb):
        raise StatsError(f"{len(parent_ubpb)} parent results against {len(candidate_ubpb)} candidate results")
    if not parent_ubpb:
        raise StatsError("no seeds to compare")
    return [int(p) - int(c) for p, c in zip(parent_ubpb, candidate_ubpb, strict=True)]


def decide(parent_ubpb: list[int], candidate_ubpb: list[int], margin_ubpb: int) -> Decision:
    """The verdict of the rule in the module docstring."""
    if margin_ubpb < 0:
        raise StatsError(f"margin must be >= 0, got {margin_ubpb}")
    gains = paired_gains(parent_ubpb, candidate_ubpb)
    n = len(gains)
    mean = sum(gains) / n
    if n == 1:
        lower = mean - (SINGLE_SEED_FACTOR - 1) * margin_ubpb
        se = 0.0
    else:
        var = sum((g - mean) ** 2 for g in gains) / (n - 1)
        se = math.sqrt(var / n)
        lower = mean - t95(n - 1) * se
    excess = mean - margin_ubpb
    if se > 0:
        t = excess / se
    else:
        t = math.inf if excess > 0 else (-math.inf if excess < 0 else 0.0)
    verdict = "improves" if lower > margin_ubpb else "no_gain"
    return Decision(verdict, mean, se, t, lower, n)
