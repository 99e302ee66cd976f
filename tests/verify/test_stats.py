"""verify.stats.decide: worked examples and properties (hypothesis)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from verify.stats import Decision, StatsError, decide, t95

metric = st.integers(min_value=100_000, max_value=9_000_000)
margin = st.integers(min_value=0, max_value=50_000)


@st.composite
def paired(draw, min_size: int = 1, max_size: int = 12):
    parent = draw(st.lists(metric, min_size=min_size, max_size=max_size))
    candidate = draw(st.lists(metric, min_size=len(parent), max_size=len(parent)))
    return parent, candidate


def test_worked_example_three_seeds():
    # gains 4000, 5000, 6000: mean 5000, sd 1000, se 577.35, lower bound 5000 - 2.92 * 577.35
    d = decide([1_004_000, 1_005_000, 1_006_000], [1_000_000] * 3, 3_000)
    assert d.verdict == "improves" and d.n == 3
    assert d.mean_gain == 5000
    assert d.stderr == pytest.approx(1000 / math.sqrt(3))
    assert d.lower_bound == pytest.approx(5000 - 2.92 * 1000 / math.sqrt(3))
    assert d.t == pytest.approx(2000 / (1000 / math.sqrt(3)))


def test_mean_above_margin_but_too_noisy_is_no_gain():
    # mean gain 5000 > margin 3000, but one seed got worse: the lower bound is far below
    d = decide([1_012_000, 1_010_000, 1_000_000], [1_000_000, 1_000_000, 1_007_000], 3_000)
    assert d.mean_gain == 5000 and d.verdict == "no_gain"


def test_identical_scores_are_no_gain_even_with_zero_margin():
    d = decide([900_000, 910_000], [900_000, 910_000], 0)
    assert d.verdict == "no_gain" and d.mean_gain == 0 and d.stderr == 0 and d.t == 0


def test_single_seed_needs_twice_the_margin():
    assert decide([1_005_000], [1_000_000], 3_000).verdict == "no_gain"
    assert decide([1_006_001], [1_000_000], 3_000).verdict == "improves"


def test_bad_input():
    with pytest.raises(StatsError):
        decide([], [], 10)
    with pytest.raises(StatsError):
        decide([1, 2], [1], 10)
    with pytest.raises(StatsError):
        decide([1], [1], -1)


def test_t_quantiles():
    assert t95(2) == pytest.approx(2.92, abs=1e-3)
    assert t95(30) == pytest.approx(1.697, abs=1e-3)
    assert t95(31) == pytest.approx(1.6955, abs=2e-4)
    assert t95(120) == pytest.approx(1.6577, abs=2e-4)
    assert all(t95(k) > t95(k + 1) for k in range(1, 200))


@given(paired(), margin)
def test_improves_implies_mean_above_margin(pc, m):
    d = decide(*pc, m)
    assert isinstance(d, Decision)
    if d.verdict == "improves":
        assert d.mean_gain > m and d.lower_bound > m
    assert d.verdict in ("improves", "no_gain")


@given(paired(), margin)
def test_parent_and_candidate_cannot_both_improve_on_each_other(pc, m):
    p, c = pc
    assert not (decide(p, c, m).verdict == "improves" and decide(c, p, m).verdict == "improves")


@given(paired(), margin, st.integers(min_value=0, max_value=100_000))
def test_uniformly_better_candidate_keeps_improving(pc, m, k):
    p, c = pc
    if decide(p, c, m).verdict == "improves":
        assert decide(p, [x - k for x in c], m).verdict == "improves"


@given(paired(), margin, st.randoms())
def test_order_of_seeds_does_not_matter(pc, m, rnd):
    p, c = pc
    pairs = list(zip(p, c, strict=True))
    rnd.shuffle(pairs)
    q = decide([a for a, _ in pairs], [b for _, b in pairs], m)
    d = decide(p, c, m)
    assert q.verdict == d.verdict and q.mean_gain == pytest.approx(d.mean_gain)


@given(paired(min_size=2), margin)
def test_larger_margin_never_turns_no_gain_into_improves(pc, m):
    if decide(*pc, m + 1000).verdict == "improves":
        assert decide(*pc, m).verdict == "improves"


@given(st.lists(st.integers(min_value=-20_000, max_value=20_000), min_size=2, max_size=12), margin)
def test_same_gains_same_verdict_whatever_the_baseline(gains, m):
    base = 1_000_000
    a = decide([base + g for g in gains], [base] * len(gains), m)
    b = decide([2 * base + g for g in gains], [2 * base] * len(gains), m)
    assert a.verdict == b.verdict and a.mean_gain == b.mean_gain
