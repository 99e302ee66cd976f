"""Fixtures for the chain tests: deterministic keys, an arena with its verifiers, a real store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chain.builders import key, make_arena
from chain.keys import SigningKey
from chain.objects import Arena, Blob
from chain.store import Store


@dataclass
class World:
    """An arena (quorum 2 of 3 verifiers), its creator, verifiers, two authors and an outsider."""

    creator: SigningKey
    verifiers: list[SigningKey]
    authors: list[SigningKey]
    outsider: SigningKey
    arena: Arena
    script: Blob


@pytest.fixture(scope="session")
def world() -> World:
    verifiers = [key(1), key(2), key(3)]
    arena, blob = make_arena(key(0), [v.public for v in verifiers], quorum=2)
    return World(key(0), verifiers, [key(10), key(11)], key(99), arena, blob)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "home") as s:
        yield s


@pytest.fixture
def arena_store(store: Store, world: World) -> Store:
    store.add(world.script)
    store.add(world.arena)
    return store
