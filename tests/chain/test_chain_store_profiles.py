"""The store's profiles: stored beside the chain, newest per key, a v1 store upgraded with nothing lost."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.audit import validate_store
from chain.builders import key, make_proposal
from chain.errors import BadSignatureError, DecodeError, RefusedCharacterError
from chain.objects import Profile
from chain.profiles import current
from chain.store import DB_NAME, Store

T0 = 1_735_689_600_000


def make(name: str, ts: int, signer: int = 1, team: str = "") -> Profile:
    return Profile.create(key(signer), name=name, team=team, url="", timestamp=ts)


def test_profiles_are_stored_and_the_newest_per_key_is_current(store: Store) -> None:
    old, new, other = make("Ada", T0), make("Ada L.", T0 + 1), make("Bob", T0, signer=2)
    for p in (new, old, other):
        assert store.add(p)
    assert not store.add(old)  # held
    assert store.get(new.id) == new and store.counts()["profile"] == 3
    assert store.current_profiles() == {new.owner: new, other.owner: other}
    assert store.profiles(new.owner) == [old, new]
    assert store.profile_inventory() == sorted([new.id, other.id])
    assert list(store.iter_objects()) == [old, other, new]  # by (timestamp, id)
    assert validate_store(store, workers=0).objects == 3


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_store_agrees_with_chain_profiles_current(tmp_path: Path, data: st.DataObject) -> None:
    ps = data.draw(st.lists(st.builds(make, name=st.sampled_from(["a", "b"]), ts=st.integers(T0, T0 + 2),
                                      signer=st.integers(1, 3)), max_size=8, unique_by=lambda p: p.id))
    home = Path(tempfile.mkdtemp(dir=tmp_path))  # a fresh store for every example
    with Store.open(home) as s:
        for p in data.draw(st.permutations(ps)):
            s.add(p)
        assert s.current_profiles() == dict(sorted(current(ps).items()))
        assert s.profile_inventory() == sorted(p.id for p in current(ps).values())


def test_bad_profiles_are_refused_with_their_error_and_change_nothing(store: Store) -> None:
    store.add(make("Ada", T0))
    before = (store.counts(), store.data_version())
    good = make("Eve", T0)
    tampered = good.replace(name="Ada").encode()
    with pytest.raises(BadSignatureError):
        store.add_encoded(tampered)
    evil = bytearray(good.encode())
    evil[evil.index(b"Eve")] = 0x0A  # a control character where the name was
    with pytest.raises(DecodeError):
        store.add_encoded(bytes(evil))
    with pytest.raises(RefusedCharacterError):
        Profile.create(key(2), name="Ev\u202ee", team="", url="", timestamp=T0)
    assert (store.counts(), store.data_version()) == before


def test_a_profile_needs_no_arena_and_lives_beside_the_chain(arena_store: Store, world) -> None:
    p, blob = make_proposal(world.authors[0], world.arena, world.arena.id)
    arena_store.add(blob)
    arena_store.add(p)
    prof = make("Ada", T0, signer=10)
    arena_store.add(prof)
    assert prof.id not in arena_store.inventory(world.arena.id)  # arenas' inventories are unchanged
    assert validate_store(arena_store, workers=0).objects == 5  # arena, two blobs, proposal, profile


def test_a_version_1_store_is_upgraded_with_nothing_lost(tmp_path: Path, world) -> None:
    home = tmp_path / "old"
    with Store.open(home) as s:
        s.add(world.script)
        s.add(world.arena)
        p, blob = make_proposal(world.authors[0], world.arena, world.arena.id)
        s.add(blob)
        s.add(p)
        before = s.counts()
    conn = sqlite3.connect(home / DB_NAME)  # what a store written by the previous ratchet looks like
    conn.executescript("DROP TABLE profiles; PRAGMA user_version = 1;")
    conn.close()
    with Store.open(home) as s:
        assert s.counts() == before
        assert s.add(make("Ada", T0))
        assert s.current_profiles()[key(1).public].name == "Ada"
        assert validate_store(s, workers=0).objects == 5
    conn = sqlite3.connect(home / DB_NAME)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    conn.close()
