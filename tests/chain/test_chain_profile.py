"""Profile objects: round trips, tampering, every refused character class, newest wins, look-alikes.

The golden profile vector lives in tests/chain/golden_profile/ (beside, not inside, golden/, whose
vectors stay byte-for-byte what they were); regenerate it deliberately with
`python tests/chain/test_chain_profile.py --write`.
"""

from __future__ import annotations

import hashlib
import sys
import unicodedata
from pathlib import Path
from typing import Any

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.builders import key
from chain.errors import (
    BadSignatureError,
    DecodeError,
    FieldTypeError,
    FieldValueError,
    NonCanonicalError,
    OversizeError,
    RefusedCharacterError,
)
from chain.keys import SigningKey
from chain.names import (
    BIDI,
    CONTROL,
    INVISIBLE,
    MAX_MARKS,
    MAX_NAME_CHARS,
    MAX_TEAM_CHARS,
    MAX_URL_CHARS,
    NONCHARACTER,
    PRIVATE,
    SEPARATOR,
    SURROGATE,
    clean,
    refused_kind,
    skeleton,
)
from chain.objects import TYPES, Profile, decode
from chain.profiles import current, look_alikes, newer, sign_profile, team_id

GOLDEN = Path(__file__).parent / "golden_profile"
T0 = 1_735_689_600_000


def make(name: str = "Ada", team: str = "", url: str = "", ts: int = T0, signer: int = 1) -> Profile:
    return Profile.create(key(signer), name=name, team=team, url=url, timestamp=ts)


def signed_items(items: list[Any], signer: SigningKey) -> bytes:
    """An encoding of `items` (without signature) correctly signed: field rules are what is tested."""
    payload = msgpack.packb(items, use_bin_type=True)
    return msgpack.packb([*items, signer.sign("profile", payload)], use_bin_type=True)


def raw_profile(name: str, team: str = "", url: str = "", signer: SigningKey | None = None) -> bytes:
    signer = signer or key(1)
    return signed_items(["profile", 1, name, team, url, T0, signer.public], signer)


# -- round trips ------------------------------------------------------------------------------

display = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Co", "Zl", "Zp", "Mn", "Me")),
                  min_size=1, max_size=MAX_NAME_CHARS).map(clean).filter(
                      lambda s: bool(s) and not any(refused_kind(c) for c in s))


@settings(max_examples=200, deadline=None)
@given(name=display, team=st.one_of(st.just(""), display), ts=st.integers(0, 2**53), signer=st.integers(0, 5),
       url=st.sampled_from(["", "https://example.org", "http://a.b:8080/x?y=1#z", "https://xn--bcher-kva.example/"]))
def test_round_trip(name: str, team: str, ts: int, signer: int, url: str) -> None:
    p = Profile.create(key(signer), name=name, team=team, url=url, timestamp=ts)
    back = decode(p.encode(), expected_id=p.id)
    assert back == p and back.fields() == p.fields() and back.owner == key(signer).public
    assert TYPES["profile"] is Profile


def test_golden_vector_is_unchanged_and_checks_with_a_second_library() -> None:
    built = golden()
    (path,) = sorted(GOLDEN.iterdir())
    assert path.name == built.hex and path.read_bytes() == built.encode()
    data = path.read_bytes()
    items = msgpack.unpackb(data, raw=False)
    assert hashlib.sha256(b"ratchet/v1/id/profile\x00" + data).hexdigest() == path.name
    payload = msgpack.packb(items[:-1], use_bin_type=True)
    Ed25519PublicKey.from_public_bytes(items[-2]).verify(items[-1], b"ratchet/v1/profile\x00" + payload)
    assert decode(data, expected_id=bytes.fromhex(path.name)).name == "Grace Hopper \u00e9"


def golden() -> Profile:
    return Profile.create(SigningKey.from_seed(bytes([4]) * 32), name="Grace Hopper \u00e9", team="Navy",
                          url="https://example.org/grace", timestamp=T0)


# -- tampering ----------------------------------------------------------------------------------

