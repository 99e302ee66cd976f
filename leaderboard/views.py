"""Routes: every page has a JSON twin under /api/ built from the same dict.

A view is a function (request, snapshot) -> dict. `_html` and `_json` wrap it
with the response cache (one rendering per URL and store version), ETags and
conditional requests; `error_middleware` turns domain errors into 400/404
answers in the format the client asked for.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from chain.consensus import STATUSES
from chain.errors import ChainError, NotFoundError, StoreError
from chain.profiles import TEAM_ID_HEX
from leaderboard import journal, present, present_teams
from leaderboard.cache import Rendered
from leaderboard.chart import chart_data, points_svg, svg
from leaderboard.diff import script_diff
from leaderboard.errors import BadQueryError, JournalUnreadableError, NotHeldError
from leaderboard.live import events
from leaderboard.openapi import openapi
from leaderboard.people import TeamRow
from leaderboard.snapshot import ArenaView, Snapshot
from leaderboard.state import LEADERBOARD, Leaderboard

log = logging.getLogger(__name__)
View = Callable[[web.Request, Snapshot], Awaitable[dict[str, Any]]]
Salt = Callable[[Leaderboard], str]  # what else than the store version a cached answer depends on
MAX_DIFFS = 256
HTML_ONLY = ("svg",)  # page-only geometry; the API carries the same points as data
QUERY_KEYS = ("status", "sort", "decision", "page", "per_page")  # the only parameters a page reads
HEX = frozenset("0123456789abcdef")


# -- lookups ---------------------------------------------------------------------

def _arena(request: web.Request, snap: Snapshot) -> ArenaView:
    name = request.match_info["arena"]
    av = snap.find(name)
    if av is None:
        raise NotHeldError("arena", name)
    return av


def _hex_arg(name: str, raw: str, min_len: int) -> str:
    text = raw.lower()
    if not (min_len <= len(text) <= 64) or not set(text) <= HEX:
        raise BadQueryError(name, raw, f"{min_len} to 64 hex characters")
    return text


def _commit_id(av: ArenaView, raw: str) -> bytes:
    text = _hex_arg("commit id", raw, 4)
    if len(text) == 64:
        cid = bytes.fromhex(text)
        if cid in av.commits:
            return cid
        raise NotHeldError("commit", raw)
    found = [c for c in av.commits if c.hex().startswith(text)]
    if not found:
        raise NotHeldError("commit", raw)
    if len(found) > 1:
        raise BadQueryError("commit id", raw, f"a longer prefix ({len(found)} commits start with it)")
    return found[0]


def _key(av: ArenaView, raw: str) -> bytes:
    key = bytes.fromhex(_hex_arg("key", raw, 64))
    if not present.has_person(av, key):
        raise NotHeldError("person", raw)
    return key


def _team(av: ArenaView, raw: str) -> TeamRow:
    tid = _hex_arg("team id", raw, TEAM_ID_HEX)
    found = present_teams.find_team(av, tid) if len(tid) == TEAM_ID_HEX else None
    if found is None:
        raise NotHeldError("team", raw)
    return found


def _paging(request: web.Request) -> present.Paging:
    return present.Paging.parse(request.query.get("page"), request.query.get("per_page"))


# -- views --------------------------------------------------------------------------

async def index_view(request: web.Request, snap: Snapshot) -> dict[str, Any]:
    return present.arenas(snap)


async def overview_view(request: web.Request, snap: Snapshot) -> dict[str, Any]:
    av = _arena(request, snap)
    data = present.overview(av, chart_data(av))
    return {**data, "svg": svg(data["chart"])}


async def commits_view(request: web.Request, snap: Snapshot) -> dict[str, Any]:
    av = _arena(request, snap)
    status = present.choice_arg("status", request.query.get("status"), ("mainline", "all", *STATUSES),
                                "mainline")
    return present.commits(av, status, _paging(request))


async def proposals_view(request: web.Request, snap: Snapshot) -> dict[str, Any]:
    av = _arena(request, snap)
    status = present.choice_arg("status", request.query.get("status"), ("pending", "rejected", "orphaned"),
                                "pending")
    return present.commits(av, status, _paging(request))


def _ranking(sorts: dict[str, Any], make: Callable[[ArenaView, str, present.Paging], dict[str, Any]]) -> View:
    """A ranking page's view: `?sort=` one of `sorts` (default points), paged."""

    async def view(request: web.Request, snap: Snapshot) -> dict[str, Any]:
        av = _arena(request, snap)
        sort = present.choice_arg("sort", request.query.get("sort"), list(sorts), "points")
        return make(av, sort, _paging(request))

    return view


contributors_view = _ranking(present.CONTRIBUTOR_SORTS, present.contributors)
verifiers_view = _ranking(present.VERIFIER_SORTS, present.verifiers)
teams_view = _ranking(present_teams.TEAM_SORTS, present_teams.teams)


