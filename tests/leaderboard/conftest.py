"""Fixtures for the leaderboard tests (helpers live in lb_world.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lb_world import World, build_world

from chain.store import Store


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build_world(tmp_path / "home")


@pytest.fixture
def empty_home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "empty"
    Store.open(home).close()
    yield home
