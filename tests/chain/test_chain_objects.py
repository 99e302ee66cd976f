"""Objects: hypothesis round trips, and every kind of tampering rejected with its named error."""

from __future__ import annotations

import struct
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.builders import key, make_arena, make_attestation, make_proposal
from chain.encoding import MAX_OBJECT_BYTES
from chain.errors import (
    ArityError,
    BadSignatureError,
    DecodeError,
    FieldTypeError,
    FieldValueError,
    IdMismatchError,
    MalformedError,
    NonCanonicalError,
    OversizeError,
    TrailingBytesError,
    UnknownTypeError,
    VersionError,
)
from chain.objects import (
    MAX_BLOB_BYTES,
    VERDICT_PATTERN,
    Arena,
    Attestation,
    Blob,
    ChainObject,
    Proposal,
    decode,
    decode_stream,
    encode_stream,
)
from chain.seeds import derive_seeds, seed_proof

# -- strategies ---------------------------------------------------------------------------

signers = st.integers(0, 7).map(key)
id32 = st.binary(min_size=32, max_size=32)
ubpb = st.integers(-(10**9), 10**9)
seed = st.integers(0, 2**31 - 1)
times = st.integers(0, 2**53)
short_text = st.text(max_size=40)  # at most 160 UTF-8 bytes
tiny_text = st.text(max_size=16)  # fits a 64-byte field


@st.composite
def arenas(draw: st.DrawFn) -> Arena:
    verifiers = sorted(draw(st.lists(id32, min_size=1, max_size=6, unique=True)))
    settings_ = draw(st.dictionaries(st.from_regex(r"[a-z0-9_.\-]{1,12}", fullmatch=True), short_text, max_size=4))
    return Arena.create(
        draw(signers), name=draw(st.from_regex(r"[a-z0-9][a-z0-9_\-]{0,30}", fullmatch=True)),
        description=draw(st.text(max_size=200)), script=draw(id32), harness=draw(tiny_text),
        dataset_name=draw(tiny_text), dataset_sha256=draw(st.sampled_from([b"", b"\x11" * 32])),
        dataset_source=draw(short_text), budget_kind=draw(st.sampled_from(["tokens", "seconds"])),
        budget_value=draw(st.integers(1, 10**13)), wall_cap_s=draw(st.integers(1, 7 * 86400)),
        hardware=draw(st.from_regex(r"[a-z0-9:_.\-]{1,20}", fullmatch=True)), seeds=draw(st.integers(1, 64)),
        quorum=draw(st.integers(1, len(verifiers))), verifiers=verifiers,
        margin_ubpb=draw(st.integers(0, 10**7)), max_script_bytes=draw(st.integers(1, MAX_BLOB_BYTES)),
        settings=sorted(settings_.items()), bootstrap=draw(st.lists(short_text, max_size=3)),
        created_at=draw(times),
    )


@st.composite
def proposals(draw: st.DrawFn) -> Proposal:
    return Proposal.create(
        draw(signers), arena=draw(id32), parent=draw(id32.filter(lambda b: b != b"\x00" * 32)),
        script=draw(id32), message=draw(st.text(max_size=300)), claim_parent_ubpb=draw(ubpb),
        claim_candidate_ubpb=draw(ubpb), claim_seeds=draw(st.lists(seed, max_size=8)),
        claim_hardware=draw(tiny_text), timestamp=draw(times),
    )


@st.composite
def attestations(draw: st.DrawFn) -> Attestation:
    verifier = draw(signers)
    proposal_id = draw(id32)
    proof = seed_proof(verifier, proposal_id)
    verdict = draw(st.from_regex(VERDICT_PATTERN, fullmatch=True))
    measured = verdict in ("improves", "no_gain")
    n = draw(st.integers(1 if measured else 0, 6))
    per_seed = st.lists(ubpb, min_size=n, max_size=n)
    maybe = per_seed if not measured else per_seed
    return Attestation.create(
        verifier, proposal=proposal_id, arena=draw(id32), seeds=derive_seeds(proof, n), seed_proof=proof,
        parent_ubpb=draw(maybe if measured else st.one_of(st.just([]), per_seed)),
        candidate_ubpb=draw(maybe if measured else st.one_of(st.just([]), per_seed)),
        floor_ubpb=draw(st.one_of(st.just([]), per_seed)), hardware=draw(tiny_text),
        harness=draw(tiny_text), verdict=verdict,
        flags=sorted(draw(st.sets(st.from_regex(r"[a-z0-9_.\-]{1,10}", fullmatch=True), max_size=3))),
        wall_ms=draw(st.integers(0, 10**10)), timestamp=draw(times),
    )


