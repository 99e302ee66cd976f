"""Every way a script can fail or cheat ends in a named verdict, never a harness traceback."""

from __future__ import annotations

import pytest
from model_helpers import BIGRAM, run

pytestmark = pytest.mark.timeout(120)

# A model that is honest apart from what each case below adds to forward().
MODEL = '''
import torch

class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(256, 256))
        self.calls = 0

    def forward(self, x):
        logits = self.w[x]
        {extra}
        return logits

def train(feed):
    while feed.batch(4, 64) is not None:
        pass
    return M()
'''


def model_with(extra: str) -> str:
    return MODEL.replace("{extra}", extra)


@pytest.mark.parametrize("source, reason, needle", [
    ("def train(feed:\n", "syntax_error", "SyntaxError"),
    ("import no_such_module_here\n", "import_error", "no_such_module_here"),
    ("raise RuntimeError('at import')\n", "import_error", "at import"),
    ("X = 1\n", "missing_train", "train(feed)"),
    ("def train(feed):\n    raise ValueError('boom in training')\n", "script_error", "boom in training"),
    ("import sys\ndef train(feed):\n    sys.exit(3)\n", "script_error", "SystemExit"),
    ("def train(feed):\n    return 42\n", "wrong_return", "int"),
    ("def train(feed):\n    feed.batch(100000, 100000)\n", "bad_batch_request", "100000"),
    ("import os, signal\ndef train(feed):\n    os.kill(os.getpid(), signal.SIGKILL)\n", "crashed", "SIGKILL"),
])
def test_script_failures_are_named(source: str, reason: str, needle: str) -> None:
    r = run(source)
    assert (r.status, r.reason) == ("invalid", reason), r.detail
    assert needle in r.detail
    assert r.val_bpb is None and "model/harness/run.py" not in r.detail


@pytest.mark.parametrize("extra, reason", [
    ("logits = logits[..., :10]", "bad_logits_shape"),
    ("logits = (logits, None)", "bad_logits_shape"),
    ("logits = logits + float('nan')", "nonfinite_logits"),
    ("raise RuntimeError('eval broke')", "eval_error"),
    ("logits = logits - 1000.0 * torch.nn.functional.one_hot(x, 256)", "ok"),
])
def test_bad_logits(extra: str, reason: str) -> None:
    r = run(model_with(extra))
    assert (r.status, r.reason) == (("ok", "") if reason == "ok" else ("invalid", reason)), r.detail


def test_diverged_model_is_invalid() -> None:
    r = run(model_with("logits = logits + 1000.0 * torch.nn.functional.one_hot((x + 1) % 256, 256)"))
    assert (r.status, r.reason) == ("invalid", "diverged"), r.detail
    assert r.val_bpb is not None and r.val_bpb > 8


def test_overrunning_the_cap_is_killed() -> None:
    r = run("import time\ndef train(feed):\n    feed.batch(1, 8)\n    time.sleep(600)\n", wall_cap_s=5.0)
    assert (r.status, r.reason) == ("invalid", "timeout"), r.detail
    # The cap counts from the worker's start (torch imported), however slow that start was.
    assert 4.0 <= r.wall_s - r.startup_s < 15


@pytest.mark.parametrize("extra, reason", [
    # Reads the next byte from the input: perfect predictions, caught by the causality probe.
    ("logits = logits + 50.0 * torch.nn.functional.one_hot(x.roll(-1, dims=1), 256)", "peeks_future"),
    # A statistic over the whole batch leaks other rows into each row.
    ("logits = logits + 5.0 * torch.nn.functional.one_hot(x.roll(1, dims=0), 256)", "batch_mixing"),
    # Remembers something across evaluation calls.
    ("self.calls += 1\n        logits = logits + 0.01 * self.calls * torch.nn.functional.one_hot(x, 256)",
     "stateful_eval"),
])
def test_cheats_are_caught(extra: str, reason: str) -> None:
    r = run(model_with(extra))
    assert (r.status, r.reason) == ("cheat", reason), r.detail


def test_bigram_beats_uniform() -> None:
    r = run(BIGRAM)
    assert r.ok and r.val_bpb is not None and r.val_bpb < 6


# Peeks at the next byte, but answers any row that shares a prefix with a row it
# saw before with its earlier answer for that prefix: a probe that repeats a row
# with another future would agree with it. Caught only because the probes go to
# a fresh worker that never saw the original rows.
PREFIX_CACHE = '''
import torch

class Cache(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(256, 256))
        self.memory = []

    def forward(self, x):
        out = self.w[x] + 50.0 * torch.nn.functional.one_hot(x.roll(-1, dims=1), 256)
        for i, row in enumerate(x.tolist()):
            best, length = None, 0
            for seen, logits in self.memory:
                n = 0
                while n < len(row) and seen[n] == row[n]:
                    n += 1
                if n > length:
                    best, length = logits, n
            if best is not None:
                out[i, :length] = best[:length]
            self.memory.append((row, out[i].clone()))
        return out

def train(feed):
    feed.batch(1, 8)
    return Cache()
'''


def test_a_prefix_cache_does_not_hide_peeking() -> None:
    r = run(PREFIX_CACHE)
    # Its cache also makes identical calls disagree, which may be what is noticed first.
    assert r.status == "cheat" and r.reason in ("peeks_future", "stateful_eval"), r.detail


def test_an_unpicklable_model_is_named() -> None:
    r = run(model_with("") .replace("return M()", "m = M()\n    m.f = lambda: 0\n    return m"))
    assert (r.status, r.reason) == ("invalid", "unpicklable_model"), r.detail
