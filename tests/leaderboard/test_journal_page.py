"""The contributor journal page and its JSON twin, served by a real server over a real store and journal."""

from __future__ import annotations

import hashlib
import html
import re
from pathlib import Path

import aiohttp
from lb_world import EVIL, World, run, serving

import journalfile
from leaderboard import journal as lb_journal
from leaderboard.security import CSP
from node.research.journal import Journal, Stage

INLINE = re.compile(r"""<[^>]*\s(style|on[a-z]+)\s*=|javascript:""", re.IGNORECASE)
LIVE_JS = '<script src="/static/live.js" defer></script>'
T1 = 1_700_000_100_000
NAV = 'href="/a/{}/journal"'


def _stage(name: str, gain: int) -> Stage:
    return Stage(name=name, seeds=[1, 2], parent_ubpb=[1_500_000, 1_500_100],
                 candidate_ubpb=[1_500_000 - gain, 1_500_100 - gain], verdict="improves" if gain > 0 else "no_gain",
                 mean_gain_ubpb=gain, stderr_ubpb=40)


def write_journal(world: World) -> list[int]:
    """Six experiments on the world's arena (one still running) and one on another arena."""
    arena, parent = world.arena.id, world.accepted[-1].id
    seqs = []
    with Journal.open(world.home) as j:
        def start(summary: str, i: int) -> int:
            seq = j.start(arena=arena, parent=parent, proposer="search", summary=summary,
                          changes=[{"knob": "LR", "old": "3e-3", "new": f"{i}e-3"}], diffstat="+1 -1 lines",
                          script=b"x = %d\n" % i, now_ms=T1 + i * 1000)
            seqs.append(seq)
            return seq

        j.finish(start("LR 3e-3 -> 1e-3", 1), decision="discarded", reason="no gain on screen",
                 stages=[_stage("screen", -500)], wall_ms=4000, now_ms=T1 + 1500)
        j.finish(start("wider mlp", 2), decision="proposed", reason="confirmed on fresh seeds",
                 stages=[_stage("screen", 900), _stage("confirm", 700)], proposal=world.pending.id,
                 wall_ms=9000, now_ms=T1 + 2500)
        j.finish(start("WARMUP 10 -> 0", 3), decision="invalid", reason="invalid:nan loss", now_ms=T1 + 3500)
        j.finish(start("BATCH 32 -> 64", 4), decision="stale", reason="the head moved", now_ms=T1 + 4500)
        j.finish(start(EVIL, 5), decision="discarded", reason=EVIL, stages=[_stage("screen", -20)],
                 now_ms=T1 + 5500)
        start("DEPTH 4 -> 5", 6)  # running
        j.start(arena=b"\x07" * 32, parent=b"\x07" * 32, proposer="random", summary="another arena's experiment",
                changes=[], diffstat="", script=b"", now_ms=T1)
    return seqs


async def get(s: aiohttp.ClientSession, url: str, **kw: object) -> tuple[int, str, dict[str, str]]:
    async with s.get(url, **kw) as r:  # type: ignore[arg-type]
        return r.status, await r.text(), dict(r.headers)


def test_the_leaderboard_names_the_file_and_decisions_the_research_loop_writes(tmp_path: Path) -> None:
    assert lb_journal.FILTERS == ("all", *journalfile.DECISIONS)
    with Journal.open(tmp_path) as j:
        assert lb_journal.journal_path(tmp_path) == j.path


def test_page_lists_experiments_newest_first_with_summary_and_links(world: World) -> None:
    write_journal(world)
    short = world.arena.hex[:12]

    async def go() -> None:
        async with serving(world.home) as base, aiohttp.ClientSession() as s:
            status, body, headers = await get(s, base + f"/a/{short}/journal")
            assert status == 200, body[:300]
            assert headers["Content-Security-Policy"] == CSP
            text = html.unescape(re.sub(r"<[^>]+>", "", body))
            assert "6 experiments run: 1 proposed, 2 discarded, 1 invalid, 1 stale, 1 running" in text
            order = [text.index(s) for s in ("DEPTH 4 -> 5", EVIL, "BATCH 32 -> 64", "WARMUP 10 -> 0",
                                             "wider mlp", "LR 3e-3 -> 1e-3")]
            assert order == sorted(order)  # newest first
            assert "another arena's experiment" not in text
            # the result is the last stage's mean gain, in bpb; the proposal links to its commit page
            assert "+0.000700" in body and "+0.000900" not in body and "-0.000500" in body
            assert f'href="/a/{short}/c/{world.pending.id.hex()}"' in body
            assert "invalid:nan loss" in text and "the head moved" in text
            # untrusted text only escaped; nothing the CSP would refuse
            assert EVIL not in body and "<script>alert" not in body
            assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in body
            assert "<script" not in body.replace(LIVE_JS, "")
            assert not INLINE.search(body)
            # with a journal in the data directory, every arena page links to it
            for path in (f"/a/{short}", f"/a/{short}/commits", f"/a/{short}/journal"):
                assert NAV.format(short) in (await get(s, base + path))[1], path

    run(go())


