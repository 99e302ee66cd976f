"""The in-process feed the benchmarks compare the harness with (model/harness/bare.py)."""

from __future__ import annotations

import torch
from model_helpers import BIGRAM, SMALL, run, script

from model.harness.bare import BareFeed, bare_train


def test_the_bare_feed_serves_a_seeds_batches_within_the_budget():
    a, b, other = BareFeed.for_config(SMALL, 3), BareFeed.for_config(SMALL, 3), BareFeed.for_config(SMALL, 4)
    x, y = a.batch(4, 64)
    assert torch.equal(x, b.batch(4, 64)[0]) and not torch.equal(x, other.batch(4, 64)[0])
    assert torch.equal(x[:, 1:], y[:, :-1])  # y is the next byte
    assert a.progress() == 256 / SMALL.budget_value
    while a.batch(4, 64) is not None:
        pass
    assert a.tokens_seen == SMALL.budget_value and a.batch(1, 1) is None


def test_bare_training_consumes_what_the_harness_serves():
    feed = BareFeed.for_config(SMALL, 1)
    model, seconds = bare_train(script(BIGRAM), feed, threads=1)
    assert isinstance(model, torch.nn.Module) and seconds > 0
    assert feed.tokens_seen == run(BIGRAM, seed=1).tokens
