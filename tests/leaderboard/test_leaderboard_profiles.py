"""Names, teams and histories on the leaderboard, through a real server: pages, API, escaping, marks."""

from __future__ import annotations

import html
import re

import aiohttp
import pytest
from lb_world import HOSTILE_NAME, HOSTILE_TEAM, T0, World, add_profiles, run, serving
from test_leaderboard_app import INLINE, get

from chain.builders import key
from chain.consensus import compute_state
from chain.credit import compute_credit
from chain.objects import Profile
from chain.profiles import team_id
from chain.store import Store
from leaderboard.people import credit_events, history
from leaderboard.security import CSP

ROCKETS = team_id("Rockets")
LOOKALIKE_TEAM = team_id("R\u043eckets")


@pytest.fixture
def named(world: World) -> World:
    add_profiles(world)
    return world


async def api(s: aiohttp.ClientSession, url: str) -> dict:  # type: ignore[type-arg]
    async with s.get(url) as r:
        assert r.status == 200, (url, await r.text())
        return await r.json()


def test_names_are_shown_with_their_key_on_every_page(named: World) -> None:
    w = named
    ada, ada2 = w.authors[0].public.hex(), w.verifiers[0].public.hex()
    pages = ["/", "/a/tiny/contributors", "/a/tiny/verifiers", "/a/tiny/commits", "/a/tiny/proposals",
             f"/a/tiny/c/{w.accepted[0].id.hex()}", f"/a/tiny/p/{ada}", "/a/tiny/teams", f"/a/tiny/t/{ROCKETS}"]

    async def go() -> None:
        async with serving(w.home) as base, aiohttp.ClientSession() as s:
            for path in pages:
                status, body, headers = await get(s, base + path)
                assert status == 200, (path, body[:300])
                assert headers["Content-Security-Policy"] == CSP
                assert not INLINE.search(body), (path, INLINE.search(body))
                # every name is followed by its key's prefix, in the same link
                for name, k in (("Ada", ada), ("Vera", w.verifiers[1].public.hex())):
                    for m in re.finditer(rf'<span class="name">{name}</span> <code>([0-9a-f]+)</code>', body):
                        assert m.group(1) in (k[:12], ada2[:12]), (path, m.group(0))
                assert '<span class="name">Ada</span>' in body or path.endswith("/teams"), path
            status, body, _ = await get(s, base + "/a/tiny/contributors")
            assert f'<span class="name">Ada</span> <code>{ada[:12]}</code></a> <span class="badge lookalike"' in body
            assert f"the name of key {ada2[:12]} looks the same" in body
            assert body.count("look-alike team") == 1  # the hostile team looks like no other

    run(go())


def test_hostile_names_and_teams_are_escaped_everywhere(named: World) -> None:
    w = named
    hostile = w.authors[1].public.hex()
    team = team_id(HOSTILE_TEAM)
    escaped = html.escape(HOSTILE_NAME, quote=True)

    async def go() -> None:
        async with serving(w.home) as base, aiohttp.ClientSession() as s:
            for path in ("/", "/a/tiny/contributors", f"/a/tiny/p/{hostile}", "/a/tiny/teams", f"/a/tiny/t/{team}",
                         f"/a/tiny/c/{w.rejected.id.hex()}"):
                status, body, _ = await get(s, base + path)
                assert status == 200
                assert HOSTILE_NAME not in body and HOSTILE_TEAM not in body and "<img" not in body, path
                assert "alert(2)</script>" not in body
                shown = escaped if "/team" not in path else html.escape(HOSTILE_TEAM, quote=True)
                assert shown in body, path

    run(go())


def test_the_api_carries_the_profile_in_every_person_entry(named: World) -> None:
    w = named
    ada = w.authors[0].public.hex()

    async def go() -> None:
        async with serving(w.home) as base, aiohttp.ClientSession() as s:
            c = await api(s, base + "/api/arenas/tiny/contributors")
            by_key = {i["key"]: i["profile"] for i in c["items"]}
            assert by_key[ada]["name"] == "Ada" and by_key[ada]["team_id"] == ROCKETS
            assert by_key[ada]["name_looks_like"] == [w.verifiers[0].public.hex()[:12]]
            assert by_key[w.authors[1].public.hex()]["name"] == HOSTILE_NAME  # JSON holds the text as it is
            v = await api(s, base + "/api/arenas/tiny/verifiers")
            cy = {i["key"]: i["profile"] for i in v["items"]}[w.verifiers[2].public.hex()]
            assert cy["team_looks_like"] == [{"name": "Rockets", "id": ROCKETS}]
            o = await api(s, base + "/api/arenas/tiny")
            assert all(e["profile"] is not None for e in o["recent"])
            assert all(r["author_profile"]["name"] for r in o["mainline"])
            assert all(r["profile"] is not None for r in o["top_contributors"] + o["top_verifiers"])
            d = await api(s, base + f"/api/arenas/tiny/commits/{w.accepted[0].id.hex()}")
            assert {ch["verifier_profile"]["name"] for ch in d["checks"]} == {"Ada", "Vera", "Cy"}
            p = await api(s, base + f"/api/arenas/tiny/people/{ada}")
            assert p["profile"]["url"] == "https://ada.example/" and p["history"][-1]["points"] == 40
            assert [pt["height"] for pt in p["chart"]["points"]] == [1, 3]  # Ada's accepted commits
            assert p["compute"]["proposals"] == {"accepted": 2, "pending": 1}
            assert p["compute"]["checked_ms"] == 7 * 60_000  # 3 checks of each accepted commit, 1 of the pending
            assert "measured" in p["compute"]["note"] and "svg" not in p

    run(go())


