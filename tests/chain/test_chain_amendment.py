"""Amendments: the object (canonical, multi-signed, golden vector) and the rule that applies them (chain.verifiers).

The golden vector lives in tests/chain/golden_amendment/ (beside golden/, like golden_profile/); regenerate
deliberately (a protocol change) with `python tests/chain/test_chain_amendment.py --write`.
"""

from __future__ import annotations

import hashlib
import random
import sys
from pathlib import Path

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from test_chain_verifiers import F1, F2, F3, VOLUNTEERS, arena_of, build_chain, prop

from chain.builders import key, make_attestation
from chain.consensus import compute_state
from chain.errors import BadSignatureError, FieldValueError, UnknownArenaError
from chain.keys import SigningKey
from chain.objects import Amendment, decode
from chain.store import Store

GOLDEN = Path(__file__).parent / "golden_amendment"
NEW = key(300)


def seeded(n: int) -> SigningKey:
    return SigningKey.from_seed(bytes([n]) * 32)


def golden() -> Amendment:
    return Amendment.sign([seeded(2), seeded(1)], arena=b"\x11" * 32, height=7, retire=[b"\x22" * 32],
                          add=[b"\x33" * 32, b"\x44" * 32], quorum=2, reason="retire a lost key \u00e9",
                          timestamp=1_735_689_600_000)


def amend(arena, signers, height: int = 1, retire=(), add=(), quorum: int = 0, reason: str = "") -> Amendment:
    return Amendment.sign(list(signers), arena=arena.id, height=height, retire=sorted(k.public for k in retire),
                          add=sorted(k.public for k in add), quorum=quorum, reason=reason, timestamp=1)


# -- the object ---------------------------------------------------------------------------------

def test_golden_vector_is_unchanged_and_checks_with_a_second_library() -> None:
    built = golden()
    (path,) = sorted(GOLDEN.iterdir())
    assert path.name == built.hex and path.read_bytes() == built.encode()
    data = path.read_bytes()
    items = msgpack.unpackb(data, raw=False)
    assert items[:2] == ["amendment", 1]
    assert hashlib.sha256(b"ratchet/v1/id/amendment\x00" + data).hexdigest() == path.name
    payload = msgpack.packb(items[:-1], use_bin_type=True)  # everything but the signature list
    assert [k for k, _ in items[-1]] == sorted(k for k, _ in items[-1])
    for public, signature in items[-1]:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, b"ratchet/v1/amendment\x00" + payload)
    back = decode(data, expected_id=bytes.fromhex(path.name))
    assert back == built and back.signers == tuple(sorted((seeded(1).public, seeded(2).public)))


def test_every_signature_is_checked_and_the_encoding_is_canonical() -> None:
    a = golden()
    (k1, s1), (k2, s2) = a.signatures
    flipped = a.replace(signatures=[(k1, s1), (k2, bytes([s2[0] ^ 1]) + s2[1:])])
    with pytest.raises(BadSignatureError, match=r"signatures\[1\]"):
        decode(flipped.encode())
    with pytest.raises(FieldValueError, match="sorted"):
        a.replace(signatures=[(k2, s2), (k1, s1)])
    with pytest.raises(FieldValueError, match="sorted"):
        a.replace(signatures=[(k1, s1), (k1, s1)])
    with pytest.raises(FieldValueError):
        a.replace(signatures=[])
    with pytest.raises(FieldValueError, match="both"):
        a.replace(add=[b"\x22" * 32])
    with pytest.raises(FieldValueError, match="change something"):
        a.replace(retire=[], add=[], quorum=0)
    with pytest.raises(BadSignatureError):  # a changed payload breaks every signature
        decode(a.replace(reason="other").encode())


def test_the_store_keeps_amendments_of_known_arenas_and_lists_them(tmp_path: Path) -> None:
    arena = arena_of()
    with Store.open(tmp_path / "h") as s:
        s.add(arena)
        a = amend(arena, [F1, F2], height=2, retire=[F3])
        with pytest.raises(UnknownArenaError):
            s.add(golden())
        assert s.add(a) and not s.add(a)
        assert s.amendments(arena.id) == [a] and a.id in s.inventory(arena.id)
        assert s.counts()["amendment"] == 1
        assert s.add_encoded(a.encode()) == a


# -- the rule -----------------------------------------------------------------------------------

def test_a_quorum_of_counted_keys_retires_a_key_from_its_height_on() -> None:
    arena = arena_of()
    props, atts = build_chain(arena, 4, checkers=(F1, F3))
    retire = amend(arena, [F1, F2], height=3, retire=[F3], reason="key lost")
    s = compute_state(arena, props, atts, [retire])
    assert [s.commits[p.id].status for p in props] == ["accepted", "accepted", "pending", "pending"]
    assert s.standing.status(F3.public) == "retired" and F3.public not in s.standing.counted
    (note,) = s.standing.notes
    assert note.applied and note.height == 3 and note.retire == (F3.public,) and note.reason == "key lost"


def test_too_few_counted_signers_or_an_impossible_quorum_are_refused() -> None:
    arena = arena_of()
    props, atts = build_chain(arena, 3)
    lone = amend(arena, [F1, key(77)], height=2, retire=[F3])  # one counted signer of the two needed
    greedy = amend(arena, [F1, F2], height=2, quorum=4)  # four of three keys
    s = compute_state(arena, props, atts, [lone, greedy])
    assert s.standing.status(F3.public) == "founding" and s.standing.quorum == 2
    notes = {n.id: n for n in s.standing.notes}
    assert not notes[lone.id].applied and "1 counted signers of the 2" in notes[lone.id].note
    assert not notes[greedy.id].applied and "exceeds" in notes[greedy.id].note
    later = amend(arena, [F1, F2], height=9, retire=[F3])
    assert compute_state(arena, props, atts, [later]).standing.notes[0].note == "waits for height 9"


def test_added_founding_keys_and_a_new_quorum_decide_what_follows() -> None:
    arena = arena_of()
    props, atts = build_chain(arena, 2)
    grow = amend(arena, [F1, F2], height=3, add=[NEW], quorum=3)
    p3 = prop(arena, props[-1].id, "after the amendment")
    two = [make_attestation(k, p3, "improves") for k in (F1, F2)]
    s = compute_state(arena, [*props, p3], atts + two, [grow])
    assert s.standing.status(NEW.public) == "founding" and s.standing.quorum == 3
    assert s.commits[p3.id].status == "pending"  # two improves: below the new quorum
    s2 = compute_state(arena, [*props, p3], atts + two + [make_attestation(NEW, p3, "improves")], [grow])
    assert s2.commits[p3.id].status == "accepted"


def test_amendments_in_any_order_give_the_same_state() -> None:
    arena = arena_of()
    props, atts = build_chain(arena, 30, volunteers=VOLUNTEERS[:2])
    ams = [amend(arena, [F1, F2], height=4, retire=[F3]), amend(arena, [F1, F2], height=4, add=[NEW]),
           amend(arena, [F2, F3], height=6, quorum=3), amend(arena, [F1, NEW], height=12, retire=[VOLUNTEERS[0]])]
    first = compute_state(arena, props, atts, ams)
    rng = random.Random(5)
    for _ in range(3):
        rng.shuffle(ams)
        rng.shuffle(atts)
        assert compute_state(arena, list(reversed(props)), atts, ams) == first


def write() -> None:
    GOLDEN.mkdir(exist_ok=True)
    for old in GOLDEN.iterdir():
        old.unlink()
    built = golden()
    (GOLDEN / built.hex).write_bytes(built.encode())


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write()
        print(f"wrote {GOLDEN}")
    else:
        print(__doc__)
