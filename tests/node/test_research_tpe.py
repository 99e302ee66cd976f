"""The TPE proposer, driven by hand-written journals (no training): what it proposes, learns, keeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from journalfile import DISCARDED, INVALID, STALE
from model.arenas import reference_script
from node.research.journal import Entry, Stage
from node.research.knobs import parse_knobs
from node.research.mutate import apply
from node.research.search import mutation_key
from node.research.tpe import TpeSearch, noise_ubpb, pass_chance, skeleton, space_for

REF = reference_script("tiny")
ARENA, HEAD, NEXT = b"a" * 32, b"\x01" * 32, b"\x02" * 32
MARGIN = 3000


def _finish(seq: int, parent: bytes, cand, gains: list[int], decision: str = DISCARDED) -> Entry:
    stage = Stage("screen", list(range(len(gains))), [0] * len(gains), [-g for g in gains], verdict="no_gain",
                  mean_gain_ubpb=sum(gains) // max(len(gains), 1))
    return Entry(seq, f"u{seq}", ARENA, parent, "tpe", cand.summary, cand.changes, "", 0,
                 decision=decision, stages=[stage] if gains else [])


def _fake_gain(script: bytes) -> int:
    """A landscape: a higher learning rate pays, everything else costs a little."""
    lr = parse_knobs(script)["LR"].value
    return 12000 if lr > 0.006 else -4000


def test_proposals_are_valid_new_moves_of_one_or_two_knobs(tmp_path: Path) -> None:
    search = TpeSearch(home=tmp_path, arena=ARENA, seed=1)
    history: list[Entry] = []
    keys = set()
    for i in range(25):
        cand = search.propose(REF, HEAD, history, set(), MARGIN)
        assert cand is not None and cand.mutation is not None
        assert 1 <= len(cand.mutation.changes) <= 2
        assert apply(REF, cand.mutation) == cand.script  # only knob literals changed
        assert all(c.name not in ("LOG_EVERY",) for c in cand.mutation.changes)  # fixed knobs stay
        key = mutation_key(cand.mutation)
        assert key not in keys
        keys.add(key)
        history.append(_finish(i, HEAD, cand, [_fake_gain(cand.script)]))


def test_it_learns_the_landscape_better_than_its_random_start(tmp_path: Path) -> None:
    """After its startup trials, TPE proposes the paying move (LR up) far more often than at first."""
    search = TpeSearch(home=tmp_path, arena=ARENA, seed=7)
    history: list[Entry] = []
    hits = []
    for i in range(40):
        cand = search.propose(REF, HEAD, history, set(), MARGIN)
        assert cand is not None
        gain = _fake_gain(cand.script)
        hits.append(gain > 0)
        history.append(_finish(i, HEAD, cand, [gain]))
    assert sum(hits[20:]) >= 2 * max(sum(hits[:20]), 1) or sum(hits[20:]) >= 12


def test_state_is_kept_in_the_data_directory_and_resumes(tmp_path: Path) -> None:
    first = TpeSearch(home=tmp_path, arena=ARENA, seed=3)
    history: list[Entry] = []
    for i in range(5):
        cand = first.propose(REF, HEAD, history, set(), MARGIN)
        history.append(_finish(i, HEAD, cand, [-1000 * i]))
    assert first.path is not None and first.path.is_file() and first.path.parent == tmp_path / "research"
    again = TpeSearch(home=tmp_path, arena=ARENA, seed=4)  # a restart: a new object on the same directory
    cand = again.propose(REF, HEAD, history, set(), MARGIN)
    assert cand is not None and cand.changes[0]["trial"] == 5  # numbering continues
    import optuna

    study = optuna.load_study(study_name=cand.changes[0]["study"], storage=again.storage)
    told = [t.value for t in study.trials if t.value is not None]
    assert sorted(told) == sorted(float(-1000 * i) for i in range(5))


def test_invalid_and_stale_results_are_told(tmp_path: Path) -> None:
    import optuna

    search = TpeSearch(home=tmp_path, arena=ARENA, seed=5)
    a = search.propose(REF, HEAD, [], set(), MARGIN)
    h = [_finish(0, HEAD, a, [], decision=INVALID)]
    b = search.propose(REF, HEAD, h, set(), MARGIN)
    h.append(_finish(1, HEAD, b, [], decision=STALE))
    c = search.propose(REF, HEAD, h, set(), MARGIN)
    study = optuna.load_study(study_name=c.changes[0]["study"], storage=search.storage)
    by_number = {t.number: t for t in study.trials}
    assert by_number[a.changes[0]["trial"]].value == -5.0 * MARGIN
    assert by_number[b.changes[0]["trial"]].state == optuna.trial.TrialState.FAIL


def test_a_new_head_inherits_what_was_learned_shifted_by_its_own_gain(tmp_path: Path) -> None:
    import optuna

    search = TpeSearch(home=tmp_path, arena=ARENA, seed=11)
    history: list[Entry] = []
    winner = None
    for i in range(12):
        cand = search.propose(REF, HEAD, history, set(), MARGIN)
        gain = 20000 if winner is None and i == 6 else -2000
        if gain > 0:
            winner = cand
        history.append(_finish(i, HEAD, cand, [gain]))
    assert winner is not None
    cand = search.propose(winner.script, NEXT, history, set(), MARGIN)  # our move became the head
    assert cand is not None
    study = optuna.load_study(study_name=cand.changes[0]["study"], storage=search.storage)
    inherited = [t for t in study.trials if t.user_attrs.get("inherited")]
    assert len(inherited) == 12
    assert max(t.value for t in inherited) == 0.0  # the head itself
    assert min(t.value for t in inherited) == -22000.0
    # a head with another skeleton (code changed, not only knobs) starts afresh
    other = REF.replace(b"import time\n", b"import time  # changed\n")
    assert skeleton(other, parse_knobs(other)) != skeleton(REF, parse_knobs(REF))
    fresh = search.propose(other, b"\x03" * 32, history, set(), MARGIN)
    study = optuna.load_study(study_name=fresh.changes[0]["study"], storage=search.storage)
    assert not [t for t in study.trials if t.user_attrs.get("inherited")]


def test_claimed_topics_are_avoided_while_others_remain(tmp_path: Path) -> None:
    search = TpeSearch(home=tmp_path, arena=ARENA, seed=2)
    history: list[Entry] = []
    for i in range(10):
        cand = search.propose(REF, HEAD, history, {"LR:+", "LR:-"}, MARGIN)
        assert cand.topic not in ("LR:+", "LR:-")
        history.append(_finish(i, HEAD, cand, [-3000]))


def test_space_covers_the_mutable_knobs_and_only_those() -> None:
    knobs = {n: k for n, k in parse_knobs(REF).items() if k.mutable}
    space = space_for(knobs)
    assert "LR" in space and "LOG_EVERY" not in space and "N_EMBD" in space
    assert space["LR"]["low"] < 3e-3 < space["LR"]["high"]
    assert space["TIE_EMBEDDINGS"] == {"kind": "cat", "choices": [False, True]}


def test_pass_chance_is_monotone_and_stops_clear_losers() -> None:
    sigma = 7500.0
    chances = [pass_chance([g], 3, MARGIN, sigma) for g in (-10000, 0, 5000, 10000, 20000, 40000)]
    assert chances == sorted(chances)
    assert chances[0] < 0.01 and chances[-1] > 0.99
    assert pass_chance([], 3, MARGIN, sigma) == 1.0 and pass_chance([1, 2, 3], 3, MARGIN, sigma) == 1.0
    # a second seed that confirms a strong first one keeps it going
    assert pass_chance([20000, 18000], 3, MARGIN, sigma) > 0.5


def test_the_stop_rule_uses_the_journal_s_own_noise(tmp_path: Path) -> None:
    quiet = [Entry(i, f"u{i}", ARENA, HEAD, "tpe", "x", [], "", 0, decision=DISCARDED,
                   stages=[Stage("confirm", [1, 2, 3], [0, 0, 0], [-1000, -1100, -900])]) for i in range(10)]
    assert noise_ubpb([], MARGIN) == pytest.approx(2.5 * MARGIN)
    assert noise_ubpb(quiet, MARGIN) < 0.5 * noise_ubpb([], MARGIN)
    search = TpeSearch(home=tmp_path, arena=ARENA, seed=1)
    cand = search.propose(REF, HEAD, quiet, set(), MARGIN)
    assert cand.stop_early is not None
    assert cand.stop_early([-2000]) is not None  # a loss on seed one ends it
    assert cand.stop_early([30000]) is None


def test_a_corrupt_state_file_is_a_clear_error_and_is_left_as_it_was(tmp_path: Path) -> None:
    from node.research.errors import SearchStateError

    path = tmp_path / "research" / f"tpe-{ARENA.hex()[:16]}.log"
    path.parent.mkdir(parents=True)
    garbage = b'not json\n{"op_code": 99}\n'  # (an undecodable last line alone is read as a torn write)
    path.write_bytes(garbage)
    with pytest.raises(SearchStateError) as e:
        TpeSearch(home=tmp_path, arena=ARENA, seed=1)
    assert str(path) in str(e.value) and "move it aside" in str(e.value)
    assert path.read_bytes() == garbage  # nothing written over it