def test_team_ranking_and_team_page_sum_their_members(named: World) -> None:
    w = named

    async def go() -> None:
        async with serving(w.home) as base, aiohttp.ClientSession() as s:
            t = await api(s, base + "/api/arenas/tiny/teams")
            rows = {i["id"]: i for i in t["items"]}
            assert set(rows) == {ROCKETS, LOOKALIKE_TEAM, team_id(HOSTILE_TEAM)}
            c = {i["key"]: i for i in (await api(s, base + "/api/arenas/tiny/contributors"))["items"]}
            v = {i["key"]: i for i in (await api(s, base + "/api/arenas/tiny/verifiers"))["items"]}
            members = [w.authors[0], w.verifiers[0], w.verifiers[1]]
            hexes = [m.public.hex() for m in members]
            r = rows[ROCKETS]
            assert r["members"] == 3 and r["rank"] == 1 and t["items"][0]["id"] == ROCKETS
            assert r["points"] == sum(c.get(k, {}).get("points", 0) + v.get(k, {}).get("points", 0) for k in hexes)
            assert r["accepted"] == c[hexes[0]]["accepted"] == 2
            assert r["checks"] == v[hexes[1]]["checks"] + v[hexes[2]]["checks"]
            assert r["compute_ms"] == v[hexes[1]]["compute_ms"] + v[hexes[2]]["compute_ms"]
            assert rows[LOOKALIKE_TEAM]["looks_like"] == [{"name": "Rockets", "id": ROCKETS}]
            assert r["looks_like"] == [{"name": "R\u043eckets", "id": LOOKALIKE_TEAM}]
            page = await api(s, base + f"/api/arenas/tiny/teams/{ROCKETS}")
            listed = [(m["points"], m["key"]) for m in page["member_list"]]
            assert sorted(listed, key=lambda m: (-m[0], m[1])) == listed and {k for _, k in listed} == set(hexes)
            assert page["history"][-1]["points"] == r["points"]
            assert {i["author"] for i in page["commits"]["items"]} == {hexes[0]}
            by_checks = await api(s, base + "/api/arenas/tiny/teams?sort=members")
            assert by_checks["items"][0]["id"] == ROCKETS
            status, body, _ = await get(s, base + f"/a/tiny/t/{ROCKETS}")
            assert status == 200 and 'id="lookalike"' in body and "<svg" in body and "Members" in body
            for path, code, needle in [(f"/a/tiny/t/{'0' * 16}", 404, "no team"),
                                       ("/a/tiny/t/nothex", 400, "bad team id"),
                                       (f"/api/arenas/tiny/teams/{'ab' * 20}", 404, "no team"),
                                       ("/a/tiny/teams?sort=name", 400, "bad sort")]:
                status, body, _ = await get(s, base + path)
                assert status == code and needle in html.unescape(body), (path, status, body[:200])

    run(go())


def test_a_newer_profile_renames_on_the_next_version(named: World) -> None:
    w = named
    ada = w.authors[0].public.hex()

    async def go() -> None:
        async with serving(w.home) as base, aiohttp.ClientSession() as s:
            before = await api(s, base + f"/api/arenas/tiny/people/{ada}")
            with Store.open(w.home) as store:  # another process signs a newer profile
                store.add(Profile.create(w.authors[0], name="Ada L.", team="", url="", timestamp=T0 + 1))
                store.add(Profile.create(w.authors[0], name="stale", team="", url="", timestamp=T0 - 1))
            after = await api(s, base + f"/api/arenas/tiny/people/{ada}")
            assert after["version"] > before["version"]
            assert after["profile"]["name"] == "Ada L." and after["profile"]["team"] is None
            assert after["profile"]["name_looks_like"] == []  # no other key is called that
            t = await api(s, base + "/api/arenas/tiny/teams")
            assert {i["id"]: i["members"] for i in t["items"]}[ROCKETS] == 2

    run(go())


def test_a_key_without_a_profile_is_shown_by_its_key(world: World) -> None:
    async def go() -> None:
        async with serving(world.home) as base, aiohttp.ClientSession() as s:
            c = await api(s, base + "/api/arenas/tiny/contributors")
            assert all(i["profile"] is None for i in c["items"])
            assert (await api(s, base + "/api/arenas/tiny/teams"))["items"] == []
            status, body, _ = await get(s, base + f"/a/tiny/p/{world.authors[0].public.hex()}")
            assert status == 200 and "has not set a name" in body and '<span class="name">' not in body

    run(go())


def test_history_sums_to_the_credit(named: World) -> None:
    from chain.consensus import tallies

    with Store.open(named.home) as s:
        arena = s.arenas()[0]
        atts = s.attestations(arena.id)
        state = compute_state(arena, s.proposals(arena.id), atts)
    credit = compute_credit(state, atts)
    events = credit_events(state, tallies(arena, state.commits, atts))
    points = {c.key: c.points for c in credit.contributors}
    for v in credit.verifiers:
        points[v.key] = points.get(v.key, 0) + v.points
    assert {k: history(e)[-1][1] for k, e in events.items()} == {k: p for k, p in points.items() if p}
    assert key(99).public not in events
