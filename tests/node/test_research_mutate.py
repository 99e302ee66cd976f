"""Knob parsing and mutation: only the literals change, rules between constants hold."""

from __future__ import annotations

import random

import pytest

from node.research import mutate
from node.research.errors import ConflictError, InvalidMutationError, ScriptParseError
from node.research.knobs import BOOL, CHOICE, FIXED, FRAC, INT_ADD, INT_MUL, LOG, UNIT, parse_knobs
from node.research.mutate import Change, Mutation

SAMPLE = '''"""A sample train.py (not run: only parsed)."""
import math

N_LAYER = 4          # transformer blocks
N_HEAD = 4           # attention heads
N_EMBD = 128         # model width
LR = 3e-3            # peak learning rate
WEIGHT_DECAY = 0.1
BETAS = (0.9, 0.95)  # AdamW betas
DROPOUT = 0.0
WARMUP_FRAC = 0.1
BATCH_SIZE = 16
LOGIT_SOFTCAP = 15.0
TIE_WEIGHTS = True   # share embedding and output matrices
ACTIVATION = "gelu"  # one of: gelu, relu, silu
SEED = 1234
NOTE = "\u00fcn\u00efcode \u00f6k"
TWICE = 1
TWICE = 2
DERIVED = N_EMBD // N_HEAD
NEG = -1.5


def build():
    return N_EMBD * 2
'''.encode()


def test_parse_knobs_reads_literals_and_infers_rules() -> None:
    knobs = parse_knobs(SAMPLE)
    rules = {name: k.rule for name, k in knobs.items()}
    assert rules["N_LAYER"] == INT_ADD and rules["N_HEAD"] == INT_ADD
    assert rules["N_EMBD"] == INT_MUL and rules["BATCH_SIZE"] == INT_MUL
    assert rules["LR"] == LOG and rules["WEIGHT_DECAY"] == LOG and rules["LOGIT_SOFTCAP"] == LOG
    assert rules["BETAS[0]"] == UNIT and rules["BETAS[1]"] == UNIT
    assert rules["DROPOUT"] == FRAC and rules["WARMUP_FRAC"] == FRAC
    assert rules["TIE_WEIGHTS"] == BOOL
    assert rules["ACTIVATION"] == CHOICE and knobs["ACTIVATION"].options == ("gelu", "relu", "silu")
    assert rules["SEED"] == FIXED and rules["NOTE"] == FIXED and rules["NEG"] == FIXED
    assert "TWICE" not in knobs and "DERIVED" not in knobs  # reassigned / not a literal
    assert knobs["LR"].text == "3e-3" and knobs["LR"].comment == "peak learning rate"
    # offsets are byte offsets even after non-ASCII text
    k = knobs["NEG"]
    assert SAMPLE[k.start:k.end] == b"-1.5"


def test_apply_rewrites_only_the_literals() -> None:
    m = Mutation((Change("LR", 0.003, 0.0045), Change("BETAS[1]", 0.95, 0.97),
                  Change("ACTIVATION", "gelu", "silu"), Change("TIE_WEIGHTS", True, False)))
    out = mutate.apply(SAMPLE, m)
    expected = (SAMPLE.replace(b"LR = 3e-3 ", b"LR = 4.5e-3 ")
                .replace(b"(0.9, 0.95)", b"(0.9, 0.97)")
                .replace(b'"gelu"  #', b'"silu"  #')
                .replace(b"TIE_WEIGHTS = True", b"TIE_WEIGHTS = False"))
    assert out == expected
    knobs = parse_knobs(out)
    assert knobs["LR"].value == 0.0045 and knobs["ACTIVATION"].value == "silu"


def test_apply_refuses_a_stale_change_and_broken_rules() -> None:
    with pytest.raises(ConflictError):
        mutate.apply(SAMPLE, Mutation((Change("LR", 0.01, 0.02),)))
    with pytest.raises(InvalidMutationError):
        mutate.apply(SAMPLE, Mutation((Change("N_EMBD", 128, 100),)))  # 100 % (2*4) != 0
    with pytest.raises(ScriptParseError):
        parse_knobs(b"LR = (\n")


@pytest.mark.parametrize("name", sorted(mutate.mutable_knobs(SAMPLE)))
def test_every_neighbour_is_valid_and_moves_in_its_direction(name: str) -> None:
    rng = random.Random(0)
    for direction in (1, -1):
        for scale in (0.5, 1.0, 3.0):
            m = mutate.neighbours(SAMPLE, name, direction, scale, rng)
            if m is None:
                continue
            (c,) = m.changes
            out = mutate.apply(SAMPLE, m)  # rules hold, parse works
            assert parse_knobs(out)[name].value == c.new
            if c.direction:
                assert c.direction == direction
            assert len(out.splitlines()) == len(SAMPLE.splitlines())


def test_step_rules() -> None:
    knobs = parse_knobs(SAMPLE)
    rng = random.Random(0)
    lr_up = mutate.step_value(knobs["LR"], 1, 1.0, knobs, rng)
    assert lr_up == pytest.approx(0.0045)
    assert 0.95 < mutate.step_value(knobs["BETAS[1]"], 1, 1.0, knobs, rng) < 1
    assert mutate.step_value(knobs["DROPOUT"], -1, 1.0, knobs, rng) is None
    assert mutate.step_value(knobs["DROPOUT"], 1, 1.0, knobs, rng) == 0.05
    width = mutate.step_value(knobs["N_EMBD"], 1, 1.0, knobs, rng)
    assert width > 128 and width % 8 == 0
    heads = mutate.step_value(knobs["N_HEAD"], 1, 1.0, knobs, rng)
    assert heads > 4 and 128 % heads == 0 and (128 // heads) % 2 == 0
    assert mutate.step_value(knobs["N_LAYER"], -1, 10.0, knobs, rng) == 1


def test_rebase_keeps_changes_that_still_apply() -> None:
    m = Mutation((Change("LR", 0.003, 0.0045), Change("N_LAYER", 4, 5)))
    new_head = SAMPLE.replace(b"N_LAYER = 4 ", b"N_LAYER = 6 ")
    rebased = mutate.rebase(m, new_head)
    assert rebased == Mutation((Change("LR", 0.003, 0.0045),))
    moved_both = new_head.replace(b"LR = 3e-3", b"LR = 2e-3")
    assert mutate.rebase(m, moved_both) is None


def test_format_value_keeps_style() -> None:
    assert mutate.format_value(0.0045, "3e-3") == "4.5e-3"
    assert mutate.format_value(0.0045, "0.003") == "0.0045"
    assert mutate.format_value(3.0) == "3.0"
    assert mutate.format_value("silu", "'gelu'") == "'silu'"
