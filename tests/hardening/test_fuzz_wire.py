"""Fuzzing of node/p2p's decoders and its gossip validator, in-process (bounded for CI).

scripts/fuzz.py runs the same entry points at full size.
"""

from __future__ import annotations

import random
import signal
from collections.abc import Iterator

import pytest
from fuzzkit import Mutator, build_corpus
from fuzzoracle import Entry, Tally, describe, feed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wirefuzz import entries

CORPUS = build_corpus()
NAMES = ["wire.decode_request", "wire.decode_summary", "wire.decode_peer_addrs", "wire.decode_gossip",
         "wire.unpack (answers)", "wire.read_frame", "gossip validator"]
FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def wire_entries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Entry]]:
    found = {e.name: e for e in entries(CORPUS, tmp_path_factory.mktemp("wire"))}
    yield found


def test_every_network_decoder_is_covered(wire_entries: dict[str, Entry]) -> None:
    assert sorted(wire_entries) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_network_decoder_mutants(wire_entries: dict[str, Entry], name: str) -> None:
    entry = wire_entries[name]
    tally = Tally(name)
    pool = CORPUS.encodings()

    @FUZZ
    @given(rnd=st.randoms(use_true_random=False), wrapped=st.booleans())
    def one(rnd: random.Random, wrapped: bool) -> None:
        m = Mutator(rnd, CORPUS)
        m.pool = m.pool + entry.seeds
        if wrapped and entry.wrap is not None:
            data = entry.wrap([m.mutate(rnd.choice(pool))])
        else:
            data = m.mutate(rnd.choice(entry.seeds))
        feed(name, entry.fn, data, tally, m.last_ops, which=signal.ITIMER_VIRTUAL, named=entry.named)

    for seed in entry.seeds:  # the valid messages are accepted
        feed(name, entry.fn, seed, tally, ["seed"], which=signal.ITIMER_VIRTUAL, named=entry.named)
    if name == "gossip validator":  # seeds go to a random topic now and then: wrong ones are refused
        assert tally.accepted >= len(entry.seeds) // 3, dict(tally.rejections)
    else:
        assert tally.accepted == len(entry.seeds), dict(tally.rejections)
    one()
    assert not tally.findings, "\n".join(
        f"{f.kind}: {f.detail} ops={f.ops} input={describe(f.data)}" for f in tally.findings[:5])
    assert sum(tally.rejections.values()) > 0
    print(name, tally.inputs, tally.accepted, dict(tally.rejections))