def test_json_twin_carries_the_fields(world: World) -> None:
    seqs = write_journal(world)

    async def go() -> None:
        async with serving(world.home) as base, aiohttp.ClientSession() as s:
            async with s.get(base + "/api/arenas/tiny/journal") as r:
                assert r.status == 200 and r.headers["Content-Type"].startswith("application/json")
                d = await r.json()
            assert d["journal"] is True and d["decision"] == "all" and isinstance(d["version"], int)
            assert d["summary"] == {"experiments": 6, "proposed": 1, "discarded": 2, "invalid": 1, "stale": 1,
                                    "running": 1}
            assert (d["page"], d["per_page"], d["total"], d["pages"]) == (1, 25, 6, 1)
            assert [i["seq"] for i in d["items"]] == seqs[::-1]
            running, proposed = d["items"][0], d["items"][4]
            assert running["decision"] == "running" and running["finished_at"] is None
            assert running["mean_gain_bpb"] is None and running["stages"] == []
            assert proposed["summary"] == "wider mlp" and proposed["proposer"] == "search"
            assert proposed["proposal"] == world.pending.id.hex() and proposed["proposal_status"] == "pending"
            assert proposed["mean_gain_ubpb"] == 700 and proposed["mean_gain_bpb"] == "+0.000700"
            assert [st["name"] for st in proposed["stages"]] == ["screen", "confirm"]
            assert proposed["stages"][1]["candidate_ubpb"] == [1_499_300, 1_499_400]
            assert proposed["changes"] == [{"knob": "LR", "old": "3e-3", "new": "2e-3"}]
            assert proposed["diffstat"] == "+1 -1 lines" and proposed["wall_ms"] == 9000
            assert proposed["started_at"] == T1 + 2000 and proposed["finished_at"] == T1 + 2500
            assert proposed["parent"] == world.accepted[-1].id.hex()
            assert d["items"][1]["summary"] == EVIL and d["items"][1]["reason"] == EVIL
            async with s.get(base + "/api/") as r:
                spec = await r.json()
            params = spec["paths"]["/api/arenas/{arena}/journal"]["get"]["parameters"]
            assert {p["name"] for p in params} == {"arena", "decision", "page", "per_page"}

    run(go())


def test_pagination_and_decision_filter(world: World) -> None:
    seqs = write_journal(world)

    async def go() -> None:
        async with serving(world.home) as base, aiohttp.ClientSession() as s:
            async with s.get(base + "/api/arenas/tiny/journal?per_page=4&page=2") as r:
                d = await r.json()
            assert (d["total"], d["pages"], d["page"]) == (6, 2, 2)
            assert [i["seq"] for i in d["items"]] == [seqs[1], seqs[0]]
            async with s.get(base + "/api/arenas/tiny/journal?decision=discarded&per_page=1") as r:
                d = await r.json()
            assert (d["total"], d["pages"], d["decision"]) == (2, 2, "discarded")
            assert [i["seq"] for i in d["items"]] == [seqs[4]]
            async with s.get(base + "/api/arenas/tiny/journal?decision=stale") as r:
                assert [i["summary"] for i in (await r.json())["items"]] == ["BATCH 32 -> 64"]
            async with s.get(base + "/api/arenas/tiny/journal?decision=proposed&page=9") as r:
                d = await r.json()
            assert d["items"] == [] and d["total"] == 1
            status, body, _ = await get(s, base + "/a/tiny/journal?decision=discarded&per_page=1")
            assert status == 200 and "page 1 of 2 (2)" in body
            assert 'href="?decision=discarded&amp;per_page=1&amp;page=2"' in body  # the pager keeps the filter
            assert "wider mlp" not in body and "LR 3e-3 -&gt; 1e-3" not in body

    run(go())


def test_bad_parameters_get_a_clear_400(world: World) -> None:
    write_journal(world)
    cases = {
        "page=0": "bad page '0': expected a whole number from 1 to 100000",
        "page=abc": "bad page 'abc'",
        "per_page=101": "bad per_page '101'",
        "decision=merged": "bad decision 'merged': expected one of all, proposed, discarded, invalid, stale",
        "decision=%3Cscript%3E": "bad decision '<script>'",
    }

    async def go() -> None:
        async with serving(world.home) as base, aiohttp.ClientSession() as s:
            for query, message in cases.items():
                status, body, headers = await get(s, base + "/a/tiny/journal?" + query)
                assert status == 400 and message in html.unescape(body), (query, body[:300])
                assert "<script>" not in body.replace(LIVE_JS, "")
                assert headers["Content-Security-Policy"] == CSP
                async with s.get(base + "/api/arenas/tiny/journal?" + query) as r:
                    error = (await r.json())["error"]
                assert r.status == 400 and error["status"] == 400 and message in error["message"], error
            status, body, _ = await get(s, base + "/a/nosuch/journal")
            assert status == 404 and "no arena 'nosuch'" in html.unescape(body)

    run(go())


