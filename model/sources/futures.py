"""Replacement futures for the harness's lookahead probes, drawn to look like the real continuation.

A lookahead probe keeps a validation row up to a cut and replaces every byte
after it; a causal model answers positions <= cut exactly as before. The
replacement must be indistinguishable from the real continuation, or a model
could peek only where the future is real. Each source says how (`Futures`):

- tinylang (`LanguageFutures`): an exact draw from the true source given the
  whole validation prefix up to the cut. The hidden topic is forward-filtered
  over the validation words, the current partial word is completed
  consistently with its bytes so far (word and topic drawn jointly from their
  posterior), and the generator continues from there.
- file-backed text (`SpliceFutures`): nobody has the true source, so the
  future is spliced from held-out text of the same file (the pool: the last
  `splice_bytes` of the training split, served to no script and scored
  nowhere). The splice continues from a place in the pool where the same
  current word prefix occurs after the same kind of boundary byte, else
  where only the prefix occurs, backing off to shorter prefixes, and at last
  from any word start.

All randomness comes from the generator the harness passes (derived from the
run's secret key), so a run's probes are reproducible by anyone with its seed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from model.sources.tinylang import Language

SPACE = 32
WHITESPACE = frozenset(b" \t\n\r\x0b\x0c")
MAX_KEY = 24  # bytes of word prefix matched in the splice pool (longer prefixes back off)


class Futures(Protocol):
    def follow(self, ends: Sequence[int], lengths: Sequence[int], g: np.random.Generator) -> list[bytes]:
        """For each i, lengths[i] bytes to follow val[:ends[i] + 1], drawn afresh with `g`."""
        ...


class LanguageFutures:
    """Exact conditional continuations of tinylang validation text."""

    def __init__(self, lang: Language, val: np.ndarray) -> None:
        self.lang, self.val = lang, val
        self._state: tuple[bytes, list[int], np.ndarray, np.ndarray] | None = None

    def _parsed(self) -> tuple[bytes, list[int], np.ndarray, np.ndarray]:
        """(text, word indices, end offset of each complete word, topic prior of every word)."""
        if self._state is None:
            text = self.val.tobytes()
            index = {w: i for i, w in enumerate(self.lang.words)}
            words = [index[w] for w in text.split(b" ")[:-1]]
            spaces = np.flatnonzero(self.val == SPACE)
            self._state = (text, words, spaces, self.lang.topic_priors(words))
        return self._state

    def context(self, c: int) -> tuple[np.ndarray, int, int, bytes]:
        """What the source's next bytes depend on after val[:c + 1]: (topic prior of the current
        word, the two words before it, the current word's bytes so far)."""
        text, words, spaces, priors = self._parsed()
        t = int(np.searchsorted(spaces, c, side="left"))
        if text[c] == SPACE:  # the cut ends word t: the next word starts afresh
            t, prefix = t + 1, b""
        else:  # the cut is inside word t
            prefix = text[int(spaces[t - 1]) + 1 if t else 0:c + 1]
        a = words[t - 2] if t >= 2 else 0
        b = words[t - 1] if t >= 1 else 0
        return priors[t], a, b, prefix

    def follow(self, ends: Sequence[int], lengths: Sequence[int], g: np.random.Generator) -> list[bytes]:
        return [self.lang.continuation(*self.context(c), n, g) for c, n in zip(ends, lengths, strict=True)]

    def next_byte(self, c: int) -> np.ndarray:
        """The exact distribution of val[c + 1] given val[:c + 1] (what a drawn future starts with)."""
        return self.lang.next_byte_probs(*self.context(c))


class SpliceFutures:
    """Continuations spliced from held-out text at a place where the current word prefix recurs."""

    def __init__(self, pool: np.ndarray, val: np.ndarray) -> None:
        self.pool, self.val = pool.tobytes(), val.tobytes()
        self._found: dict[bytes, np.ndarray] = {}

    def _occurrences(self, pattern: bytes) -> np.ndarray:
        """Offsets just after each occurrence of `pattern` in the pool."""
        if pattern not in self._found:
            if len(pattern) == 1:
                hits = np.flatnonzero(np.frombuffer(self.pool, dtype=np.uint8) == pattern[0]) + 1
            else:
                hits = np.array([m.end() for m in re.finditer(re.escape(pattern), self.pool)], dtype=np.int64)
            self._found[pattern] = hits
        return self._found[pattern]

    def _word_starts(self) -> np.ndarray:
        if b"" not in self._found:
            ws = np.frombuffer(bytes(sorted(WHITESPACE)), dtype=np.uint8)
            self._found[b""] = np.flatnonzero(np.isin(np.frombuffer(self.pool, dtype=np.uint8), ws)) + 1
        return self._found[b""]

    def keys(self, c: int) -> list[bytes]:
        """Patterns to continue after, best first: boundary byte + word prefix, then shorter prefixes."""
        v = self.val
        begin = c
        while begin >= 0 and v[begin] not in WHITESPACE and c - begin < MAX_KEY:
            begin -= 1
        prefix = v[begin + 1:c + 1]
        out = [v[begin:c + 1]] if begin >= 0 else []  # with the boundary (or the whitespace at the cut)
        out += [prefix[i:] for i in range(len(prefix))]
        return out

    def follow(self, ends: Sequence[int], lengths: Sequence[int], g: np.random.Generator) -> list[bytes]:
        out = []
        for c, n in zip(ends, lengths, strict=True):
            limit = len(self.pool) - n
            for key in self.keys(c):
                hits = self._occurrences(key)
                hits = hits[:np.searchsorted(hits, limit, side="right")]
                if len(hits):
                    break
            else:
                hits = self._word_starts()
                hits = hits[:np.searchsorted(hits, limit, side="right")]
            if not len(hits):
                raise ValueError(f"the splice pool ({len(self.pool)} bytes) cannot hold a {n}-byte future")
            j = int(hits[int(g.integers(0, len(hits)))])
            out.append(self.pool[j:j + n])
        return out
