"""Seed corpus and mutation engine shared by the hardening tests and scripts/fuzz.py.

Byte-level mutation of valid encodings finds the most: a mutant starts as bytes
the decoder fully understands, so one flipped bit or cut exercises one check
deep inside it. Alongside the byte mutators: msgpack type confusion (a field
replaced by a value of another type), non-canonical re-encodings (the same
value with wider headers), huge length headers, splices of two valid objects,
and re-signed semantic mutants (a field changed to a well-typed value and the
object signed again by a known key) that get past decoding and reach the
store's rules.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from chain.builders import key, make_arena, make_attestation, make_proposal
from chain.errors import ChainError
from chain.keys import SigningKey
from chain.objects import (
    Amendment,
    Attestation,
    Blob,
    ChainObject,
    Profile,
    Proposal,
    encode_stream,
)
from chain.seeds import derive_seeds, seed_proof

KEYS: dict[bytes, SigningKey] = {k.public: k for k in (key(n) for n in (0, 1, 2, 3, 10, 11, 99))}


@dataclass
class Corpus:
    """Valid objects: `preload` goes into the store before fuzzing; `extra` are valid but not stored."""

    preload: list[ChainObject]
    extra: list[ChainObject]
    ids: list[bytes] = field(default_factory=list)

    @property
    def objects(self) -> list[ChainObject]:
        return self.preload + self.extra

    def encodings(self) -> list[bytes]:
        return [o.encode() for o in self.objects]

    def streams(self) -> list[bytes]:
        objs = self.objects
        out = [b"".join(encode_stream(objs[i : i + 3])) for i in range(0, len(objs), 3)]
        return out + [b"".join(encode_stream(self.preload))]


def build_corpus() -> Corpus:
    """An arena (quorum 2 of 3), a short chain with every verdict kind, and a second arena."""
    verifiers = [key(1), key(2), key(3)]
    arena, script = make_arena(key(0), [v.public for v in verifiers], quorum=2)
    other, other_script = make_arena(key(0), [key(3).public], quorum=1, name="other",
                                      script=b"# other reference\n")
    p1, b1 = make_proposal(key(10), arena, arena.id, message="lower lr")
    p2, b2 = make_proposal(key(11), arena, p1.id, message="wider mlp", timestamp=1_700_000_005_000)
    p3, b3 = make_proposal(key(10), arena, p2.id, message="not yet stored", timestamp=1_700_000_009_000)
    big = Blob(data=bytes(range(256)) * 300)  # a bin32-sized blob (76,800 bytes)
    a1 = [make_attestation(v, p1) for v in verifiers[:2]]
    a2 = [
        make_attestation(verifiers[0], p2, "no_gain", gain_ubpb=-50),
        make_attestation(verifiers[1], p2, "invalid:syntax_error"),
        _rich_attestation(verifiers[2], p2),
    ]
    ada = Profile.create(key(10), name="Ada", team="Rockets", url="https://ada.example/", timestamp=1)
    renamed = Profile.create(key(10), name="Ad\u00e0 \u674e", team="", url="", timestamp=2)  # supersedes ada
    retire = Amendment.sign(verifiers[:2], arena=arena.id, height=5, retire=[verifiers[2].public],
                            add=[key(4).public], quorum=0, reason="a lost key", timestamp=3)
    preload: list[ChainObject] = [script, arena, other_script, other, b1, p1, *a1, b2, p2, *a2, ada, retire]
    extra: list[ChainObject] = [b3, p3, make_attestation(verifiers[0], p3), big,
                                make_attestation(verifiers[2], p1, "cheat:peeks_future"), renamed]
    corpus = Corpus(preload, extra)
    corpus.ids = [o.id for o in corpus.objects]
    return corpus


def _rich_attestation(v: SigningKey, p: Proposal) -> Attestation:
    """An attestation with floors, flags and 3 seeds: every optional field filled."""
    proof = seed_proof(v, p.id)
    return Attestation.create(
        v, proposal=p.id, arena=p.arena, seeds=derive_seeds(proof, 3), seed_proof=proof,
        parent_ubpb=[1_500_000, 1_499_000, 1_501_000], candidate_ubpb=[1_499_500, 1_498_800, 1_500_100],
        floor_ubpb=[900_000, 901_000, 899_000], hardware="cpu", harness="test-1", verdict="improves",
        flags=["slow", "warm-cache"], wall_ms=61_000, timestamp=1_700_000_006_000,
    )


# -- a loose msgpack encoder: the same values with wider (non-canonical) headers ----------------
def pack_loose(value: Any, rng: random.Random) -> bytes:
    if value is None:
        return b"\xc0"
    if value is True or value is False:
        return b"\xc3" if value else b"\xc2"
    if isinstance(value, int):
        forms = []
        if 0 <= value < 128:
            forms.append(bytes([value]))
        if -32 <= value < 0:
            forms.append(struct.pack("b", value))
        for code, fmt, lo, hi in ((0xCC, ">B", 0, 255), (0xCD, ">H", 0, 2**16 - 1),
                                  (0xCE, ">I", 0, 2**32 - 1), (0xCF, ">Q", 0, 2**64 - 1),
                                  (0xD0, ">b", -128, 127), (0xD1, ">h", -(2**15), 2**15 - 1),
                                  (0xD2, ">i", -(2**31), 2**31 - 1), (0xD3, ">q", -(2**63), 2**63 - 1)):
            if lo <= value <= hi:
                forms.append(bytes([code]) + struct.pack(fmt, value))
        return rng.choice(forms) if forms else msgpack.packb(value)
    if isinstance(value, float):
        double = b"\xcb" + struct.pack(">d", value)
        try:
            return rng.choice([b"\xca" + struct.pack(">f", value), double])
        except OverflowError:  # too large for a float32
            return double
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        return _header(len(data), rng, 0xA0, 32, (0xD9, 0xDA, 0xDB)) + data
    if isinstance(value, bytes):
        return _header(len(value), rng, None, 0, (0xC4, 0xC5, 0xC6)) + value
    if isinstance(value, list | tuple):
        head = _header(len(value), rng, 0x90, 16, (None, 0xDC, 0xDD))
        return head + b"".join(pack_loose(v, rng) for v in value)
    return msgpack.packb(value, use_bin_type=True)


def _header(n: int, rng: random.Random, fix: int | None, fix_max: int, codes: tuple[int | None, ...]) -> bytes:
    forms = []
    if fix is not None and n < fix_max:
        forms.append(bytes([fix | n]))
    for code, width in zip(codes, (1, 2, 4), strict=True):
        if code is not None and n < 256**width:
            forms.append(bytes([code]) + n.to_bytes(width, "big"))
    return rng.choice(forms)


# -- the mutator -------------------------------------------------------------------------------
INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xC3,
                     0xC4, 0xC5, 0xC6, 0xC7, 0xCA, 0xCB, 0xCC, 0xCF, 0xD3, 0xD4, 0xD9, 0xDB, 0xDC,
                     0xDD, 0xDE, 0xDF, 0xE0)
HUGE_HEADERS = (b"\xdb\xff\xff\xff\xff", b"\xc6\xff\xff\xff\xff", b"\xdd\xff\xff\xff\xff",
                b"\xdf\xff\xff\xff\xff", b"\xc6\x7f\xff\xff\xff", b"\xdd\x00\x01\x86\xa0",
                b"\xdc\xff\xff", b"\xc9\xff\xff\xff\xff\x01", b"\xdb\x00\x10\x00\x01")


def confusing_values(rng: random.Random) -> list[Any]:
    return [None, True, False, 0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 1.5, float("nan"), float("inf"),
            "", "x" * rng.randrange(1, 5000), "\udcff", b"", b"\x00" * 32, b"\xff" * 64,
            bytes(rng.randrange(256) for _ in range(rng.randrange(0, 100))), [], [0] * 1001, [[[]]],
            {"a": 1}, {}, msgpack.ExtType(1, b"x"), [b"\x00" * 32] * 3, ["improves"], 10**9 + 1]


class Mutator:
    """Applies 1..n random mutations to an input; `last_ops` names what was done."""

    def __init__(self, rng: random.Random, corpus: Corpus) -> None:
        self.rng = rng
        self.corpus = corpus
        self.pool = corpus.encodings()
        self.last_ops: list[str] = []
        byte_ops: list[Callable[[bytes], bytes]] = [
            self.flip_bit, self.flip_bit, self.flip_bit, self.set_byte, self.set_byte, self.add_byte,
            self.truncate, self.truncate, self.delete_range, self.duplicate_range, self.insert_random,
            self.splice, self.splice, self.overwrite_from_other, self.append_trailing, self.huge_header,
        ]
        tree_ops: list[Callable[[bytes], bytes]] = [
            self.type_confusion, self.type_confusion, self.loose_encoding, self.drop_or_add_field,
            self.resign, self.resign, self.resign,
        ]
        self.ops = byte_ops * 2 + tree_ops

    def mutate(self, data: bytes, max_ops: int = 3) -> bytes:
        self.last_ops = []
        for _ in range(self.rng.randint(1, max_ops)):
            op = self.rng.choice(self.ops)
            self.last_ops.append(op.__name__)
            data = op(data)
        return data

    # byte level
    def _pos(self, data: bytes) -> int:
        return self.rng.randrange(len(data)) if data else 0

    def flip_bit(self, d: bytes) -> bytes:
        if not d:
            return b"\x00"
        i = self._pos(d)
        return d[:i] + bytes([d[i] ^ (1 << self.rng.randrange(8))]) + d[i + 1 :]

    def set_byte(self, d: bytes) -> bytes:
        i = self._pos(d)
        # header bytes sit at the front and before each field: weight the first 64 bytes.
        if d and self.rng.random() < 0.5:
            i = self.rng.randrange(min(len(d), 64))
        return d[:i] + bytes([self.rng.choice(INTERESTING_BYTES)]) + d[i + 1 :]

    def add_byte(self, d: bytes) -> bytes:
        if not d:
            return b"\x01"
        i = self._pos(d)
        return d[:i] + bytes([(d[i] + self.rng.choice((1, -1, 16, -16))) % 256]) + d[i + 1 :]

    def truncate(self, d: bytes) -> bytes:
        return d[: self.rng.randrange(len(d))] if d else d

    def delete_range(self, d: bytes) -> bytes:
        i = self._pos(d)
        return d[:i] + d[i + self.rng.randint(1, 64) :]

    def duplicate_range(self, d: bytes) -> bytes:
        i = self._pos(d)
        j = min(len(d), i + self.rng.randint(1, 64))
        return d[:j] + d[i:j] + d[j:]

    def insert_random(self, d: bytes) -> bytes:
        i = self._pos(d)
        return d[:i] + self.rng.randbytes(self.rng.randint(1, 16)) + d[i:]

    def splice(self, d: bytes) -> bytes:
        other = self.rng.choice(self.pool)
        return d[: self._pos(d)] + other[self._pos(other) :]

    def overwrite_from_other(self, d: bytes) -> bytes:
        other = self.rng.choice(self.pool)
        i, j = self._pos(d), self._pos(other)
        n = self.rng.randint(1, 64)
        chunk = other[j : j + n]
        return d[:i] + chunk + d[i + len(chunk) :]

    def append_trailing(self, d: bytes) -> bytes:
        return d + self.rng.choice([b"\x00", b"\xc0", self.rng.choice(self.pool)])

    def huge_header(self, d: bytes) -> bytes:
        i = self._pos(d)
        head = self.rng.choice(HUGE_HEADERS)
        return d[:i] + head + (d[i + len(head) :] if self.rng.random() < 0.5 else d[i:])

    # structure level (fall back to a bit flip when the input no longer parses)
    def _tree(self, d: bytes) -> list[Any] | None:
        try:
            value = msgpack.unpackb(d, raw=False, strict_map_key=False)
        except (ValueError, msgpack.UnpackException, TypeError, UnicodeDecodeError, RecursionError):
            return None
        return value if isinstance(value, list) and value else None

    def type_confusion(self, d: bytes) -> bytes:
        tree = self._tree(d)
        if tree is None:
            return self.flip_bit(d)
        target = tree
        i = self.rng.randrange(len(tree))
        if isinstance(tree[i], list) and tree[i] and self.rng.random() < 0.4:
            target, i = tree[i], self.rng.randrange(len(tree[i]))
        target[i] = self.rng.choice(confusing_values(self.rng))
        return _packb(tree, use_bin_type=self.rng.random() < 0.9)

    def loose_encoding(self, d: bytes) -> bytes:
        tree = self._tree(d)
        return self.flip_bit(d) if tree is None else pack_loose(tree, self.rng)

    def drop_or_add_field(self, d: bytes) -> bytes:
        tree = self._tree(d)
        if tree is None:
            return self.truncate(d)
        i = self.rng.randrange(len(tree) + 1)
        if self.rng.random() < 0.5 and len(tree) > 1:
            del tree[min(i, len(tree) - 1)]
        else:
            tree.insert(i, self.rng.choice(tree))
        return _packb(tree)

    def resign(self, d: bytes) -> bytes:
        """A corpus object with one field changed to a well-typed value, signed again."""
        obj = self.rng.choice(self.corpus.objects)
        cls = type(obj)
        fields = obj.fields()
        name = self.rng.choice([n for n in cls.field_names() if n != "signature"])
        fields[name] = self._plausible(name, fields[name])
        if cls.SIGNER is None:
            return _raw_encoding(cls, fields)
        signer = KEYS.get(fields[cls.SIGNER])
        if signer is None or self.rng.random() < 0.2:
            signer = KEYS[self.rng.choice(list(KEYS))]
        fields[cls.SIGNER] = signer.public
        if cls is Attestation and self.rng.random() < 0.8:
            proof = seed_proof(signer, fields["proposal"])
            fields["seed_proof"] = proof
            fields["seeds"] = derive_seeds(proof, len(fields["seeds"]))
        fields.pop("signature")
        try:
            return cls.create(signer, **fields).encode()
        except (ChainError, TypeError) as e:  # construction refused the values: send them unsigned
            self.last_ops.append(f"resign-refused:{type(e).__name__}")
            return _raw_encoding(cls, {**fields, "signature": obj.signature})

    def _plausible(self, name: str, value: Any) -> Any:
        r = self.rng
        if isinstance(value, bytes) and len(value) == 32:
            return r.choice([*self.corpus.ids, *KEYS, r.randbytes(32), b"\x00" * 32])
        if isinstance(value, bytes):
            return r.randbytes(r.choice([0, 1, len(value), 64, 4096]))
        if isinstance(value, int):
            return r.choice([0, 1, -1, value + 1, value - 1, value * 1000, 2**53, 2**31, -(10**9)])
        if isinstance(value, str):
            if name == "verdict":
                return r.choice(["improves", "no_gain", "invalid:x", "cheat:y", "improves ", "IMPROVES", "invalid:"])
            return r.choice(["", value + "!", "a" * 70, "<script>alert(1)</script>", "é\u202e", value[::-1]])
        if isinstance(value, tuple):
            if value and isinstance(value[0], tuple):
                return (*value, ("zz", "1")) if r.random() < 0.5 else value[::-1]
            return r.choice([(), value[:-1], (*value, *value), value[::-1], tuple(range(65))])
        return value


def _packb(value: Any, use_bin_type: bool = True) -> bytes:
    """msgpack as a sloppy peer might send it (lone surrogates in strings allowed)."""
    return msgpack.Packer(use_bin_type=use_bin_type, unicode_errors="surrogatepass").pack(value)


def _raw_encoding(cls: type[ChainObject], fields: dict[str, Any]) -> bytes:
    values = [fields[n] for n in cls.field_names()]
    return _packb([cls.TYPE, cls.VERSION, *values])


