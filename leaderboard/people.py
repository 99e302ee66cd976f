"""Names, teams and histories: what the snapshot builder adds to an arena's credit from profiles.

Pure functions of a chain state, its tallies and the current profiles (plain
values out, so they cross from the builder process cheaply). A team is the set
of keys whose current profile names it, counted on an arena only through the
members active there; anyone may name any team, and the pages say so.

Compute given, and what is measured: a verifier's compute is what its signed
attestations say each check cost (chain.credit.check_compute_ms). The network
cannot measure a contributor's own search; what it knows is their proposals
(accepted, rejected, pending) and what checking them cost the verifiers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from chain.consensus import ACCEPTED, ChainState, Tally
from chain.credit import POINTS_PER_AGREED_CHECK, UBPB_PER_AUTHOR_POINT, Credit, check_compute_ms
from chain.objects import Profile
from chain.profiles import look_alikes, team_id
from leaderboard.chart import thin

MAX_HISTORY = 300  # points of a history chart (chart.thin keeps the first and the last)


class ProfileRow(NamedTuple):
    """A key's current profile, and whose names and teams look like its own."""

    key: bytes
    id: bytes
    name: str
    team: str  # "" without a team
    team_id: str  # "" without a team
    url: str
    timestamp: int
    name_looks_like: tuple[bytes, ...]  # other keys whose name looks like this one
    team_looks_like: tuple[str, ...]  # other teams whose name looks like this key's team


class TeamRow(NamedTuple):
    """One team on one arena: the sums over its members active there."""

    id: str
    name: str
    members: tuple[bytes, ...]  # by points, then key
    points: int
    contributor_points: int
    verifier_points: int
    accepted: int
    proposals: int
    rejected: int
    checks: int
    compute_ms: int  # what the members' checks cost them (measured, signed by each verifier)
    checked_ms: int  # what checking the members' proposals cost the verifiers (measured likewise)
    last_seen_ms: int


Point = tuple[int, int, bytes]  # (unix ms, cumulative points, the commit that earned them)


def profile_rows(profiles: Mapping[bytes, Profile]) -> dict[bytes, ProfileRow]:
    """Rows of the current profiles (chain.profiles.current), look-alikes marked."""
    found = look_alikes(profiles)
    return {k: ProfileRow(k, p.id, p.name, p.team, team_id(p.team) if p.team else "", p.url, p.timestamp,
                          found.names.get(k, ()), found.teams.get(p.team, ()))
            for k, p in sorted(profiles.items())}


def credit_events(state: ChainState, counted: Mapping[bytes, Tally]) -> dict[bytes, list[Point]]:
    """Per key, every point it earned on the arena as (time, points, commit), oldest first: an
    accepted commit's author at the proposal's time, an agreeing verifier at its attestation's time.
    The sums are chain.credit's points."""
    events: dict[bytes, list[tuple[int, int, bytes]]] = {}
    for cid, c in state.commits.items():
        if c.status == ACCEPTED:
            events.setdefault(c.proposal.author, []).append(
                (c.proposal.timestamp, c.gain_ubpb // UBPB_PER_AUTHOR_POINT, cid))
    for pid, t in counted.items():
        status = state.commits[pid].status
        for key, atts in t.signed.items():
            if t.agreed(key, status):
                when = max(a.timestamp for a in atts.values())
                events.setdefault(key, []).append((when, POINTS_PER_AGREED_CHECK, pid))
    return {k: sorted(v) for k, v in events.items()}


def checked_ms(state: ChainState, counted: Mapping[bytes, Tally]) -> dict[bytes, int]:
    """Per author, what the verifier-set's checks of its proposals cost (check_compute_ms)."""
    out: dict[bytes, int] = {}
    for pid, t in counted.items():
        author = state.commits[pid].proposal.author
        spent = sum(check_compute_ms(a) for atts in t.signed.values() for a in atts.values())
        out[author] = out.get(author, 0) + spent
    return out


def history(events: list[Point]) -> list[Point]:
    """Cumulative points over time from one key's (or a team's merged) events, thinned."""
    total, out = 0, []
    for when, points, cid in sorted(events):
        total += points
        out.append((when, total, cid))
    return thin(out, MAX_HISTORY)


def teams(credit: Credit, profiles: Mapping[bytes, ProfileRow], checked: Mapping[bytes, int],
          events: Mapping[bytes, list[Point]]) -> tuple[list[TeamRow], dict[str, list[Point]]]:
    """The arena's teams ranked (points, then accepted commits, then name) and each one's history."""
    contributors = {c.key: c for c in credit.contributors}
    verifiers = {v.key: v for v in credit.verifiers}
    members: dict[str, list[bytes]] = {}
    for key in sorted(contributors.keys() | verifiers.keys()):
        p = profiles.get(key)
        if p is not None and p.team:
            members.setdefault(p.team, []).append(key)
    rows, histories = [], {}
    for name, keys in members.items():
        cs = [contributors[k] for k in keys if k in contributors]
        vs = [verifiers[k] for k in keys if k in verifiers]
        c_points, v_points = sum(c.points for c in cs), sum(v.points for v in vs)
        points_of = {k: (contributors[k].points if k in contributors else 0)
                     + (verifiers[k].points if k in verifiers else 0) for k in keys}
        row = TeamRow(
            id=team_id(name), name=name, members=tuple(sorted(keys, key=lambda k: (-points_of[k], k))),
            points=c_points + v_points, contributor_points=c_points, verifier_points=v_points,
            accepted=sum(c.accepted for c in cs), proposals=sum(c.proposals for c in cs),
            rejected=sum(c.rejected for c in cs), checks=sum(v.checks for v in vs),
            compute_ms=sum(v.compute_ms for v in vs), checked_ms=sum(checked.get(k, 0) for k in keys),
            last_seen_ms=max([c.last_seen_ms for c in cs] + [v.last_seen_ms for v in vs]),
        )
        rows.append(row)
        histories[row.id] = history([e for k in keys for e in events.get(k, [])])
    rows.sort(key=lambda r: (-r.points, -r.accepted, r.name, r.id))
    return rows, histories
