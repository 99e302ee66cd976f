"""The OpenAPI 3.1 description of the JSON API (served at /api and /api/openapi.json)."""

from __future__ import annotations

from typing import Any

_ARENA = {"name": "arena", "in": "path", "required": True, "schema": {"type": "string"},
          "description": "arena name or id prefix (4+ hex characters)"}
_PAGE = [
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
    {"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 25}},
]


def _sort(values: list[str]) -> dict[str, Any]:
    return {"name": "sort", "in": "query", "schema": {"type": "string", "enum": values, "default": values[0]}}


def _status(values: list[str], default: str) -> dict[str, Any]:
    return {"name": "status", "in": "query", "schema": {"type": "string", "enum": values, "default": default}}


def _get(summary: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"get": {
        "summary": summary, "parameters": params or [],
        "responses": {"200": {"description": "OK (JSON; every answer carries the store `version`)"},
                      "304": {"description": "Not modified (If-None-Match matched the ETag)"},
                      "400": {"description": "Malformed parameter: {error: {status, message}}"},
                      "404": {"description": "No such arena, commit or person"},
                      "503": {"description": "The store or the contributor journal cannot be read now"},
                      "429": {"description": "Rate limited (see Retry-After)"}},
    }}


def openapi() -> dict[str, Any]:
    from leaderboard.journal import FILTERS as JOURNAL_FILTERS
    from leaderboard.present import CONTRIBUTOR_SORTS, VERIFIER_SORTS
    from leaderboard.present_teams import TEAM_SORTS

    commit_statuses = ["mainline", "all", "accepted", "pending", "rejected", "orphaned"]
    return {
        "openapi": "3.1.0",
        "info": {"title": "Ratchet leaderboard API", "version": "1",
                 "description": "Read-only view of this node's chain. Metrics are given both as integer "
                                "micro-bits per byte (*_ubpb) and as exact decimal text (*_bpb); times are "
                                "unix milliseconds; ids and keys are hex. Every person entry carries `profile` "
                                "(null when the key set none): names prove nothing, the key identifies."},
        "paths": {
            "/api/arenas": _get("Every arena with its head, metric, floor and commit counts"),
            "/api/arenas/{arena}": _get("Overview: summary, chart points, recent activity, top ranks",
                                        [_ARENA]),
            "/api/arenas/{arena}/commits": _get("Commits, newest first (mainline = the head's lineage)",
                                                [_ARENA, _status(commit_statuses, "mainline"), *_PAGE]),
            "/api/arenas/{arena}/proposals": _get("Proposals in flight, rejected (with reasons) or orphaned",
                                                  [_ARENA, _status(["pending", "rejected", "orphaned"], "pending"),
                                                   *_PAGE]),
            "/api/arenas/{arena}/contributors": _get("Contributor ranking",
                                                     [_ARENA, _sort(list(CONTRIBUTOR_SORTS)), *_PAGE]),
            "/api/arenas/{arena}/verifiers": _get("Verifier ranking: checks, agreement, compute, hardware",
                                                  [_ARENA, _sort(list(VERIFIER_SORTS)), *_PAGE]),
            "/api/arenas/{arena}/commits/{commit}": _get(
                "One commit: message, parent, unified diff, per-verifier per-seed measurements and verdicts",
                [_ARENA, {"name": "commit", "in": "path", "required": True, "schema": {"type": "string"},
                          "description": "commit id or unambiguous prefix (4+ hex)"}]),
            "/api/arenas/{arena}/people/{key}": _get(
                "A person's profile (self-reported name, team, URL, look-alikes), commits and credit as "
                "contributor and verifier, points over time (`history`), compute given, where they disagreed",
                [_ARENA, {"name": "key", "in": "path", "required": True, "schema": {"type": "string"},
                          "description": "public key, 64 hex characters"}, *_PAGE]),
            "/api/arenas/{arena}/teams": _get(
                "Team ranking: points, accepted and rejected commits, verifier checks, compute given, members "
                "(a team is the keys whose profile names it); `compute_note` says what is measured",
                [_ARENA, _sort(list(TEAM_SORTS)), *_PAGE]),
            "/api/arenas/{arena}/teams/{team}": _get(
                "One team: its totals, members (with profiles), points over time (`history`), members' commits",
                [_ARENA, {"name": "team", "in": "path", "required": True, "schema": {"type": "string"},
                          "description": "team id: 16 hex characters (SHA-256 of the team's name)"}, *_PAGE]),
            "/api/arenas/{arena}/journal": _get(
                "This node's contributor journal on the arena, newest first: what each experiment changed, "
                "its stages and mean paired gain, decision and reason, the proposal id when proposed; "
                "`summary` counts experiments by decision; `journal` is false when the data directory "
                "holds no journal (then the list is empty)",
                [_ARENA, {"name": "decision", "in": "query",
                          "schema": {"type": "string", "enum": list(JOURNAL_FILTERS), "default": "all"}},
                 *_PAGE]),
            "/api/events": {"get": {"summary": "Server-sent events: `version` with a per-arena summary "
                                               "each time the store changes",
                                    "responses": {"200": {"description": "text/event-stream"}}}},
        },
    }