def test_no_journal_is_a_friendly_page_and_no_nav_link(world: World) -> None:
    async def go() -> None:
        async with serving(world.home) as base, aiohttp.ClientSession() as s:
            status, body, _ = await get(s, base + "/a/tiny/journal")
            assert status == 200 and "no contributor journal in this data directory" in body
            async with s.get(base + "/api/arenas/tiny/journal") as r:
                d = await r.json()
            assert r.status == 200 and d["journal"] is False and d["items"] == [] and d["total"] == 0
            assert d["summary"]["experiments"] == 0
            for path in ("/a/tiny", "/a/tiny/commits", "/a/tiny/journal"):
                assert "/journal\"" not in (await get(s, base + path))[1], path
        assert not (world.home / "research").exists()  # nothing was created

    run(go())


def test_a_journal_written_while_serving_appears(world: World) -> None:
    short = world.arena.hex[:12]

    async def go() -> None:
        async with serving(world.home) as base, aiohttp.ClientSession() as s:
            url = base + "/api/arenas/tiny/journal"
            async with s.get(url) as r:
                etag0 = r.headers["ETag"]
                assert (await r.json())["journal"] is False
            assert NAV.format(short) not in (await get(s, base + f"/a/{short}"))[1]
            with Journal.open(world.home) as j:
                seq = j.start(arena=world.arena.id, parent=world.arena.id, proposer="agent",
                              summary="first try", changes=[], diffstat="+2 -0 lines", script=b"")
                async with s.get(url, headers={"If-None-Match": etag0}) as r:
                    assert r.status == 200
                    etag1 = r.headers["ETag"]
                    d = await r.json()
                assert etag1 != etag0 and d["journal"] is True
                assert [(i["summary"], i["decision"]) for i in d["items"]] == [("first try", "running")]
                async with s.get(url, headers={"If-None-Match": etag1}) as r:
                    assert r.status == 304  # unchanged journal, unchanged store
                j.finish(seq, decision="discarded", reason="no gain", stages=[_stage("screen", -3)])
                async with s.get(url, headers={"If-None-Match": etag1}) as r:
                    assert r.status == 200 and r.headers["ETag"] != etag1
                    d = await r.json()
                assert d["items"][0]["decision"] == "discarded" and d["summary"]["discarded"] == 1
            # the journal is closed (checkpointed into the main file): still read right
            status, body, _ = await get(s, base + f"/a/{short}/journal")
            assert status == 200 and "first try" in body and "-0.000003" in body
            assert NAV.format(short) in (await get(s, base + f"/a/{short}"))[1]

    run(go())


def test_serving_leaves_the_journal_byte_for_byte_unchanged(world: World) -> None:
    write_journal(world)
    path = journalfile.journal_path(world.home)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    mtime = path.stat().st_mtime_ns

    async def go() -> None:
        async with serving(world.home) as base, aiohttp.ClientSession() as s:
            for query in ("", "?decision=proposed", "?page=2&per_page=2", "?decision=bogus"):
                assert (await get(s, base + "/a/tiny/journal" + query))[0] in (200, 400)
                async with s.get(base + "/api/arenas/tiny/journal" + query) as r:
                    await r.read()

    run(go())
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert path.stat().st_mtime_ns == mtime
    with Journal.open(world.home) as j:  # and the research loop still writes it as before
        j.start(arena=world.arena.id, parent=world.arena.id, proposer="search", summary="after", changes=[],
                diffstat="", script=b"")
        assert j.entries(world.arena.id)[-1].summary == "after"


def test_a_damaged_journal_is_a_503_not_a_crash(world: World) -> None:
    path = journalfile.journal_path(world.home)
    path.parent.mkdir()
    path.write_bytes(b"this is not a database " * 100)

    async def go() -> None:
        async with serving(world.home) as base, aiohttp.ClientSession() as s:
            status, body, _ = await get(s, base + "/a/tiny/journal")
            assert status == 503 and "journal cannot be read" in body
            async with s.get(base + "/api/arenas/tiny/journal") as r:
                assert r.status == 503 and (await r.json())["error"]["status"] == 503
            assert (await get(s, base + "/a/tiny/commits"))[0] == 200  # the rest of the site is fine

    run(go())
    assert path.read_bytes() == b"this is not a database " * 100