async def commit_view(request: web.Request, snap: Snapshot) -> dict[str, Any]:
    av = _arena(request, snap)
    cid = _commit_id(av, request.match_info["commit"])
    row = av.commits[cid]
    parent = av.commits.get(row.parent)
    old_script = parent.script if parent is not None else av.arena.script
    lb = request.app[LEADERBOARD]
    attestations = await lb.io(lb.io_store.attestations, av.id, cid)
    diff = await _diff(lb, old_script, row.script)
    return present.commit_detail(av, cid, attestations, diff)


async def person_view(request: web.Request, snap: Snapshot) -> dict[str, Any]:
    av = _arena(request, snap)
    key = _key(av, request.match_info["key"])
    data = present.person(av, key, _paging(request))
    chart = chart_data(av, only=av.by_author.get(key, []))
    return {**data, "chart": chart, "svg": {"history": points_svg(data["history"]), **svg(chart)}}


async def team_view(request: web.Request, snap: Snapshot) -> dict[str, Any]:
    av = _arena(request, snap)
    data = present_teams.team(av, _team(av, request.match_info["team"]), _paging(request))
    return {**data, "svg": {"history": points_svg(data["history"])}}


async def journal_view(request: web.Request, snap: Snapshot) -> dict[str, Any]:
    av = _arena(request, snap)
    decision = present.choice_arg("decision", request.query.get("decision"), journal.FILTERS, "all")
    paging = _paging(request)
    lb = request.app[LEADERBOARD]
    page = await lb.io(journal.read_page, lb.home, av.id, decision, paging.offset, paging.per_page)
    return present.journal(av, page, decision, paging)


def _journal_state(lb: Leaderboard) -> str:
    """The journal's stat token: the journal routes are cached per store version and journal state."""
    return journal.token(lb.home) or "none"


def _has_journal(lb: Leaderboard) -> bool:
    return journal.journal_path(lb.home).is_file()


async def _diff(lb: Leaderboard, old: bytes, new: bytes) -> dict[str, Any]:
    cached = lb.diffs.get((old, new))
    if cached is not None:
        return cached

    def compute() -> dict[str, Any]:
        try:
            return {**script_diff(lb.io_store.blob_data(old), lb.io_store.blob_data(new)), "missing": None}
        except NotFoundError as e:
            return {"missing": f"script not held by this node: {e}", "lines": [], "unified": "",
                    "added": 0, "removed": 0, "truncated": False, "identical": False}

    diff = await lb.io(compute)
    if diff["missing"] is None:  # a missing blob may arrive later: only complete diffs are kept
        lb.diffs[(old, new)] = diff
        while len(lb.diffs) > MAX_DIFFS:
            lb.diffs.pop(next(iter(lb.diffs)))
    return diff


# -- responses ----------------------------------------------------------------------

def _known_query(request: web.Request) -> dict[str, str]:
    """The parameters pages read (first value of each): the cache key, and what links carry on."""
    return {k: request.query[k] for k in QUERY_KEYS if k in request.query}


def _send(request: web.Request, r: Rendered) -> web.Response:
    headers = {"ETag": r.etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
    if r.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    body = r.body
    if r.gzipped is not None and "gzip" in request.headers.get("Accept-Encoding", ""):
        body = r.gzipped
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=body, content_type=r.content_type, charset="utf-8", headers=headers)


def _html(view: View, template: str, nav: str, salt: Salt | None = None
          ) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        lb = request.app[LEADERBOARD]
        # taken before reading: a page is never cached under a state older than what it shows
        extra = salt(lb) if salt else ""
        has_journal = _has_journal(lb)  # the nav shows a Journal link only then: part of every page's key
        snap = await lb.snapshot()
        query = _known_query(request)

        async def make() -> tuple[bytes, str]:
            data = await view(request, snap)
            page = lb.env.get_template(template).render(
                data=data, nav=nav, version=snap.version, arenas=[present.arena_ref(a) for a in snap.arenas],
                current=data.get("arena"), query=query, journal=has_journal)
            return page.encode(), "text/html"

        key = f"html {request.path}?{urlencode(query)} j={int(has_journal)}{extra}"
        return _send(request, await _cached(lb, key, snap.version, make))

    return handler


def _json(view: View, salt: Salt | None = None) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        lb = request.app[LEADERBOARD]
        extra = salt(lb) if salt else ""
        snap = await lb.snapshot()

        async def make() -> tuple[bytes, str]:
            data = await view(request, snap)
            data = {k: v for k, v in data.items() if k not in HTML_ONLY}
            if isinstance(data.get("diff"), dict):
                data["diff"] = {k: v for k, v in data["diff"].items() if k != "lines"}
            return json.dumps({"version": snap.version, **data}, separators=(",", ":")).encode(), "application/json"

        key = f"json {request.path}?{urlencode(_known_query(request))} {extra}"
        return _send(request, await _cached(lb, key, snap.version, make))

    return handler


