"""The verifiers page with open verification: every key's status, what it needs, and the amendments."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from lb_world import run, serving

from chain.builders import key, make_arena, make_attestation, make_proposal
from chain.objects import Amendment
from chain.store import Store
from node.roles.status import collect

FOUNDERS = [key(1), key(2), key(3)]
VOLUNTEER, NEWCOMER = key(200), key(201)


def _fill(home: Path) -> bytes:
    arena, ref = make_arena(key(0), [f.public for f in FOUNDERS], 2)
    with Store.open(home) as s:
        s.add(ref)
        s.add(arena)
        parent = arena.id
        for h in range(30):
            p, b = make_proposal(key(10), arena, parent, message=f"good {h}", timestamp=1000 + h)
            s.add(b)
            s.add(p)
            for k in (*FOUNDERS[:2], VOLUNTEER):
                s.add(make_attestation(k, p, "improves"))
            parent = p.id
        s.add(make_attestation(NEWCOMER, p, "improves"))
        s.add(Amendment.sign(FOUNDERS[:2], arena=arena.id, height=31, retire=[FOUNDERS[2].public], add=[],
                             quorum=0, reason="lost laptop", timestamp=5))
    return arena.id


def test_the_verifiers_page_and_api_show_statuses_and_amendments(tmp_path: Path) -> None:
    home = tmp_path / "home"
    arena_id = _fill(home)

    async def main() -> None:
        async with serving(home) as base, aiohttp.ClientSession() as http:
            async with http.get(f"{base}/api/arenas/{arena_id.hex()}/verifiers") as r:
                assert r.status == 200
                data = await r.json()
            status = {item["key"]: item["status"] for item in data["items"] + data["idle"]}
            assert status[VOLUNTEER.public.hex()] == "counted"
            assert status[NEWCOMER.public.hex()] == "volunteer"
            assert status[FOUNDERS[0].public.hex()] == "founding"
            assert status[FOUNDERS[2].public.hex()] == "retired"
            (amendment,) = data["amendments"]
            assert amendment["applied"] and amendment["reason"] == "lost laptop"
            async with http.get(f"{base}/a/{arena_id.hex()}/verifiers") as r:
                assert r.status == 200
                page = await r.text()
            assert "Amendments" in page and "lost laptop" in page and "volunteer" in page
            title = page[page.index("<title>"):page.index("</title>")]
            assert "<" not in title[len("<title>"):] and title.startswith("<title>Verifiers")
            assert page.count('id="amendments"') == 1 and page.count("lost laptop") == 1

    run(main())


def test_status_says_where_this_key_stands_and_what_it_needs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _fill(home)
    with Store.open(home) as s:
        (arena,) = collect(home, s, NEWCOMER.public)["arenas"]
        assert arena["me"]["status"] == "volunteer" and "more agreeing checks" in arena["me"]["needs"]
        (arena,) = collect(home, s, VOLUNTEER.public)["arenas"]
        assert arena["me"]["status"] == "counted" and arena["me"]["needs"].startswith("nothing")
