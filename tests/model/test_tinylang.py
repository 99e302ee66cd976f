"""tinylang: golden bytes per seed, and a floor that matches independent computations."""

from __future__ import annotations

import hashlib
import itertools
import math
import time
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
from model_helpers import SMALL

from model.sources import TINYLANG_DOMAIN, draw, rng
from model.sources.futures import LanguageFutures
from model.sources.tinylang import COMPONENTS, TOPIC_STAY, Language, Params

pytestmark = pytest.mark.timeout(120)

# sha256 of (train, val) bytes for SMALL (128 words, 3 topics, 64 KiB of training text).
GOLDEN = {
    0: ("42c0ba10cec88fb191fef7ad284c5284a6ab2e918252db5311ca50c2e2159142",
        "36622955836b49278a4506a578c0220f35faf01cabb01756ba1bb3fdc3f8954f", 1.086755044998839),
    1: ("ab1bc4afa324da058fe2304d8935a862d4e056fb41b492e2c7d3667e19e84e37",
        "d52dcb4426646cddb64bd9a7a8752878380cf917291dbe330d120d9853fe4b5e", 1.0789977961973924),
    2**31 - 1: ("babad9a1b4f3387d6a0841d84e658c0095eee1dfab26ed801e3a9e969e576a24",
                "59eda3addeb4d4299c93d757d34c8cb36936f361dd749c8a292177dd8b948aec", 1.0786577485058955),
}


GOLDEN_CONFIG = replace(SMALL, eval_rows=32)  # the shape the golden bytes were recorded with


@pytest.mark.parametrize("seed", sorted(GOLDEN))
def test_golden_bytes_per_seed(seed: int) -> None:
    d = draw(GOLDEN_CONFIG, seed)
    train_sha, val_sha, floor = GOLDEN[seed]
    assert hashlib.sha256(d.train.tobytes()).hexdigest() == train_sha
    assert hashlib.sha256(d.val.tobytes()).hexdigest() == val_sha
    assert len(d.train) == 65536 and len(d.val) == GOLDEN_CONFIG.val_bytes
    assert d.floor_bpb == pytest.approx(floor, rel=1e-12)


def test_splitmix_matches_the_reference_recurrence() -> None:
    """The vectorised stream equals SplitMix64 computed with Python integers."""
    key = rng.derive_key(5, b"test")
    state = int.from_bytes(rng.subkey(key, "s")[:8], "little")
    mask = (1 << 64) - 1
    expected = []
    for _ in range(5):
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        expected.append(z ^ (z >> 31))
    assert rng.stream(key, "s", 5).tolist() == expected
    assert rng.stream(key, "s", 2, start=3).tolist() == expected[3:]


def test_every_seed_draws_a_new_language_quickly() -> None:
    best = math.inf
    for seed in range(3):
        t = time.perf_counter()
        lang = Language(rng.derive_key(seed, TINYLANG_DOMAIN), Params())
        best = min(best, time.perf_counter() - t)
        assert len(set(lang.words)) == 512
        assert [len(w) for w in lang.words] == sorted(len(w) for w in lang.words)
    assert best < 1.0
    a = Language(rng.derive_key(1, TINYLANG_DOMAIN), Params())
    b = Language(rng.derive_key(2, TINYLANG_DOMAIN), Params())
    assert a.words != b.words and not np.array_equal(a.succ1_words, b.succ1_words)


def small_language(seed: int = 3) -> Language:
    return Language(rng.derive_key(seed, b"brute"), Params(words=6, topics=2, succ1=3, succ2=2, buckets=7))


def brute_force_log2(lang: Language, words: list[int], partial: bytes) -> float:
    """log2 P(text) summing over every topic path explicitly, from the sampling tables."""
    p = lang.p
    v, k = p.words, p.topics

    def dist(a: int, b: int, z: int) -> list[float]:
        out = [0.0] * v
        s2, s1 = lang.s2_lists[lang.bucket(a, b)], lang.s1_lists[b]
        for j, w in enumerate(s2):
            out[w] += p.mix[0] / COMPONENTS * lang.w2[j] / sum(lang.w2)
        for j, w in enumerate(s1):
            out[w] += p.mix[1] / COMPONENTS * lang.w1[j] / sum(lang.w1)
        tw = lang.topic_w[z]
        for w in range(v):
            out[w] += p.mix[2] / COMPONENTS * tw[w] / tw.sum()
        return out

    stay = TOPIC_STAY / 1024
    steps = len(words) + (1 if partial else 0)
    total = 0.0
    for path in itertools.product(range(k), repeat=steps):
        prob = 1.0 / k
        for t in range(1, steps):
            prob *= (1 - stay) / k + (stay if path[t] == path[t - 1] else 0.0)
        a = b = 0
        for t, w in enumerate(words):
            prob *= dist(a, b, path[t])[w]
            a, b = b, w
        if partial:
            d = dist(a, b, path[-1])
            prob *= sum(d[w] for w in range(v) if lang.words[w].startswith(partial))
        total += prob
    return math.log2(total)


@pytest.mark.parametrize("cut", [0, 1, 2, 3])
def test_floor_matches_brute_force_over_topic_paths(cut: int) -> None:
    lang = small_language()
    words = lang.sample_words("t", 7)
    text = lang.text(words)
    # Cut inside the last word (or at a boundary when cut == 0).
    complete = lang.text(words[:-1])
    data = complete + lang.words[words[-1]][:cut]
    partial = lang.words[words[-1]][:cut]
    assert lang.log2_prob(data) == pytest.approx(brute_force_log2(lang, words[:-1], partial), abs=1e-9)
    assert text.startswith(data)


