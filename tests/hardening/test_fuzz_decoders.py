"""Fuzzing of every decoder of untrusted bytes (bounded for CI; scripts/fuzz.py is the full run).

Every input ends in a valid object or a named ChainError: never another
exception, never a hang, never a store changed by a rejected input, never an
object stored that the admission rules refuse.
"""

from __future__ import annotations

import random
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fuzzkit import Corpus, Mutator, build_corpus, pack_loose
from fuzzoracle import Tally, decode_entry, describe, feed, open_store_oracle, stream_entry
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.audit import validate_store
from chain.errors import ChainError, DecodeError, NonCanonicalError
from chain.objects import TYPES, decode, decode_stream

CORPUS: Corpus = build_corpus()
ENCODINGS = CORPUS.encodings()
FUZZ = settings(max_examples=700, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _assert_clean(tally: Tally) -> None:
    assert not tally.findings, "\n".join(
        f"{f.kind}: {f.detail} ops={f.ops} input={describe(f.data)}" for f in tally.findings[:5])


def _mutant(rnd: random.Random, base: bytes) -> tuple[bytes, list[str]]:
    m = Mutator(rnd, CORPUS)
    return m.mutate(base), m.last_ops


@FUZZ
@given(base=st.sampled_from(ENCODINGS), rnd=st.randoms(use_true_random=False))
def test_decode_mutants(base: bytes, rnd: random.Random) -> None:
    data, ops = _mutant(rnd, base)
    tally = Tally("decode")
    feed("decode", decode_entry, data, tally, ops, which=signal.ITIMER_VIRTUAL)
    _assert_clean(tally)


@FUZZ
@given(data=st.binary(max_size=600))
def test_decode_arbitrary_bytes(data: bytes) -> None:
    tally = Tally("decode")
    feed("decode", decode_entry, data, tally, [], which=signal.ITIMER_VIRTUAL)
    _assert_clean(tally)


@FUZZ
@given(base=st.sampled_from(CORPUS.streams()), rnd=st.randoms(use_true_random=False))
def test_decode_stream_mutants(base: bytes, rnd: random.Random) -> None:
    data, ops = _mutant(rnd, base)
    tally = Tally("decode_stream")
    feed("decode_stream", stream_entry, data, tally, ops, which=signal.ITIMER_VIRTUAL)
    _assert_clean(tally)


def test_store_add_encoded_mutants(tmp_path: Path) -> None:
    oracle = open_store_oracle(tmp_path / "home", CORPUS.preload)
    tally = Tally("Store.add_encoded")

    @FUZZ
    @given(base=st.sampled_from(ENCODINGS), rnd=st.randoms(use_true_random=False))
    def one(base: bytes, rnd: random.Random) -> None:
        data, ops = _mutant(rnd, base)
        feed("Store.add_encoded", oracle, data, tally, ops, which=signal.ITIMER_VIRTUAL)
        _assert_clean(tally)

    try:
        one()
        for data in ENCODINGS:  # every valid object: stored once, then a no-op
            feed("Store.add_encoded", oracle, data, tally, ["valid"], which=signal.ITIMER_VIRTUAL)
        _assert_clean(tally)
        assert sum(tally.rejections.values()) > tally.inputs // 2, "the mutants were mostly valid: weak fuzzing"
        assert len(tally.rejections) >= 8, f"few error classes reached: {dict(tally.rejections)}"
        oracle.check_files()
        validate_store(oracle.store, workers=0)
        assert all(oracle.store.has(o.id) for o in CORPUS.objects)
    finally:
        oracle.close()
        oracle.store.close()


@pytest.mark.parametrize("cls", sorted(TYPES.values(), key=lambda c: c.TYPE), ids=lambda c: c.TYPE)
def test_every_field_refuses_every_foreign_type(cls: type) -> None:
    """Exhaustive type confusion: each field of each type replaced by each kind of msgpack value."""
    import msgpack

    obj = next(o for o in CORPUS.objects if type(o) is cls)
    values = [None, True, 0, -1, 2**64 - 1, 1.5, "", "x", b"", b"\x00" * 32, [], [0], {"a": 1}, {},
              msgpack.ExtType(5, b"")]
    items = [cls.TYPE, cls.VERSION, *obj.fields().values()]
    tried = 0
    for i in range(len(items)):
        for v in values:
            mutated = list(items)
            mutated[i] = v
            data = msgpack.packb(mutated, use_bin_type=True)
            if data == obj.encode() or type(v) is type(items[i]) and cls.SIGNER is None:
                continue  # a blob's bytes replaced by other bytes: a valid, different blob
            with pytest.raises(ChainError):
                decode(data)
            tried += 1
    assert tried >= len(items) * (len(values) - 3)


def test_non_canonical_encodings_are_refused() -> None:
    """The same values with wider msgpack headers: refused as NonCanonicalError, every time."""
    rng = random.Random(5)
    refused = 0
    for obj in CORPUS.objects:
        items = [obj.TYPE, obj.VERSION, *obj.fields().values()]
        for _ in range(40):
            data = pack_loose(items, rng)
            if data == obj.encode():
                continue
            with pytest.raises(NonCanonicalError):
                decode(data)
            refused += 1
    assert refused > 100


@pytest.mark.parametrize("header", [b"\xdb\xff\xff\xff\xff", b"\xc6\xff\xff\xff\xff", b"\xdd\xff\xff\xff\xff",
                                    b"\xdf\x00\x00\x00\x01", b"\xc9\x7f\xff\xff\xff\x01",
                                    b"\xdc\xff\xff"], ids=lambda h: h[:1].hex())
def test_huge_length_headers_fail_fast(header: bytes) -> None:
    for data in (header, b"\x93" + header + b"\x00" * 16, b"\x91" * 100 + header):
        with pytest.raises(DecodeError):
            decode(data)
        with pytest.raises(ChainError):
            list(decode_stream(header + data))


def test_nested_array_headers_stay_bounded_in_memory() -> None:
    """A 5 KB input of nested 100,000-item array headers: refused, without gigabytes of memory."""
    script = textwrap.dedent("""
        import resource
        from chain.errors import DecodeError
        from chain.objects import decode
        for depth in (1, 100, 1000, 5000):
            try:
                decode(b"\\xdd\\x00\\x01\\x86\\xa0" * depth)
            except DecodeError:
                pass
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    """)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         preexec_fn=limit)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.strip()) < 600, f"peak RSS {out.stdout.strip()} MiB"