async def _cached(lb: Leaderboard, key: str, version: int, make: Callable[[], Awaitable[tuple[bytes, str]]]
                  ) -> Rendered:
    """The cached rendering, or one rendering shared by every request that misses at once."""
    hit = lb.responses.get(key, version)
    if hit is not None:
        return hit
    flight = (key, version)
    leader = lb.inflight.get(flight)
    if leader is not None:
        await asyncio.wait({leader})
        if not leader.cancelled() and leader.exception() is None:
            return leader.result()
        # the leader failed: render on our own, which raises the same error for this request
    fut: asyncio.Future[Rendered] = asyncio.get_running_loop().create_future()
    lb.inflight[flight] = fut
    try:
        body, content_type = await make()
        lb.renders += 1
        hit = lb.responses.put(key, version, body, content_type)
        fut.set_result(hit)
        return hit
    except BaseException:
        fut.cancel()
        raise
    finally:
        if lb.inflight.get(flight) is fut:
            del lb.inflight[flight]


async def root(request: web.Request) -> web.Response:
    """The only arena's overview, or the list of arenas when there are several (or none)."""
    snap = await request.app[LEADERBOARD].snapshot()
    if len(snap.arenas) == 1:
        request.match_info["arena"] = snap.arenas[0].arena.hex
        return await _ROOT_OVERVIEW(request)
    return await _ROOT_INDEX(request)


_ROOT_OVERVIEW = _html(overview_view, "overview.html", "overview")
_ROOT_INDEX = _html(index_view, "index.html", "arenas")


async def api_index(request: web.Request) -> web.Response:
    return web.json_response(openapi(), headers={"Cache-Control": "public, max-age=300"})


async def healthz(request: web.Request) -> web.Response:
    lb = request.app[LEADERBOARD]
    snap = lb.snapshots.current
    return web.json_response({"ok": True, "version": snap.version if snap else None,
                              "build_ms": round(snap.build_ms, 1) if snap else None,
                              "builds": lb.snapshots.builds, "renders": lb.renders,
                              "live_streams": lb.live.streams}, headers={"Cache-Control": "no-store"})


PAGES: list[tuple[str, str, View, str, str, Salt | None]] = [
    # (page path, API path, view, template, nav item, what else the answer depends on)
    ("/a/{arena}", "/api/arenas/{arena}", overview_view, "overview.html", "overview", None),
    ("/a/{arena}/commits", "/api/arenas/{arena}/commits", commits_view, "commits.html", "commits", None),
    ("/a/{arena}/proposals", "/api/arenas/{arena}/proposals", proposals_view, "proposals.html", "proposals", None),
    ("/a/{arena}/contributors", "/api/arenas/{arena}/contributors", contributors_view, "contributors.html",
     "contributors", None),
    ("/a/{arena}/verifiers", "/api/arenas/{arena}/verifiers", verifiers_view, "verifiers.html", "verifiers", None),
    ("/a/{arena}/c/{commit}", "/api/arenas/{arena}/commits/{commit}", commit_view, "commit.html", "commits", None),
    ("/a/{arena}/p/{key}", "/api/arenas/{arena}/people/{key}", person_view, "person.html", "person", None),
    ("/a/{arena}/teams", "/api/arenas/{arena}/teams", teams_view, "teams.html", "teams", None),
    ("/a/{arena}/t/{team}", "/api/arenas/{arena}/teams/{team}", team_view, "team.html", "teams", None),
    ("/a/{arena}/journal", "/api/arenas/{arena}/journal", journal_view, "journal.html", "journal", _journal_state),
]


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", root)
    r.add_get("/arenas", _ROOT_INDEX)
    r.add_get("/api", api_index)
    r.add_get("/api/", api_index)
    r.add_get("/api/openapi.json", api_index)
    r.add_get("/api/arenas", _json(index_view))
    r.add_get("/api/events", events)
    r.add_get("/healthz", healthz)
    for page, api, view, template, nav, salt in PAGES:
        r.add_get(page, _html(view, template, nav, salt))
        r.add_get(api, _json(view, salt))


# -- errors -------------------------------------------------------------------------

@web.middleware
async def error_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                           ) -> web.StreamResponse:
    try:
        return await handler(request)
    except BadQueryError as e:
        return _error(request, 400, "Bad request", str(e))
    except NotHeldError as e:
        return _error(request, 404, "Not found", str(e))
    except web.HTTPNotFound:
        return _error(request, 404, "Not found", f"no page at {request.path[:100]}")
    except JournalUnreadableError as e:
        log.warning("leaderboard: %s", e)
        return _error(request, 503, "Journal unavailable", "the contributor journal cannot be read right now")
    except StoreError as e:
        log.warning("leaderboard: store error on %s: %s", request.path, e)
        return _error(request, 503, "Store unavailable", "the node's store cannot be read right now")
    except ChainError as e:
        return _error(request, 400, "Bad request", str(e))


def _error(request: web.Request, status: int, title: str, message: str) -> web.Response:
    headers = {"Cache-Control": "no-store"}
    if request.path.startswith("/api"):
        return web.json_response({"error": {"status": status, "message": message}}, status=status,
                                 headers=headers)
    lb = request.app[LEADERBOARD]
    snap = lb.snapshots.current
    arenas = [present.arena_ref(a) for a in snap.arenas] if snap else []
    page = lb.env.get_template("error.html").render(
        status=status, title=title, message=message, nav="", version=snap.version if snap else 0,
        arenas=arenas, current=None, query={}, journal=False)
    return web.Response(text=page, status=status, content_type="text/html", headers=headers)