def test_every_flipped_bit_is_rejected() -> None:
    p = make(team="Team", url="https://e.org")
    data = p.encode()
    for bit in range(len(data) * 8):
        bad = bytearray(data)
        bad[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(DecodeError):
            decode(bytes(bad))


def test_a_changed_field_or_another_signer_fails_the_signature() -> None:
    p = make()
    with pytest.raises(BadSignatureError):
        decode(p.replace(name="Eve").encode())
    with pytest.raises(BadSignatureError):
        decode(p.replace(owner=key(2).public).encode())
    forged = Profile.create(key(2), name="Ada", team="", url="", timestamp=T0)
    with pytest.raises(BadSignatureError):
        decode(forged.replace(owner=key(1).public, signature=forged.signature).encode())


def test_wrong_types_and_shapes_are_named() -> None:
    with pytest.raises(FieldTypeError, match="profile.name: expected str"):
        decode(signed_items(["profile", 1, b"Ada", "", "", T0, key(1).public], key(1)))
    with pytest.raises(FieldTypeError, match="profile.timestamp: expected int"):
        decode(signed_items(["profile", 1, "Ada", "", "", True, key(1).public], key(1)))
    with pytest.raises(DecodeError, match="expected 6 fields"):
        decode(msgpack.packb(["profile", 1, "Ada", "", T0, key(1).public, b"s" * 64], use_bin_type=True))


# -- refused text -------------------------------------------------------------------------------

REFUSED = [
    ("\x00", CONTROL), ("\n", CONTROL), ("\t", CONTROL), ("\x7f", CONTROL), ("\x85", CONTROL), ("\x9b", CONTROL),
    ("\u202e", BIDI), ("\u202d", BIDI), ("\u202a", BIDI), ("\u2066", BIDI), ("\u2069", BIDI), ("\u200f", BIDI),
    ("\u061c", BIDI),
    ("\u2028", SEPARATOR), ("\u2029", SEPARATOR),
    ("\u200b", INVISIBLE), ("\u2060", INVISIBLE), ("\ufeff", INVISIBLE), ("\u00ad", INVISIBLE),
    ("\u3164", INVISIBLE), ("\U000e0041", INVISIBLE), ("\u034f", INVISIBLE),
    ("\ue000", PRIVATE), ("\U000f0000", PRIVATE), ("\U0010fffd", PRIVATE),
    ("\ufdd0", NONCHARACTER), ("\uffff", NONCHARACTER), ("\U0001fffe", NONCHARACTER),
    ("\ud800", SURROGATE),
]


@pytest.mark.parametrize(("char", "kind"), REFUSED, ids=lambda v: f"U+{ord(v):04X}" if len(v) == 1 else v)
@pytest.mark.parametrize("field", ["name", "team"])
def test_each_refused_class_is_named_with_its_code_point(char: str, kind: str, field: str) -> None:
    text = f"Al{char}ice"
    assert refused_kind(char) == kind
    with pytest.raises(RefusedCharacterError) as info:
        Profile.create(key(1), **{"name": "Ada", "team": "", field: text}, url="", timestamp=T0)
    err = info.value
    assert (err.kind, err.char, err.position, err.field) == (kind, char, 2, field)
    assert f"U+{ord(char):04X}" in str(err) and kind in str(err)
    if kind != SURROGATE:  # a lone surrogate cannot be UTF-8 encoded at all: msgpack refuses it earlier
        with pytest.raises(RefusedCharacterError):
            decode(raw_profile(**{"name": "Ada", field: text}))


def test_joiners_variation_selectors_and_ordinary_scripts_are_allowed() -> None:
    for name in ["\u0410\u0434\u0430", "\u674e\u5c0f\u9f99", "\u0645\u0631\u064a\u0645",
                 "\U0001f468\u200d\U0001f469", "\u2764\ufe0f", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
                 "O'Brien & Sons <ok>"]:
        assert make(name=name).name == name


def test_non_nfc_text_is_refused_and_clean_normalises() -> None:
    decomposed = "Jose\u0301"
    with pytest.raises(FieldValueError, match="NFC"):
        make(name=decomposed)
    with pytest.raises(FieldValueError, match="NFC"):
        decode(raw_profile(decomposed))
    assert clean(f"  {decomposed}\u3000") == "Jos\u00e9"
    assert sign_profile(key(1), f" {decomposed} ", now_ms=T0).name == "Jos\u00e9"


def test_whitespace_empty_and_lengths() -> None:
    for bad in (" Ada", "Ada ", "\u00a0Ada"):
        with pytest.raises(FieldValueError, match="whitespace"):
            make(name=bad)
    with pytest.raises(FieldValueError, match="must not be empty"):
        make(name="")
    make(team="")  # no team
    assert make(name="x" * MAX_NAME_CHARS).name == "x" * MAX_NAME_CHARS
    assert len(make(name="\U0001f600" * MAX_NAME_CHARS).name) == MAX_NAME_CHARS  # characters, not bytes
    for field, limit in (("name", MAX_NAME_CHARS), ("team", MAX_TEAM_CHARS)):
        with pytest.raises(OversizeError, match=f"profile.{field}"):
            Profile.create(key(1), **{"name": "Ada", "team": "", field: "x" * (limit + 1)}, url="", timestamp=T0)
    with pytest.raises(OversizeError, match="profile.url"):
        make(url="https://e.org/" + "x" * MAX_URL_CHARS)


def test_combining_marks_are_bounded() -> None:
    assert make(name="x" + "\u0301" * MAX_MARKS).name  # no precomposed x with acute: NFC as it is
    with pytest.raises(FieldValueError, match="combining marks"):
        make(name="x" + "\u0301" * (MAX_MARKS + 1))


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,x", "ftp://e.org", "https://",
                                 "https://e.org/a b", "https://\u00e9.org", 'https://e.org/"><script>',
                                 "//e.org", " https://e.org", "https://e.org\n"])
