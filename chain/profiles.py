"""Profiles: which one a key goes by, signing a new one, and which names and teams look alike.

Pure functions of the profiles given, independent of the order they arrived
in: every node that holds the same profiles shows the same names.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from chain.errors import FieldValueError
from chain.keys import SigningKey
from chain.names import clean, skeleton
from chain.objects import TIME_MAX, Profile

TEAM_ID_HEX = 16  # a team's id: the first 16 hex characters of SHA-256 over its name


def newer(a: Profile, b: Profile) -> bool:
    """Whether `a` supersedes `b` (same key): the later timestamp, on a tie the greater id."""
    return (a.timestamp, a.id) > (b.timestamp, b.id)


def current(profiles: Iterable[Profile]) -> dict[bytes, Profile]:
    """Each key's profile: the newest it signed (by timestamp, ties by id), whatever the order given."""
    out: dict[bytes, Profile] = {}
    for p in profiles:
        held = out.get(p.owner)
        if held is None or newer(p, held):
            out[p.owner] = p
    return out


def sign_profile(key: SigningKey, name: str, team: str = "", url: str = "",
                 previous: Profile | None = None, now_ms: int | None = None) -> Profile:
    """A new profile of `key` from typed text (normalised with chain.names.clean), dated so that it
    supersedes `previous` even when this clock is behind the one that dated it."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if previous is not None:
        if previous.timestamp >= TIME_MAX:
            raise FieldValueError(Profile.TYPE, "timestamp", "the current profile is dated at the largest "
                                                             "time allowed: no profile can supersede it")
        now = max(now, previous.timestamp + 1)
    return Profile.create(key, name=clean(name), team=clean(team), url=url.strip(), timestamp=now)


def team_id(team: str) -> str:
    """A team's id in links and the API (a name can hold any character; its id is hex)."""
    return hashlib.sha256(team.encode()).hexdigest()[:TEAM_ID_HEX]


@dataclass(frozen=True)
class LookAlikes:
    """Which keys' names, and which teams, look like another's (chain.names.skeleton)."""

    names: dict[bytes, tuple[bytes, ...]]  # key -> the other keys whose name looks like its name
    teams: dict[str, tuple[str, ...]]  # team -> the other teams whose name looks like it


def look_alikes(profiles: Mapping[bytes, Profile]) -> LookAlikes:
    """Look-alikes among current profiles (`current()`'s result). Every name of a group is marked:
    nothing on the chain says which key chose it first (timestamps are self-reported)."""
    by_name: dict[str, list[bytes]] = {}
    by_team: dict[str, set[str]] = {}
    for owner in sorted(profiles):
        p = profiles[owner]
        by_name.setdefault(skeleton(p.name), []).append(owner)
        if p.team:
            by_team.setdefault(skeleton(p.team), set()).add(p.team)
    names = {k: tuple(o for o in group if o != k) for group in by_name.values() if len(group) > 1 for k in group}
    teams = {t: tuple(sorted(group - {t})) for group in by_team.values() if len(group) > 1 for t in group}
    return LookAlikes(names, teams)