def test_sampler_agrees_with_the_likelihood() -> None:
    """Frequencies of the first two words over many streams match exp2(log2_prob)."""
    lang = small_language(4)
    n = 6000
    counts: dict[tuple[int, int], int] = {}
    for i in range(n):
        pair = tuple(lang.sample_words(f"mc{i}", 2))
        counts[pair] = counts.get(pair, 0) + 1  # type: ignore[index]
    worst = 0.0
    for a, b in itertools.product(range(lang.p.words), repeat=2):
        p = 2 ** lang.log2_prob(lang.text([a, b]))
        sd = math.sqrt(n * p * (1 - p)) + 1e-9
        worst = max(worst, abs(counts.get((a, b), 0) - n * p) / sd)
    assert worst < 4.5
    assert sum(2 ** lang.log2_prob(lang.text([a, b])) for a, b in itertools.product(range(6), repeat=2)) == pytest.approx(1.0)


def test_floor_is_the_conditional_rate_of_the_scored_bytes() -> None:
    lang = small_language(5)
    text = lang.text(lang.sample_words("v", 200))[:301]
    bits = lang.log2_prob(text[:1]) - lang.log2_prob(text)
    assert lang.floor_bpb(text) == pytest.approx(bits / 300)
    assert 0 < lang.floor_bpb(text) < 8


def test_a_different_key_changes_everything() -> None:
    c = replace(SMALL, source_settings=(("topics", "3"), ("train_bytes", "4096"), ("words", "64")))
    a, b = draw(c, 10), draw(c, 11)
    assert a.key != b.key and bytes(a.val[:64]) != bytes(b.val[:64])


def test_topic_priors_reproduce_the_likelihood() -> None:
    """The forward filter the futures are drawn with gives the same log-probability as log2_prob."""
    lang = Language(rng.derive_key(6, b"prior"), Params(words=40, topics=3))
    words = lang.sample_words("v", 60)
    priors = lang.topic_priors(words)
    hist = [0, 0, *words]
    ll = 0.0
    for t, w in enumerate(words):
        shared, topical = lang.emission(hist[t], hist[t + 1])
        ll += math.log2(float(priors[t] @ (shared[w] + topical[:, w])))
    assert ll == pytest.approx(lang.log2_prob(lang.text(words)), abs=1e-9)
    assert priors.shape == (61, 3) and np.allclose(priors.sum(axis=1), 1.0)


def test_a_drawn_future_continues_the_text_consistently() -> None:
    d = draw(SMALL, 3)
    f = d.futures
    assert isinstance(f, LanguageFutures)
    vocab = set(f.lang.words)
    g = np.random.Generator(np.random.PCG64(0))
    ends = g.integers(0, 1200, 30).tolist()
    for c, fut in zip(ends, f.follow(ends, [30] * len(ends), g), strict=True):
        prefix = d.val[:c + 1].tobytes()
        assert len(fut) == 30
        word = prefix[prefix.rfind(b" ") + 1:] + fut.split(b" ")[0]
        assert word in vocab, (prefix[-12:], fut)  # the partial word is completed into a real word
        assert all(w in vocab for w in fut.split(b" ")[1:-1])
        assert math.isfinite(f.lang.log2_prob(prefix + fut))


def test_drawn_futures_follow_the_true_next_byte_law() -> None:
    """At a cut inside a word, at a word's last letter and on a space: the first two drawn bytes
    are distributed as the source says (exact law from log2_prob; z-scores of 3000 draws)."""
    lang = Language(rng.derive_key(8, b"cond"), Params(words=24, topics=2))
    text = lang.text(lang.sample_words("v", 80))
    f = LanguageFutures(lang, np.frombuffer(text, dtype=np.uint8))
    space = text.index(b" ", 100)
    while space - text.rfind(b" ", 0, space) < 4:  # a word of three letters at least
        space = text.index(b" ", space + 1)
    alphabet = sorted(set(b"".join(lang.words)) | {32})
    g = np.random.Generator(np.random.PCG64(1))
    n = 3000
    for c in (space - 2, space - 1, space):
        base = lang.log2_prob(text[:c + 1])
        first = {v: 2 ** (lang.log2_prob(text[:c + 1] + bytes([v])) - base) for v in alphabet}
        second: dict[int, float] = {}
        for v1, p1 in first.items():
            if p1 > 0:
                for v2 in alphabet:
                    p = 2 ** (lang.log2_prob(text[:c + 1] + bytes([v1, v2])) - base)
                    second[v2] = second.get(v2, 0.0) + p
        assert sum(first.values()) == pytest.approx(1.0) and sum(second.values()) == pytest.approx(1.0)
        law = f.next_byte(c)
        assert all(law[v] == pytest.approx(p, abs=1e-9) for v, p in first.items())
        drawn = f.follow([c] * n, [2] * n, g)
        for pos, exact in ((0, first), (1, second)):
            counts = Counter(d[pos] for d in drawn)
            assert set(counts) <= {v for v, p in exact.items() if p > 0}
            z = max(abs(counts.get(v, 0) - n * p) / math.sqrt(n * p * (1 - p) + 1e-12) for v, p in exact.items())
            assert z < 4.5, (c, pos, z)