def test_only_plain_http_urls(url: str) -> None:
    with pytest.raises(FieldValueError, match="profile.url"):
        make(url=url)


def test_non_canonical_bytes_are_refused() -> None:
    p = make()
    items = msgpack.unpackb(p.encode(), raw=False)
    wide = b"\xdc\x00\x08" + p.encode()[1:]  # the same array with a 16-bit length header
    assert len(items) == 8
    with pytest.raises(NonCanonicalError):
        decode(wide)


# -- newest wins --------------------------------------------------------------------------------

profiles = st.lists(st.builds(make, name=st.sampled_from(["a", "b", "c"]), ts=st.integers(T0, T0 + 3),
                              signer=st.integers(1, 3)), max_size=12)


@settings(max_examples=150, deadline=None)
@given(ps=profiles, data=st.data())
def test_newest_wins_whatever_the_order(ps: list[Profile], data: st.DataObject) -> None:
    got = current(ps)
    shuffled = data.draw(st.permutations(ps))
    assert current(shuffled) == got
    assert current(ps + ps[: len(ps) // 2]) == got  # duplicates change nothing
    for owner, p in got.items():
        mine = [q for q in ps if q.owner == owner]
        assert p in mine and not any(newer(q, p) for q in mine)
        assert p == max(mine, key=lambda q: (q.timestamp, q.id))
    assert set(got) == {p.owner for p in ps}


def test_ties_go_to_the_greater_id_and_a_new_profile_supersedes_an_older_clock() -> None:
    a, b = make(name="a"), make(name="b")
    assert current([a, b]) == current([b, a]) == {a.owner: max(a, b, key=lambda p: p.id)}
    ahead = make(ts=T0 + 10_000)
    again = sign_profile(key(1), "Ada again", previous=ahead, now_ms=T0)  # this clock is behind
    assert again.timestamp == T0 + 10_001 and current([ahead, again])[again.owner] == again
    with pytest.raises(FieldValueError, match="supersede"):
        sign_profile(key(1), "x", previous=make(ts=2**53))


# -- look-alikes --------------------------------------------------------------------------------

@pytest.mark.parametrize(("a", "b"), [
    ("Alice", "alice"), ("Alice", "\u0410lice"), ("Alice", "AL1CE"), ("paypal", "\u0440\u0430ypal"),
    ("Bill", "BiII"), ("NIKO", "\u039d\u0399\u039a\u039f"), ("mary", "rnary"), ("Mary", "\uff2d\uff41\uff52\uff59"),
    ("bob", "b0b"), ("Ann Lee", "Ann   Lee"), ("zoe", "zo\u200de"), ("Eve", "\u0395ve"), ("hook", "\u04bbook"),
])
def test_look_alike_names_share_a_skeleton(a: str, b: str) -> None:
    assert skeleton(a) == skeleton(b)


@pytest.mark.parametrize(("a", "b"), [("Alice", "Alicia"), ("Jos\u00e9", "Jose"), ("Bob", "Rob"), ("ann", "anne")])
def test_different_names_do_not(a: str, b: str) -> None:
    assert skeleton(a) != skeleton(b)


def test_look_alikes_mark_every_key_of_a_group_and_teams_by_name() -> None:
    ps = current([make("Alice", team="Rockets", signer=1), make("\u0410lice", team="R\u043eckets", signer=2),
                  make("Bob", team="Rockets", signer=3), make("alice", signer=4)])
    found = look_alikes(ps)
    k = [key(i).public for i in range(5)]
    assert set(found.names) == {k[1], k[2], k[4]}
    assert set(found.names[k[1]]) == {k[2], k[4]} and k[3] not in found.names
    assert found.teams == {"Rockets": ("R\u043eckets",), "R\u043eckets": ("Rockets",)}
    assert team_id("Rockets") != team_id("R\u043eckets") and len(team_id("x")) == 16


def test_the_refused_table_is_fixed_not_read_from_this_python() -> None:
    # The classes are tables in chain.names: a different Unicode database does not change them.
    assert unicodedata.category("\u202e") == "Cf" and refused_kind("\u202e") == BIDI
    assert refused_kind("a") is None and refused_kind("\u200d") is None


def write() -> None:
    GOLDEN.mkdir(exist_ok=True)
    for old in GOLDEN.iterdir():
        old.unlink()
    p = golden()
    (GOLDEN / p.hex).write_bytes(p.encode())


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write()
        print(f"wrote the profile vector to {GOLDEN}")
    else:
        print(__doc__)
