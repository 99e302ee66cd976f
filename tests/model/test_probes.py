"""The lookahead probes: stratified cuts, drawn futures, the scorer, and real harness runs of peeking models."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
from model_helpers import SMALL, run

from chain.keys import SigningKey
from model import arenas
from model.errors import ConfigError
from model.harness.evaluate import Scorer, draw_futures, inputs, rows_needed, schedule
from model.sources import draw, rng
from model.sources.futures import SpliceFutures

pytestmark = pytest.mark.timeout(180)

KEY = SigningKey.from_seed(b"\x0d" * 32)


def key(i: int) -> bytes:
    return rng.derive_key(i, b"probe-test")


@pytest.mark.parametrize("nrows, batch, seq_len, cuts", [(512, 32, 128, 3), (40, 8, 32, 1), (96, 8, 16, 5)])
def test_every_position_is_cut_probe_cuts_times(nrows: int, batch: int, seq_len: int, cuts: int) -> None:
    scored, probes = schedule(nrows, batch, seq_len, key(1), probe_cuts=cuts)
    rows = [r for c in probes for r in c.rows]
    ahead = [r for r in rows if r.cut >= 0]
    assert Counter(r.cut for r in ahead) == {p: cuts for p in range(seq_len - 1)}
    # each lookahead row is a distinct validation row that never appears unaltered among the probes
    assert len({r.src for r in ahead}) == len(ahead)
    assert not {r.src for r in ahead} & {r.src for r in rows if r.cut < 0}
    # every probe row is scored, every row is scored once, every call is full
    assert sorted(r.src for c in scored for r in c.rows) == list(range(nrows))
    assert all(len(c.rows) == batch for c in scored + probes)
    kinds = Counter(c.kind for c in probes)
    assert kinds["repeat"] == 2 and kinds["mix"] >= 2
    exact_in_mix = [r for c in probes if c.kind == "mix" for r in c.rows if r.cut < 0]
    assert exact_in_mix and all(len({r.src for r in c.rows}) == batch for c in probes)


def test_the_schedule_is_secret_per_key_and_reproducible() -> None:
    a, b, c = (schedule(512, 32, 128, k, probe_cuts=3) for k in (key(1), key(1), key(2)))
    assert a == b
    assert a[0] != c[0] and a[1] != c[1]
    cut_of = [{r.src: r.cut for cl in s[1] for r in cl.rows if r.cut >= 0} for s in (a, c)]
    assert cut_of[0] != cut_of[1]


def test_rows_needed_and_the_arena_refuses_too_few_rows() -> None:
    assert rows_needed(3, 128, 32) == 416 and rows_needed(1, 32, 8) == 40 and rows_needed(1, 2, 8) == 24
    with pytest.raises(ValueError, match="at least 416"):
        schedule(384, 32, 128, key(1), probe_cuts=3)
    with pytest.raises(ConfigError, match="at least 672"):
        arenas.build_arena("tiny", KEY, [KEY.public], 1, overrides={"eval_rows": "640"})
    with pytest.raises(ConfigError, match="probe_cuts"):
        arenas.build_arena("tiny", KEY, [KEY.public], 1, overrides={"probe_cuts": "0"})
    for name, cuts in (("tiny", 5), ("gpu", 3)):
        arena, _ = arenas.build_arena(name, KEY, [KEY.public], 1, created_at_ms=1)
        c = arenas.harness_config(arena)
        assert c.probe_cuts == cuts and c.eval_rows == rows_needed(c.probe_cuts, c.eval_seq_len, c.eval_batch)


def test_inputs_keep_the_prefix_and_take_the_drawn_future() -> None:
    d = draw(SMALL, 4)
    T = SMALL.eval_seq_len
    _, probes = schedule(SMALL.eval_rows, SMALL.eval_batch, T, d.key, probe_cuts=1)
    futures = draw_futures(probes, T, d.futures, d.key)
    assert futures.keys() == {r.src for c in probes for r in c.rows if r.cut >= 0}
    again = draw_futures(probes, T, d.futures, d.key)
    assert all(np.array_equal(futures[s], again[s]) for s in futures)  # reproducible from the key
    changed = 0
    for call in probes:
        x = inputs(d.val, call, T, futures)
        for row, spec in zip(x, call.rows, strict=True):
            real = d.val[spec.src * T:(spec.src + 1) * T]
            n = spec.cut + 1 if spec.cut >= 0 else T
            assert np.array_equal(row[:n], real[:n])
            changed += not np.array_equal(row, real)
    assert changed > len(futures) // 2  # most drawn futures differ from the real one somewhere


def test_the_scorer_keeps_only_what_probes_compare() -> None:
    d = draw(SMALL, 5)
    T = SMALL.eval_seq_len
    scored, probes = schedule(SMALL.eval_rows, SMALL.eval_batch, T, d.key, probe_cuts=1)
    s = Scorer.for_probes(d.val, T, 1e-4, probes)
    uniform = np.zeros((SMALL.eval_batch, T, 256), dtype=np.float32)
    for call in scored:
        s.add(call, uniform)
    kept = sum(r.size for r in s.refs.values())
    assert kept == 256 * sum(s.keep.values()) < 256 * T * len(s.keep)  # lookahead rows: positions <= cut
    for call in probes:
        s.add(call, uniform)
    s.check()
    assert not s.refs and s.bpb() == pytest.approx(8.0)


def test_a_splice_keeps_the_current_word_prefix() -> None:
    words = b"the quick brown fox jumps over the lazy dog while a quiet brook runs past the old mill".split()
    g = np.random.Generator(np.random.PCG64(3))
    text = b" ".join(words[i] for i in g.integers(0, len(words), 4000)) + b"\n"
    pool, val = np.frombuffer(text[:16000], dtype=np.uint8), np.frombuffer(text[16000:20000], dtype=np.uint8)
    f = SpliceFutures(pool, val)
    vocab = set(words)
    cuts = g.integers(20, len(val) - 40, 200).tolist()
    for c, fut in zip(cuts, f.follow(cuts, [20] * len(cuts), g), strict=True):
        v = val.tobytes()
        start = v.rfind(b" ", 0, c + 1) + 1
        word = v[start:c + 1] + fut.split(b" ")[0]
        assert len(fut) == 20
        if v[c] == 32:
            assert fut.split(b" ")[0] in vocab  # a word start continues with a whole word
        else:
            assert word in vocab, (v[start:c + 1], fut)  # the partial word is completed into a real word


BASE = '''
import torch

class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(256, 256))

    def forward(self, x):
        logits = self.w[x]
        {extra}
        return logits

def train(feed):
    while feed.batch(4, 64) is not None:
        pass
    return M()
'''


@pytest.mark.parametrize("extra", [
    # position 0 of every row reads the byte after it
    "logits[:, 0] = 30.0 * torch.nn.functional.one_hot(x[:, 1], 256).float()",
    # the middle position reads two bytes ahead
    "logits[:, 16] = 5.0 * torch.nn.functional.one_hot(x[:, 18], 256).float()",
    # the first position reads the row's last byte
    "logits[:, 0] = 5.0 * torch.nn.functional.one_hot(x[:, -1], 256).float()",
])
def test_a_peek_at_one_position_is_caught_in_a_real_run(extra: str) -> None:
    r = run(BASE.replace("{extra}", extra), seed=2, probe_cuts=6, eval_rows=rows_needed(6, 32, 8))
    assert (r.status, r.reason) == ("cheat", "peeks_future"), r.detail


def test_an_honest_model_passes_every_lookahead_probe() -> None:
    cfg = {"probe_cuts": 6, "eval_rows": rows_needed(6, 32, 8)}
    r = run(BASE.replace("{extra}", "logits = logits + x[..., None].float() / 300"), seed=2, **cfg)
    assert r.ok, r.detail
    assert replace(SMALL, **cfg).eval_rows == 200


def _float64_nll(val: np.ndarray, T: int, calls: list, logits: list[np.ndarray]) -> float:
    nll, seen = 0.0, set()
    for call, lg in zip(calls, logits, strict=True):
        z = lg.astype(np.float64)
        z -= z.max(axis=-1, keepdims=True)
        z -= np.log(np.exp(z).sum(axis=-1, keepdims=True))
        for i, spec in enumerate(call.rows):
            if spec.src not in seen:
                seen.add(spec.src)
                nll -= z[i, np.arange(T), val[spec.src * T + 1:spec.src * T + T + 1].astype(np.int64)].sum()
    return nll


@pytest.mark.parametrize("scale", [3.0, 1e38])
def test_the_score_matches_float64_and_extreme_logits_are_no_cheat(scale: float) -> None:
    """The scorer's float32 exponentials give the all-float64 score; logits near float32's limit
    (whose differences overflow float32) are scored in float64, not flagged as a cheat."""
    d = draw(SMALL, 6)
    T = SMALL.eval_seq_len
    scored, probes = schedule(SMALL.eval_rows, SMALL.eval_batch, T, d.key, probe_cuts=1)
    s = Scorer.for_probes(d.val, T, 1e-4, probes)
    g = np.random.Generator(np.random.PCG64(1))
    table = (g.standard_normal((256, 256)) * scale).clip(-3.4e38, 3.4e38).astype(np.float32)  # a bigram model
    futures = draw_futures(probes, T, d.futures, d.key)
    answers = [table[inputs(d.val, call, T, futures)] for call in scored]
    for call, lg in zip(scored, answers, strict=True):
        s.add(call, lg)
    for call in probes:
        s.add(call, table[inputs(d.val, call, T, futures)])
    s.check()  # causal, stateless, row-independent: nothing found
    # float32 differences from the max: ~1e-9 relative here; 1 ubpb is 4e-7 of a 2.5 bpb score
    assert s.nll == pytest.approx(_float64_nll(d.val, T, scored, answers), rel=1e-7)
