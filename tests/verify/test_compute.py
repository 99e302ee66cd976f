"""The compute-fair rule: the class arithmetic, and real paired checks on a `compute` arena.

The real checks run the tiny reference script at 120,000 tokens (a few
seconds a run), parent and candidate concurrently in the sandbox, so the
CPU time each one's process tree used decides the candidate's class.
"""

from __future__ import annotations

import hashlib
import math

import pytest
from conftest import SEEDS, small_arena

from verify import compute
from verify.calibrate import with_extra_forwards, with_extra_steps
from verify.check import Hooks, Run, run_check
from verify.compute import GENESIS, Position, class_for, keeps_class, tokens_at

pytestmark = pytest.mark.timeout(900)

TOKENS = "120000"


def rel_of(ratio: float) -> float:
    """rel of a candidate spending `ratio` times its parent's CPU time per token."""
    return -math.log(ratio) / math.log(compute.STEP)


@pytest.mark.parametrize("ratio, klass", [(1.0, 0), (1.1, 0), (0.9, 0), (1.5, -1), (2.0, -2), (4.0, -4),
                                          (1 / 1.6, 1), (1 / 2.4, 2)])
def test_classes_of_a_candidate_against_the_genesis(ratio, klass):
    assert class_for(GENESIS, rel_of(ratio)) == klass


def test_bought_compute_never_buys_more_than_the_slack():
    """Whatever the candidate spends per token, at its class it gets at most STEP**SLACK of the parent's compute."""
    for i in range(1, 400):
        ratio = 1 + i / 50  # 1.02x .. 9x the parent's CPU per token
        k = class_for(GENESIS, rel_of(ratio))
        spent = ratio * tokens_at(1_000_000, k) / 1_000_000
        assert spent <= compute.STEP ** compute.SLACK + 1e-6, (ratio, k, spent)


def test_short_runs_move_a_class_only_on_a_difference_above_their_noise():
    """At 2 CPU s a run (20,000 tokens) 1.2x either way is jitter; at the 4M-token budget it is not."""
    short, full = compute.noise(2.0), compute.noise(85.0)
    assert 0.3 < short < 0.4 and full < 0.01
    assert class_for(GENESIS, rel_of(1.2)) == -1 and class_for(GENESIS, rel_of(1.2), allowance=short) == 0
    assert class_for(GENESIS, rel_of(1 / 1.4)) == 1 and class_for(GENESIS, rel_of(1 / 1.4), allowance=short) == 0
    assert class_for(GENESIS, rel_of(1.2), allowance=full) == -1
    # what the noise cannot hide: 2x and 4x the compute still lose classes, a 2x speedup still gains one
    assert class_for(GENESIS, rel_of(2.0), allowance=short) == -2
    assert class_for(GENESIS, rel_of(4.0), allowance=short) <= -3
    for i in range(1, 400):  # what is bought is bounded by the slack plus the noise
        ratio = 1 + i / 50
        spent = ratio * tokens_at(20_000, class_for(GENESIS, rel_of(ratio), allowance=short)) / 20_000
        assert spent <= compute.STEP ** (compute.SLACK + short) + 1e-3, (ratio, spent)
    assert class_for(GENESIS, rel_of(0.5), allowance=short) == 1
    # the drift rule shrinks the chain's total, so creeping still counts once it is resolved
    crept = Position(0, -900)
    assert class_for(crept, rel_of(1.05), allowance=short) == -1
    with pytest.raises(ValueError):
        compute.noise(0.0)


def test_small_slowdowns_cannot_creep_along_the_chain():
    """Each commit 1.08x slower than its parent stays within SLACK, but the drift drops the class soon."""
    pos = GENESIS
    classes = []
    for _ in range(4):
        rel = rel_of(1.08)
        k = class_for(pos, rel)
        pos = compute.position_after(pos, k, [rel])
        classes.append(k)
    assert classes[0] == 0 and classes[-1] <= -1
    # the chain's compute per class, against the genesis, stays bounded
    assert compute.STEP ** (-pos.x) * tokens_at(1_000_000, pos.klass) / 1_000_000 <= compute.STEP ** compute.SLACK_DRIFT


def test_a_candidate_fast_only_while_classed_loses_its_class():
    parent = Position(0, 0)
    k = class_for(parent, rel_of(1 / 1.7))
    assert k == 1
    assert keeps_class(parent, k, rel_of(1 / 1.6)) and not keeps_class(parent, k, rel_of(1.1))


@pytest.fixture(scope="module")
def compute_arena(verifier_key):
    arena, ref = small_arena(verifier_key, budget_kind="compute", budget_value=TOKENS)
    assert arena.budget_kind == "compute"
    return arena, ref.data


def test_the_same_script_gets_the_same_class_and_bitwise_the_same_result(compute_arena, test_launcher):
    arena, ref = compute_arena
    r = run_check(ref, ref, arena, SEEDS, threads=2, launcher=test_launcher)
    assert r.verdict == "no_gain" and r.position.klass == 0
    assert r.parent_ubpb == r.candidate_ubpb
    assert all(q.parent.tokens == q.candidate.tokens <= int(TOKENS) for q in r.pairs)
    assert all(q.parent.cpu_ms > 0 and q.candidate.cpu_ms > 0 for q in r.pairs)