blobs = st.binary(max_size=4096).map(lambda d: Blob(data=d))
any_object = st.one_of(arenas(), proposals(), attestations(), blobs)


@settings(max_examples=150, deadline=None)
@given(obj=any_object)
def test_round_trip(obj: ChainObject) -> None:
    data = obj.encode()
    back = decode(data, expected_id=obj.id)
    assert back == obj and back.id == obj.id and back.encode() == data
    assert back.fields() == obj.fields()
    assert type(obj)(**obj.fields()).encode() == data  # construction is deterministic


@settings(max_examples=30, deadline=None)
@given(objs=st.lists(any_object, max_size=6))
def test_stream_round_trip(objs: list[ChainObject]) -> None:
    data = b"".join(encode_stream(objs))
    assert list(decode_stream(data)) == objs
    if objs:
        with pytest.raises(DecodeError):
            list(decode_stream(data[:-1]))
    with pytest.raises(TrailingBytesError):
        list(decode_stream(data + b"\xc4"))  # an unfinished bin header


# -- tampering ---------------------------------------------------------------------------------


def samples() -> list[ChainObject]:
    verifiers = [key(1), key(2)]
    arena, blob = make_arena(key(0), [v.public for v in verifiers], 2)
    p, _ = make_proposal(key(10), arena, arena.id, message="fix")
    return [arena, blob, p, make_attestation(verifiers[0], p)]


SAMPLES = samples()
SIGNED = [o for o in SAMPLES if o.SIGNER]


def items_of(obj: ChainObject) -> list[Any]:
    return msgpack.unpackb(obj.encode(), raw=False)


def repack(items: list[Any]) -> bytes:
    return msgpack.packb(items, use_bin_type=True)


def array(parts: list[bytes], force_wide: bool = False) -> bytes:
    """A msgpack array from already-encoded parts (to plant non-canonical encodings)."""
    n = len(parts)
    head = bytes([0x90 | n]) if n < 16 and not force_wide else b"\xdc" + struct.pack(">H", n)
    return head + b"".join(parts)


def field_index(obj: ChainObject, name: str) -> int:
    return 2 + obj.field_names().index(name)


