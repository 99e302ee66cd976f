"""Teams -> plain dicts: the team ranking and a team's own page (and their /api/ twins).

A team is whatever name its members' profiles give (leaderboard.people.teams);
anyone can join any team by naming it, and a team whose name looks like
another's is marked, as people's names are.
"""

from __future__ import annotations

from typing import Any

from chain.profiles import team_id
from leaderboard.people import TeamRow
from leaderboard.present import (
    COMPUTE_NOTE,
    Paging,
    arena_ref,
    commit_row,
    history_points,
    person_ref,
)
from leaderboard.snapshot import ArenaView

TEAM_SORTS = {
    "points": lambda t: (-t.points, -t.accepted, t.name, t.id),
    "accepted": lambda t: (-t.accepted, -t.points, t.name, t.id),
    "checks": lambda t: (-t.checks, -t.points, t.name, t.id),
    "compute": lambda t: (-t.compute_ms, -t.points, t.name, t.id),
    "members": lambda t: (-len(t.members), -t.points, t.name, t.id),
}


def find_team(av: ArenaView, tid: str) -> TeamRow | None:
    return next((t for t in av.teams if t.id == tid), None)


def team_row(av: ArenaView, t: TeamRow, rank: int) -> dict[str, Any]:
    p = av.profiles.get(t.members[0]) if t.members else None
    return {
        "rank": rank, "id": t.id, "name": t.name, "points": t.points,
        "contributor_points": t.contributor_points, "verifier_points": t.verifier_points,
        "accepted": t.accepted, "proposals": t.proposals, "rejected": t.rejected, "checks": t.checks,
        "compute_ms": t.compute_ms, "checked_ms": t.checked_ms, "members": len(t.members),
        "last_seen": t.last_seen_ms,
        "looks_like": [{"name": n, "id": team_id(n)} for n in (p.team_looks_like if p is not None else ())],
    }


def teams(av: ArenaView, sort: str, paging: Paging) -> dict[str, Any]:
    rank = {t.id: i + 1 for i, t in enumerate(av.teams)}  # rank is always by points
    page, meta = paging.slice(sorted(av.teams, key=TEAM_SORTS[sort]))
    return {"arena": arena_ref(av), "sort": sort, **meta, "items": [team_row(av, t, rank[t.id]) for t in page],
            "compute_note": COMPUTE_NOTE}


def team(av: ArenaView, t: TeamRow, paging: Paging) -> dict[str, Any]:
    rank = next(i + 1 for i, other in enumerate(av.teams) if other.id == t.id)
    members = []
    for key in t.members:
        c, v = av.contributor.get(key), av.verifier.get(key)
        members.append({
            **person_ref(av, key), "points": (c.points if c else 0) + (v.points if v else 0),
            "accepted": c.accepted if c else 0, "proposals": c.proposals if c else 0,
            "rejected": c.rejected if c else 0, "checks": v.checks if v else 0,
            "compute_ms": v.compute_ms if v else 0, "checked_ms": av.checked_ms.get(key, 0),
        })
    authored = sorted((cid for key in t.members for cid in av.by_author.get(key, [])),
                      key=lambda cid: (-av.commits[cid].timestamp, cid))
    page, meta = paging.slice(authored)
    return {"arena": arena_ref(av), **team_row(av, t, rank), "member_list": members,
            "history": history_points(av.team_history.get(t.id, [])),
            "commits": {**meta, "items": [commit_row(av, cid) for cid in page]}, "compute_note": COMPUTE_NOTE}
