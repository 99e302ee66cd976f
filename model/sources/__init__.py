"""Data sources: what the harness trains and scores on, drawn per check from its seed.

`draw(config, seed)` returns a `Data`: training bytes (served only through
the feed), validation bytes (never leave the trusted parent), the floor when
the source's likelihood is known, the secret key everything else of the
run (batch offsets, evaluation order, the script's init seed) derives from,
and the source's `Futures` (model/sources/futures.py): how the lookahead
probes draw a replacement for the bytes after a cut.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.errors import ConfigError
from model.harness.config import HarnessConfig
from model.sources import rng
from model.sources.futures import Futures, LanguageFutures, SpliceFutures
from model.sources.tinylang import Language, Params

TINYLANG_DOMAIN = b"ratchet/tinylang/v1"
TEXT_DOMAIN = b"ratchet/text/v1"


@dataclass(frozen=True)
class Data:
    train: np.ndarray  # uint8
    val: np.ndarray  # uint8, exactly config.val_bytes long
    floor_bpb: float | None
    key: bytes
    futures: Futures


def source_key(config: HarnessConfig, seed: int) -> bytes:
    """The run's secret key (stretched from the seed; see rng.derive_key)."""
    if config.source == "tinylang":
        return rng.derive_key(seed, TINYLANG_DOMAIN)
    if config.source == "text":
        return rng.derive_key(seed, TEXT_DOMAIN)
    raise ConfigError("source", config.source, "unknown data source")


def draw(config: HarnessConfig, seed: int, key: bytes | None = None) -> Data:
    """The data of one run; `key` (from source_key) saves deriving it twice."""
    key = key if key is not None else source_key(config, seed)
    if config.source == "tinylang":
        return _tinylang(config, key)
    from model.sources.text import load_split

    train, pool, val = load_split(config)
    return Data(train, val, None, key, SpliceFutures(pool, val))


def tinylang_params(config: HarnessConfig) -> tuple[Params, int]:
    def num(name: str, default: int, lo: int, hi: int) -> int:
        value = config.setting(name, str(default))
        try:
            out = int(value)
        except ValueError as e:
            raise ConfigError(name, value, "not an integer") from e
        if not lo <= out <= hi:
            raise ConfigError(name, value, f"must be in [{lo}, {hi}]")
        return out

    p = Params(words=num("words", Params.words, 8, 1 << 16), topics=num("topics", Params.topics, 1, 64))
    return p, num("train_bytes", 1 << 20, 4096, 1 << 30)


def _tinylang(config: HarnessConfig, key: bytes) -> Data:
    params, train_bytes = tinylang_params(config)
    lang = Language(key, params)
    train = _words_until(lang, "train", train_bytes)
    val = _words_until(lang, "val", config.val_bytes)
    val_arr = np.frombuffer(val, dtype=np.uint8)
    return Data(np.frombuffer(train, dtype=np.uint8), val_arr, lang.floor_bpb(val), key,
                LanguageFutures(lang, val_arr))


def _words_until(lang: Language, name: str, nbytes: int) -> bytes:
    """The first nbytes of stream `name`.

    A longer draw of a stream starts with the shorter one, so guessing the word
    count low and drawing again when short gives the same bytes as any other guess.
    """
    n = nbytes // 5 + 64
    while True:
        text = lang.text(lang.sample_words(name, n))
        if len(text) >= nbytes:
            return text[:nbytes]
        n = n * 3 // 2
