"""tinylang: a small stochastic language drawn afresh from every seed, with an exact likelihood.

One draw (a `Language`) fixes:

- a vocabulary of pronounceable words (consonant-vowel syllables), shorter
  words on the frequent ranks (as in natural languages);
- a hidden topic (a Markov chain over K topics that mostly stays put), each
  topic boosting its own share of the vocabulary on top of a Zipf law;
- first-order successor lists (each word's likely next words) and
  second-order ones (keyed by a hash of the last two words).

The next word given (topic z, words a, b) is the mixture
    P(w) = (L2 * S2[h(a, b)](w) + L1 * S1[b](w) + L0 * T[z](w)) / (L2 + L1 + L0)
with integer weights everywhere. Text is the words, each followed by a space.
Since the topic is hidden, the exact probability of a text is a forward
(HMM) sum over topic paths; `log2_prob` computes it, including a trailing
partial word, so the floor is the true source's bits per byte on exactly
the validation bytes that are scored.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from model.sources import rng

CONSONANTS = b"bcdfghjklmnprstvwz"
VOWELS = b"aeiou"
SPACE = 32
TOPIC_STAY = 1000  # out of 1024: P(topic keeps) ~ 0.977 plus the chance of redrawing the same
COMPONENTS = 16  # mixture weights are out of this


@dataclass(frozen=True)
class Params:
    words: int = 512
    topics: int = 4
    succ1: int = 6  # successors per word
    succ2: int = 3  # successors per second-order bucket
    buckets: int = 4096
    mix: tuple[int, int, int] = (5, 6, 5)  # (L2, L1, L0) out of 16
    zipf_scale: int = 1 << 24
    topic_boost: int = 6


class Language:
    """One drawn source: tables for sampling (integer cumulative weights) and for likelihood."""

    def __init__(self, key: bytes, p: Params) -> None:
        if sum(p.mix) != COMPONENTS:
            raise ValueError(f"mixture weights {p.mix} must sum to {COMPONENTS}")
        self.p = p
        self.key = key
        self.words = _draw_words(key, p.words)
        v, k = p.words, p.topics
        base = np.array([p.zipf_scale // (r + 1) for r in range(v)], dtype=np.int64)
        r = rng.stream(key, "topics", v)
        topic_of = rng.below(r, k)
        self.topic_w = np.tile(base, (k, 1))
        for z in range(k):
            self.topic_w[z, topic_of == z] *= p.topic_boost
        self.topic_cum = [np.cumsum(self.topic_w[z]).tolist() for z in range(k)]
        self.topic_p = self.topic_w / self.topic_w.sum(axis=1, keepdims=True)
        base_cum = np.cumsum(base)
        self.succ1_words = _draw_from(key, "succ1", v * p.succ1, base_cum).reshape(v, p.succ1)
        self.succ2_words = _draw_from(key, "succ2", p.buckets * p.succ2, base_cum).reshape(p.buckets, p.succ2)
        self.w1 = [60 // (j + 1) for j in range(p.succ1)]
        self.w2 = [60 // (j + 1) for j in range(p.succ2)]
        self.cum1 = list(np.cumsum(self.w1).tolist())
        self.cum2 = list(np.cumsum(self.w2).tolist())
        self.s1_lists = self.succ1_words.tolist()
        self.s2_lists = self.succ2_words.tolist()

    def bucket(self, a: int, b: int) -> int:
        return ((a * self.p.words + b) * 2654435761 % (1 << 32)) % self.p.buckets

    # -- sampling ------------------------------------------------------------
    def sample_words(self, name: str, n: int) -> list[int]:
        """n words of stream `name`: the word indices, starting from a = b = 0 and a random topic."""
        p = self.p
        k, stay = p.topics, TOPIC_STAY
        l2, l1 = p.mix[0], p.mix[0] + p.mix[1]
        r = rng.stream(self.key, name, 2 * n + 1).tolist()
        z = r[0] % k
        a = b = 0
        out = [0] * n
        s1, s2, cum1, cum2 = self.s1_lists, self.s2_lists, self.cum1, self.cum2
        t1, t2 = cum1[-1], cum2[-1]
        tcum = self.topic_cum
        tot = [c[-1] for c in tcum]
        nw, nb = p.words, p.buckets
        for i in range(n):
            r1, r2 = r[2 * i + 1], r[2 * i + 2]
            if i and (r1 & 1023) >= stay:
                z = (r1 >> 10) % k
            c = (r1 >> 20) & 15
            if c < l2:
                w = s2[((a * nw + b) * 2654435761 % 4294967296) % nb][bisect.bisect_right(cum2, r2 % t2)]
            elif c < l1:
                w = s1[b][bisect.bisect_right(cum1, r2 % t1)]
            else:
                w = bisect.bisect_right(tcum[z], r2 % tot[z])
            out[i] = w
            a, b = b, w
        return out

    def text(self, words: list[int]) -> bytes:
        table = [w + b" " for w in self.words]
        return b"".join([table[w] for w in words])

    # -- likelihood ----------------------------------------------------------
    def emission(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """P(next word | a, b) split as (shared part over V, topic part K x V), already mixed."""
        p = self.p
        total = float(COMPONENTS)
        shared = np.zeros(p.words)
        np.add.at(shared, self.succ2_words[self.bucket(a, b)], np.array(self.w2) * (p.mix[0] / total / sum(self.w2)))
        np.add.at(shared, self.succ1_words[b], np.array(self.w1) * (p.mix[1] / total / sum(self.w1)))
        return shared, self.topic_p * (p.mix[2] / total)

    def transition(self) -> np.ndarray:
        k = self.p.topics
        stay = TOPIC_STAY / 1024
        return np.full((k, k), (1 - stay) / k) + np.eye(k) * stay

    def log2_prob(self, data: bytes) -> float:
        """log2 P(the text starts with `data`), summed over hidden topics exactly."""
        index = {w: i for i, w in enumerate(self.words)}
        parts = data.split(b" ")
        complete, partial = parts[:-1], parts[-1]
        k = self.p.topics
        trans = self.transition()
        alpha = np.full(k, 1.0 / k)
        a = b = 0
        ll = 0.0
        for t, wb in enumerate(complete):
            w = index.get(wb)
            if w is None:
                return -math.inf
            pred = alpha if t == 0 else alpha @ trans
            shared, topical = self.emission(a, b)
            e = shared[w] + topical[:, w]
            joint = pred * e
            pt = float(joint.sum())
            if pt <= 0:
                return -math.inf
            ll += math.log2(pt)
            alpha = joint / pt
            a, b = b, w
        if partial:
            pred = alpha if not complete else alpha @ trans
            shared, topical = self.emission(a, b)
            match = np.array([w.startswith(partial) for w in self.words])
            pt = float((pred[:, None] * (shared[None, :] + topical))[:, match].sum())
            if pt <= 0:
                return -math.inf
            ll += math.log2(pt)
        return ll

    def floor_bpb(self, data: bytes) -> float:
        """Bits per byte of data[1:] given data[0]: what a perfect model of the source scores."""
        return (self.log2_prob(data[:1]) - self.log2_prob(data)) / (len(data) - 1)


def _draw_words(key: bytes, n: int) -> list[bytes]:
    """n distinct pronounceable words, shortest first (frequent ranks get short words)."""
    seen: dict[bytes, int] = {}
    r = rng.stream(key, "vocab", 64 * n).tolist()
    i = 0
    while len(seen) < n:
        if i + 8 > len(r):
            raise RuntimeError("vocabulary draw exhausted its stream")
        u = r[i]
        syll = 1 + (u % 7 > 1) + (u % 7 > 4)  # 1, 2 or 3 syllables (2/7, 3/7, 2/7)
        word = bytearray()
        for j in range(syll):
            v = r[i + 1 + j]
            word.append(CONSONANTS[v % len(CONSONANTS)])
            word.append(VOWELS[(v >> 8) % len(VOWELS)])
        if (u >> 8) % 3 == 0:
            word.append(CONSONANTS[(u >> 16) % len(CONSONANTS)])
        i += 4
        seen.setdefault(bytes(word), len(seen))
    return sorted(seen, key=lambda w: (len(w), seen[w]))


def _draw_from(key: bytes, name: str, n: int, cum: np.ndarray) -> np.ndarray:
    r = rng.stream(key, name, n)
    u = (r % np.uint64(int(cum[-1]))).astype(np.int64)
    return np.searchsorted(cum, u, side="right").astype(np.int64)
