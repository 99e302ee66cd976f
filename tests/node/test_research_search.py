"""The built-in proposers, driven by hand-written journals (no training)."""

from __future__ import annotations

from collections import Counter

from journalfile import DISCARDED, INVALID, PROPOSED
from node.research.journal import Entry, Stage
from node.research.knobs import parse_knobs
from node.research.mutate import Mutation
from node.research.search import BanditSearch, Candidate, RandomSearch, diffstat, mutation_key

HEAD_SCRIPT = b"""N_LAYER = 4  # blocks
N_HEAD = 4
N_EMBD = 128
LR = 3e-3  # learning rate
WARMUP_FRAC = 0.1
TIE_WEIGHTS = True
SEED = 1
"""
HEAD, OLD = b"\x01" * 32, b"\x02" * 32
MARGIN = 2000


def _entry(seq: int, parent: bytes, change: tuple[str, object, object], gain: int | None,
           decision: str = DISCARDED, scale: float = 1.0) -> Entry:
    name, old, new = change
    stages = [] if gain is None else [Stage("screen", [1], [0], [-gain], verdict="no_gain",
                                            mean_gain_ubpb=gain)]
    return Entry(seq, f"u{seq}", b"a" * 32, parent, "search", f"{name}", [
        {"name": name, "old": old, "new": new, "scale": scale}], "+1 -1 lines", 0,
        decision=decision, stages=stages)


def test_random_search_moves_one_mutable_knob() -> None:
    rs = RandomSearch(seed=3)
    seen = Counter()
    for _ in range(60):
        cand = rs.propose(HEAD_SCRIPT, HEAD, [], set(), MARGIN)
        assert cand is not None and cand.mutation is not None
        (c,) = cand.mutation.changes
        assert c.name != "SEED"
        assert parse_knobs(cand.script)[c.name].value == c.new
        assert diffstat(HEAD_SCRIPT, cand.script) == "+1 -1 lines"
        seen[c.name] += 1
    assert len(seen) >= 5  # it wanders over the knobs


def _discarded(i: int, cand: Candidate) -> Entry:
    return Entry(i, f"u{i}", b"a" * 32, HEAD, "search", cand.summary, cand.changes, "", 0,
                 decision=DISCARDED, stages=[Stage("screen", [1], [0], [500], mean_gain_ubpb=-500)])


def test_bandit_never_repeats_and_tries_claimed_topics_last() -> None:
    """Others' claims deprioritise a topic: while unclaimed moves remain, none touches LR."""
    bandit = BanditSearch(seed=0)
    history: list[Entry] = []
    keys = set()
    for i in range(12):
        cand = bandit.propose(HEAD_SCRIPT, HEAD, history, {"LR:+", "LR:-"}, MARGIN)
        assert cand is not None and cand.mutation is not None
        key = mutation_key(cand.mutation)
        assert key not in keys
        keys.add(key)
        assert not any(c.name == "LR" for c in cand.mutation.changes)
        history.append(_discarded(i, cand))


def test_claimed_topics_are_still_tried_when_nothing_else_is_left() -> None:
    """A flood of claims cannot stall a contributor: once every unclaimed move was measured on
    this head, the claimed ones come next (never before)."""
    script = b"LR = 3e-3\nTIE_WEIGHTS = True\n"
    taken = {"LR:+", "LR:-"}
    for seed in range(5):
        bandit = BanditSearch(seed=seed)
        history: list[Entry] = []
        topics = []
        for i in range(6):
            cand = bandit.propose(script, HEAD, history, taken, MARGIN)
            assert cand is not None and cand.mutation is not None
            topics.append(cand.topic)
            history.append(_discarded(i, cand))
        assert topics[0] == "TIE_WEIGHTS:~"  # the only unclaimed move goes first
        assert set(topics[1:]) <= {"LR:+", "LR:-"}  # then the claimed ones, still tried
        assert len({mutation_key(Mutation.from_json(e.changes)) for e in history}) == 6  # no repeats


def test_bandit_follows_a_direction_that_paid_off() -> None:
    """After LR up was accepted on the previous head, LR up comes first, with a bigger step."""
    history = [_entry(1, OLD, ("LR", 0.002, 0.003), 3 * MARGIN, PROPOSED)]
    picks = Counter()
    for seed in range(20):
        cand = BanditSearch(seed=seed).propose(HEAD_SCRIPT, HEAD, history, set(), MARGIN)
        assert cand is not None and cand.mutation is not None
        picks[cand.topic] += 1
        if cand.topic == "LR:+":
            assert cand.mutation.changes[0].new > 0.0045  # step grew after a gain
    assert picks.most_common(1)[0][0] == "LR:+"


def test_bandit_avoids_a_direction_that_broke_the_script() -> None:
    history = [_entry(i, HEAD, ("N_LAYER", 4, 5 + i), None, INVALID) for i in range(3)]
    history += [_entry(10 + i, OLD, ("N_LAYER", 4, 5 + i), None, INVALID) for i in range(3)]
    picks = Counter()
    for seed in range(30):
        cand = BanditSearch(seed=seed).propose(HEAD_SCRIPT, HEAD, history, set(), MARGIN)
        assert cand is not None
        picks[cand.topic] += 1
    assert picks["N_LAYER:+"] <= 2


def test_bandit_combines_gains_that_fell_short() -> None:
    history = [
        _entry(1, HEAD, ("LR", 0.003, 0.0045), MARGIN // 2),
        _entry(2, HEAD, ("WARMUP_FRAC", 0.1, 0.16), MARGIN // 2),
        _entry(3, HEAD, ("N_LAYER", 4, 5), -MARGIN),
        _entry(4, HEAD, ("N_EMBD", 128, 192), 10),
    ]
    cand = BanditSearch(seed=0, combine_every=4).propose(HEAD_SCRIPT, HEAD, history, set(), MARGIN)
    assert cand is not None and cand.mutation is not None
    assert sorted(cand.mutation.names) == ["LR", "WARMUP_FRAC"]
    assert cand.topic == "LR:++WARMUP_FRAC:+"