@pytest.mark.parametrize("obj", SAMPLES, ids=lambda o: o.TYPE)
def test_every_flipped_bit_is_rejected_or_changes_the_id(obj: ChainObject) -> None:
    data = obj.encode()
    for bit in range(len(data) * 8):
        bad = bytearray(data)
        bad[bit // 8] ^= 1 << (bit % 8)
        try:
            got = decode(bytes(bad))
        except DecodeError:
            pass
        else:
            assert obj.SIGNER is None, f"bit {bit}: a flipped {obj.TYPE} still verifies"
            assert got.id != obj.id and got.encode() == bytes(bad)
        with pytest.raises(DecodeError):
            decode(bytes(bad), expected_id=obj.id)


@pytest.mark.parametrize("obj", SIGNED, ids=lambda o: o.TYPE)
def test_every_field_transposition_is_rejected(obj: ChainObject) -> None:
    items = items_of(obj)
    for i in range(2, len(items)):
        for j in range(i + 1, len(items)):
            if items[i] == items[j]:
                continue  # e.g. a first commit's arena and parent: swapping changes nothing
            swapped = list(items)
            swapped[i], swapped[j] = swapped[j], swapped[i]
            with pytest.raises((FieldTypeError, FieldValueError, OversizeError, BadSignatureError)):
                decode(repack(swapped))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_random_field_permutations_are_rejected(data: st.DataObject) -> None:
    obj = data.draw(st.sampled_from(SIGNED))
    items = items_of(obj)
    body = data.draw(st.permutations(items[2:]))
    if body == items[2:]:
        return
    with pytest.raises((FieldTypeError, FieldValueError, OversizeError, BadSignatureError)):
        decode(repack(items[:2] + body))


@pytest.mark.parametrize("obj", SAMPLES, ids=lambda o: o.TYPE)
def test_duplicated_and_missing_fields_are_arity_errors(obj: ChainObject) -> None:
    items = items_of(obj)
    for i in range(2, len(items)):
        with pytest.raises(ArityError) as e:
            decode(repack(items[: i + 1] + items[i:]))
        assert e.value.found == len(items) - 1
        with pytest.raises(ArityError):
            decode(repack(items[:i] + items[i + 1 :]))


@pytest.mark.parametrize("obj", SAMPLES, ids=lambda o: o.TYPE)
def test_truncation_and_trailing_bytes(obj: ChainObject) -> None:
    data = obj.encode()
    for n in range(len(data)):
        with pytest.raises(MalformedError):
            decode(data[:n])
    for extra in (b"\x00", b"\xc0", data):
        with pytest.raises(TrailingBytesError) as e:
            decode(data + extra)
        assert e.value.count == len(extra)


SMALL_INT = {"arena": "quorum", "proposal": "claim_parent_ubpb", "attestation": "wall_ms"}


@pytest.mark.parametrize("obj", SIGNED, ids=lambda o: o.TYPE)
def test_non_canonical_encodings_are_refused(obj: ChainObject) -> None:
    items = items_of(obj)
    parts = [repack(v) for v in items]
    i = field_index(obj, SMALL_INT[obj.TYPE])
    value = items[i]
    assert 0 < value < 2**32
    wide = list(parts)
    wide[i] = b"\xcf" + value.to_bytes(8, "big")  # uint64 where a shorter form exists
    with pytest.raises(NonCanonicalError):
        decode(array(wide, force_wide=len(parts) >= 16))
    version = list(parts)
    version[1] = b"\xcc" + bytes([obj.VERSION])  # the version as uint8
    with pytest.raises(NonCanonicalError):
        decode(array(version, force_wide=len(parts) >= 16))
    if len(parts) < 16:
        with pytest.raises(NonCanonicalError):
            decode(array(parts, force_wide=True))  # array16 header for a short array
    tag = list(parts)
    tag[0] = b"\xd9" + bytes([len(obj.TYPE)]) + obj.TYPE.encode()  # str8 for a short str
    with pytest.raises(NonCanonicalError):
        decode(array(tag, force_wide=len(parts) >= 16))
    assert decode(array(parts, force_wide=len(parts) >= 16)) == obj  # the helper itself is faithful


@pytest.mark.parametrize("obj", SIGNED, ids=lambda o: o.TYPE)
def test_wrong_value_kinds_are_field_type_errors(obj: ChainObject) -> None:
    items = items_of(obj)
    i = field_index(obj, "timestamp" if obj.TYPE != "arena" else "created_at")
    for wrong in (1.0, float(items[i]), True, False, None, str(items[i]), b"\x01", [], {}):
        bad = list(items)
        bad[i] = wrong
        with pytest.raises(FieldTypeError) as e:
            decode(repack(bad))
        assert e.value.field in ("timestamp", "created_at")
    j = field_index(obj, obj.SIGNER)
    for wrong in ("a" * 32, 5, [b"\x00" * 32]):
        bad = list(items)
        bad[j] = wrong
        with pytest.raises(FieldTypeError):
            decode(repack(bad))
    float32 = list(items)
    float32[i] = 1.5
    with pytest.raises(FieldTypeError):
        decode(msgpack.packb(float32, use_bin_type=True, use_single_float=True))


def test_structures_we_never_produce_are_malformed() -> None:
    p = SAMPLES[2]
    items = items_of(p)
    with pytest.raises(MalformedError):
        decode(msgpack.packb({"type": "proposal"}))
    bad = list(items)
    bad[3] = {"k": 1}
    with pytest.raises(MalformedError):
        decode(repack(bad))
    bad[3] = msgpack.ExtType(1, b"x")
    with pytest.raises(MalformedError):
        decode(repack(bad))
    with pytest.raises(MalformedError):
        decode(msgpack.packb(5))
    with pytest.raises(MalformedError):
        decode("not bytes")  # type: ignore[arg-type]
    i = field_index(p, "message")
    raw = array([repack(v) for v in items[:i]] + [b"\xa2\xff\xfe"] + [repack(v) for v in items[i + 1 :]])
    with pytest.raises(MalformedError):
        decode(raw)  # invalid UTF-8 in a str


def test_type_and_version_errors() -> None:
    items = items_of(SAMPLES[2])
    for tag in ("commit", "", 3, b"proposal", None):
        with pytest.raises(UnknownTypeError):
            decode(repack([tag, *items[1:]]))
    with pytest.raises(UnknownTypeError):
        decode(repack([]))
    for version in (2, 0, -1, True, "1", 1.0):
        with pytest.raises(VersionError):
            decode(repack([items[0], version, *items[2:]]))


def test_oversize_inputs() -> None:
    with pytest.raises(OversizeError):
        decode(b"\x91" + b"\xc6" + struct.pack(">I", MAX_OBJECT_BYTES) + b"\x00" * MAX_OBJECT_BYTES)
    with pytest.raises(OversizeError):
        decode(repack(["blob", 1, b"\x00" * (MAX_BLOB_BYTES + 1)]))
    p = SAMPLES[2]
    items = items_of(p)
    items[field_index(p, "message")] = "x" * 5000
    with pytest.raises(OversizeError):
        decode(repack(items))
    items = items_of(p)
    items[field_index(p, "claim_seeds")] = list(range(65))
    with pytest.raises(OversizeError):
        decode(repack(items))


def test_signature_and_id_errors() -> None:
    arena, blob, p, att = SAMPLES
    with pytest.raises(IdMismatchError):
        decode(p.encode(), expected_id=att.id)
    forged = Proposal.create(key(11), **{k: v for k, v in p.fields().items() if k not in ("author", "signature")})
    items = items_of(forged)
    items[field_index(p, "author")] = p.author  # claim to be the original author
    with pytest.raises(BadSignatureError):
        decode(repack(items))
    # An attestation whose seed proof is someone else's signature.
    other = make_attestation(key(2), p)
    fields = att.fields()
    fields.update(seed_proof=other.seed_proof, seeds=list(other.seeds))
    del fields["verifier"], fields["signature"]
    with pytest.raises(BadSignatureError):
        decode(Attestation.create(key(1), **fields).encode())
    # Seeds the verifier picked itself instead of deriving them.
    fields = att.fields()
    fields.update(seeds=[1, 2])
    del fields["verifier"], fields["signature"]
    with pytest.raises(FieldValueError):
        decode(Attestation.create(key(1), **fields).encode())


def test_field_value_rules() -> None:
    arena = SAMPLES[0]
    items = items_of(arena)
    items[field_index(arena, "quorum")] = len(arena.verifiers) + 1
    with pytest.raises(FieldValueError):
        decode(repack(items))
    items = items_of(arena)
    items[field_index(arena, "verifiers")] = list(reversed(arena.verifiers))
    with pytest.raises(FieldValueError):
        decode(repack(items))
    items = items_of(arena)
    items[field_index(arena, "name")] = "Has Spaces"
    with pytest.raises(FieldValueError):
        decode(repack(items))
    p = SAMPLES[2]
    items = items_of(p)
    items[field_index(p, "parent")] = b"\x00" * 32
    with pytest.raises(FieldValueError):
        decode(repack(items))
    att = SAMPLES[3]
    for verdict in ("improves!", "invalid:", "maybe", "cheat:UPPER"):
        items = items_of(att)
        items[field_index(att, "verdict")] = verdict
        with pytest.raises(FieldValueError):
            decode(repack(items))


def test_objects_are_immutable_and_typed() -> None:
    p = SAMPLES[2]
    with pytest.raises(AttributeError):
        p.message = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        p.nonexistent  # noqa: B018
    assert p.claimed_gain_ubpb == p.claim_parent_ubpb - p.claim_candidate_ubpb
    assert repr(p).startswith("Proposal(")
    assert SAMPLES[3].paired_gains == [1000, 1000] and SAMPLES[3].improves
