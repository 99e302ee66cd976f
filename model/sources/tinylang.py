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
from collections.abc import Sequence
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
        r = rng.stream(self.key, name, 2 * n + 1).tolist()
        return self.walk(r[1:], r[0] % self.p.topics, 0, 0, n, fresh=True)

    def walk(self, r: list[int], z: int, a: int, b: int, n: int, *, fresh: bool = False) -> list[int]:
        """n words drawn with the 2n uniform 64-bit values `r`, after words (a, b) in topic z.

        `fresh`: z is the topic of the first word (a stream's start); otherwise z
        was the previous word's and the topic chain moves before every word.
        """
        p = self.p
        k, stay = p.topics, TOPIC_STAY
        l2, l1 = p.mix[0], p.mix[0] + p.mix[1]
        out = [0] * n
        s1, s2, cum1, cum2 = self.s1_lists, self.s2_lists, self.cum1, self.cum2
        t1, t2 = cum1[-1], cum2[-1]
        tcum = self.topic_cum
        tot = [c[-1] for c in tcum]
        nw, nb = p.words, p.buckets
        for i in range(n):
            r1, r2 = r[2 * i], r[2 * i + 1]
            if (i or not fresh) and (r1 & 1023) >= stay:
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

    # -- conditional continuations (the harness's lookahead probes) -------------
    def topic_priors(self, words: Sequence[int]) -> np.ndarray:
        """Row t: P(topic of word t | words[:t]) for t = 0 .. len(words), by exact forward filtering."""
        p = self.p
        k, n = p.topics, len(words)
        hist = np.array([0, 0, *words], dtype=np.int64)
        w, a, b = hist[2:], hist[:n], hist[1:n + 1]
        h = ((a.astype(np.uint64) * np.uint64(p.words) + b.astype(np.uint64)) * np.uint64(2654435761)
             % np.uint64(1 << 32) % np.uint64(p.buckets)).astype(np.int64)
        c2 = np.array(self.w2) * (p.mix[0] / COMPONENTS / sum(self.w2))
        c1 = np.array(self.w1) * (p.mix[1] / COMPONENTS / sum(self.w1))
        shared = (self.succ2_words[h] == w[:, None]) @ c2 + (self.succ1_words[b] == w[:, None]) @ c1
        emit = (shared[:, None] + self.topic_p[:, w].T * (p.mix[2] / COMPONENTS)).tolist()
        stay = TOPIC_STAY / 1024
        move = (1 - stay) / k
        out = [[1.0 / k] * k]
        pred = out[0]
        for e in emit:
            joint = [pz * ez for pz, ez in zip(pred, e, strict=True)]
            total = sum(joint)
            pred = [stay * j / total + move for j in joint]
            out.append(pred)
        return np.array(out)

    def starting_with(self, prefix: bytes) -> np.ndarray:
        """Indices of the words that start with `prefix` (cached)."""
        cache: dict[bytes, np.ndarray] = self.__dict__.setdefault("_starts", {})
        if prefix not in cache:
            cache[prefix] = np.array([i for i, w in enumerate(self.words) if w.startswith(prefix)], dtype=np.int64)
        return cache[prefix]

    def next_byte_probs(self, prior: np.ndarray, a: int, b: int, prefix: bytes) -> np.ndarray:
        """P(next byte) over 256 values in the same context as `continuation` (exact)."""
        cand = self.starting_with(prefix)
        shared, topical = self.emission(a, b)
        wts = prior @ (shared[cand][None, :] + topical[:, cand])
        nxt = [w[len(prefix)] if len(w) > len(prefix) else SPACE for w in (self.words[i] for i in cand.tolist())]
        out = np.zeros(256)
        np.add.at(out, np.array(nxt, dtype=np.int64), wts)
        return out / out.sum()

    def continuation(self, prior: np.ndarray, a: int, b: int, prefix: bytes, n: int,
                     g: np.random.Generator) -> bytes:
        """n bytes drawn from the source given everything before: the topic prior of the current
        word, the two words before it and the current word's bytes so far (`prefix`).

        The current word and its topic are drawn jointly from their exact posterior; the
        words after follow the generator itself (the same walk the streams are drawn with).
        """
        cand = self.starting_with(prefix)
        if not len(cand):
            raise ValueError(f"no word starts with {prefix!r}")
        shared, topical = self.emission(a, b)
        joint = (prior[:, None] * (shared[cand][None, :] + topical[:, cand])).ravel()
        cum = np.cumsum(joint)
        i = min(int(np.searchsorted(cum, g.random() * cum[-1], side="right")), len(cum) - 1)
        z, j = divmod(i, len(cand))
        w = int(cand[j])
        out = self.words[w][len(prefix):] + b" "
        if len(out) < n:
            m = n // 3 + 1  # every word is two bytes at least, plus its space
            r = g.bit_generator.random_raw(2 * m).tolist()
            out += self.text(self.walk(r, z, b, w, m))
        return out[:n]

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
