"""The harness draws a seed's data once for the runs that need it (a paired check's parent and candidate)."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
from model_helpers import SMALL

from model.harness import run as harness_run
from model.sources import draw, source_key


def test_a_seeds_data_is_drawn_once_and_equals_a_fresh_draw():
    key = source_key(SMALL, 11)
    got: list = []
    threads = [threading.Thread(target=lambda: got.append(harness_run.drawn(SMALL, 11, key))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(got) == 2 and got[0] is got[1]  # side by side: one draw, shared
    fresh = draw(SMALL, 11)
    assert np.array_equal(got[0].train, fresh.train) and np.array_equal(got[0].val, fresh.val)
    other = replace(SMALL, source_settings=(("topics", "2"), ("train_bytes", "65536"), ("words", "128")))
    assert harness_run.drawn(other, 11, source_key(other, 11)) is not got[0]  # the config is part of the key


def test_only_a_few_datasets_are_kept():
    for seed in range(20, 20 + harness_run.DRAWN_KEPT + 3):
        harness_run.drawn(SMALL, seed, source_key(SMALL, seed))
    assert len(harness_run._drawn) == harness_run.DRAWN_KEPT