@pytest.mark.parametrize("n", [4])
def test_bought_compute_is_never_accepted(compute_arena, test_launcher, n):
    arena, ref = compute_arena
    r = run_check(ref, with_extra_steps(ref, n), arena, SEEDS[:2], threads=2, launcher=test_launcher)
    assert r.verdict != "improves", r.detail
    assert r.verdict in ("no_gain", "invalid:over_compute")
    if r.measured:
        assert r.position.klass <= -2
        assert all(q.candidate.tokens < q.parent.tokens for q in r.pairs)


# How much a no_grad forward pass costs against a training step differs from CPU to CPU: two
# extra passes measured 1.3x to 1.7x the CPU per token, so 1.5x (one class) is not certain on
# every machine. Four passes (about 1.6x to 2.3x) are at least one class on all of them.
WASTE = 4


def test_removing_wasted_compute_improves(compute_arena, test_launcher):
    """A parent that wastes forward passes per step, against the same script without the waste."""
    arena, ref = compute_arena
    wasteful = with_extra_forwards(ref, WASTE)
    r = run_check(wasteful, ref, arena, SEEDS, threads=2, launcher=test_launcher)
    assert r.position.klass >= 1, r.detail
    assert all(q.candidate.tokens > q.parent.tokens for q in r.pairs)
    assert r.verdict == "improves", r.detail


def test_fast_only_while_classed_is_over_compute(compute_arena, test_launcher):
    """Fast at the parent's token count (to be promoted), wasteful once trained on more tokens."""
    arena, ref = compute_arena
    wasteful = with_extra_forwards(ref, WASTE)
    sneaky = with_extra_forwards(ref, 3 * WASTE, when=f"feed.budget_tokens > {TOKENS}")
    r = run_check(wasteful, sneaky, arena, SEEDS[:2], threads=2, launcher=test_launcher)
    assert r.verdict == "invalid:over_compute", r.detail


def test_classing_on_the_first_seed_lets_a_class_changing_candidate_stop_early(compute_arena, test_launcher):
    """A contributor's screen (class_seeds=1): the class comes from seed 1, so stop_early can end it there."""
    arena, ref = compute_arena
    asked: list[list[int]] = []

    def stop(gains: list[int]) -> str:
        asked.append(gains)
        return "the proposer stops it"

    bought = with_extra_steps(ref, 4)
    r = run_check(ref, bought, arena, SEEDS, threads=2, launcher=test_launcher, class_seeds=1,
                  hooks=Hooks(stop_early=stop))
    assert len(r.pairs) == 1 and r.runs == 3  # parent, candidate at the parent's tokens, candidate at its class
    assert r.position.klass <= -2
    if r.verdict != "invalid:over_compute":  # (one seed's class may also be lost at its own token count)
        assert r.verdict == "no_gain" and r.detail == "the proposer stops it", r.detail
        assert r.pairs[0].candidate.tokens < r.pairs[0].parent.tokens
        assert asked == [[r.pairs[0].gain_ubpb]]
    # a verifier's check classes on every seed: the same stop is not asked while the class is open
    asked.clear()
    full = run_check(ref, bought, arena, SEEDS[:2], threads=2, launcher=test_launcher,
                     hooks=Hooks(stop_early=stop))
    assert asked == [] and len(full.pairs) == 2 and full.verdict != "improves"


def test_classing_on_the_first_seed_runs_the_rest_at_the_class(compute_arena, test_launcher):
    arena, ref = compute_arena
    wasteful = with_extra_forwards(ref, WASTE)
    r = run_check(wasteful, ref, arena, SEEDS, threads=2, launcher=test_launcher, class_seeds=1)
    assert r.position.klass >= 1, r.detail
    assert len(r.pairs) == len(SEEDS) and all(q.candidate.tokens > q.parent.tokens for q in r.pairs)
    assert r.runs == 2 * len(SEEDS) + 1  # one rerun only: the first seed's
    assert r.verdict == "improves", r.detail
    # a script fast only while classed is still caught, at the first seed's rerun
    sneaky = with_extra_forwards(ref, 3 * WASTE, when=f"feed.budget_tokens > {TOKENS}")
    s = run_check(wasteful, sneaky, arena, SEEDS, threads=2, launcher=test_launcher, class_seeds=1)
    assert s.verdict == "invalid:over_compute", s.detail
    assert s.runs == 3


def test_a_cached_parent_never_classes_a_candidate(compute_arena, test_launcher):
    """Cached parent CPU times were measured under other load: the classing seeds pair the parent afresh."""
    arena, ref = compute_arena
    tokens = tokens_at(arena.budget_value, 0)
    key = hashlib.sha256(ref).digest()
    # a cached parent 3x slower than it is, with a score no run gives: used, it would class the candidate +2
    cache = {(key, arena.id, s, tokens): Run(1, None, tokens, 3_000_000) for s in SEEDS[:2]}
    noop = ref + b"\n# the same script\n"
    r = run_check(ref, noop, arena, SEEDS[:2], threads=2, launcher=test_launcher, parent_cache=cache,
                  class_seeds=1)
    assert r.position.klass == 0, r.detail
    first, second = r.pairs
    assert first.parent.ubpb == first.candidate.ubpb and first.parent.cpu_ms < 3_000_000  # run afresh
    assert cache[(key, arena.id, SEEDS[0], tokens)] == first.parent  # and cached for later checks
    assert second.parent == Run(1, None, tokens, 3_000_000)  # after the class is chosen the cache serves
    assert r.runs == 3
    v = run_check(ref, noop, arena, SEEDS[:1], threads=2, launcher=test_launcher, parent_cache=cache)
    assert v.runs == 2 and v.verdict == "no_gain"  # a check classing on every seed pairs every one
