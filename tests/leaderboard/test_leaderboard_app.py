"""Every route of a real server on loopback over a real store: pages, API, errors, caching, live."""

from __future__ import annotations

import asyncio
import gzip
import html
import json
import multiprocessing
import os
import re
import signal
from pathlib import Path

import aiohttp
from lb_world import EVIL, FAST, World, poll, run, serving

from chain.builders import make_attestation
from chain.store import Store
from leaderboard.security import CSP
from leaderboard.state import Settings


async def get(s: aiohttp.ClientSession, url: str, **kw: object) -> tuple[int, str, aiohttp.typedefs.LooseHeaders]:
    async with s.get(url, **kw) as r:  # type: ignore[arg-type]
        return r.status, await r.text(), r.headers


INLINE = re.compile(r"""<[^>]*\s(style|on[a-z]+)\s*=|javascript:""", re.IGNORECASE)


def test_every_page_renders_with_security_headers(world: World) -> None:
    a = world.arena.hex[:12]
    head = world.accepted[-1].id.hex()
    pages = {
        "/": ["val_bpb over chain height", "Top contributors", "<svg"],
        f"/a/{a}": [f"/a/{a}/c/{head}", "HEAD"],
        "/a/tiny/commits": ["lower the learning rate, step 2", "mainline"],
        "/a/tiny/commits?status=all&per_page=2&page=2": ["page 2 of 3"],
        "/a/tiny/proposals": ["wider mlp", "1 of 2 improves votes so far"],
        "/a/tiny/proposals?status=rejected": ["cannot reach the quorum"],
        "/a/tiny/contributors?sort=proposals": ["acceptance", "66.7%"],
        "/a/tiny/verifiers?sort=agreement": ["0.0%", "100.0%"],
        f"/a/tiny/c/{head[:8]}": ["lower the learning rate, step 2", "disagreed", "parent/train.py"],
        f"/a/tiny/p/{world.verifiers[2].public.hex()}": ["Where this verifier disagreed", "no_gain"],
        f"/a/tiny/p/{world.authors[0].public.hex()}": ["As contributor", "wider mlp"],
        "/arenas": ["tiny"],
    }

    async def go() -> None:
        async with serving(world.home) as base, aiohttp.ClientSession() as s:
            for path, needles in pages.items():
                status, body, headers = await get(s, base + path)
                assert status == 200, (path, body[:300])
                assert headers["Content-Security-Policy"] == CSP
                assert headers["X-Content-Type-Options"] == "nosniff"
                assert headers["Content-Type"].startswith("text/html")
                for n in needles:
                    assert n in body, (path, n)
                assert "<script>" not in body.replace('<script src="/static/live.js" defer></script>', "")
                # nothing the CSP would refuse: no inline style or event handler attributes
                assert not INLINE.search(body), (path, INLINE.search(body))
            status, css, headers = await get(s, base + "/static/style.css")
            assert status == 200 and "--accent" in css and "max-age" in headers["Cache-Control"]

    run(go())


def test_api_mirrors_the_chain(world: World) -> None:
    async def go() -> None:
        async with serving(world.home) as base, aiohttp.ClientSession() as s:
            async with s.get(base + "/api/arenas") as r:
                arenas = await r.json()
            [a] = arenas["arenas"]
            assert a["head"]["id"] == world.accepted[-1].id.hex() and a["height"] == 3
            assert a["commits"] == {"accepted": 3, "pending": 1, "rejected": 1, "orphaned": 0}
            assert a["reference_bpb"] == "1.500000"
            async with s.get(base + "/api/arenas/tiny/contributors") as r:
                c = await r.json()
            # gains 1000, 2000, 3000 ubpb -> 10, 20, 30 points; author 0 holds steps 0 and 2
            assert [(i["key"], i["points"]) for i in c["items"]] == [
                (world.authors[0].public.hex(), 40), (world.authors[1].public.hex(), 20)]
            async with s.get(base + "/api/arenas/tiny/verifiers") as r:
                v = await r.json()
            rates = {i["key"]: i["agreement_rate"] for i in v["items"]}
            assert rates[world.verifiers[2].public.hex()] == 0.0
            assert rates[world.verifiers[0].public.hex()] == 1.0
            cid = world.accepted[1].id.hex()
            async with s.get(base + f"/api/arenas/{world.arena.hex[:8]}/commits/{cid}") as r:
                d = await r.json()
            assert d["status"] == "accepted" and d["parent"]["id"] == world.accepted[0].id.hex()
            assert "-LR = 3e-3" in d["diff"]["unified"] and "+LR = 4e-3" in d["diff"]["unified"]
            assert "lines" not in d["diff"]
            seeds = d["checks"][0]["attestations"][0]["seeds"]
            assert seeds[0]["gain_bpb"] == "+0.002000"
            assert {ch["verifier"]: ch["agreed"] for ch in d["checks"]}[world.verifiers[2].public.hex()] is False
            async with s.get(base + "/api/arenas/tiny/proposals?status=rejected") as r:
                p = await r.json()
            assert p["items"][0]["title"] == EVIL and "no_gain" in p["items"][0]["reason"]
            async with s.get(base + "/api/arenas/tiny") as r:
                o = await r.json()
            assert [pt["height"] for pt in o["chart"]["points"]] == [1, 2, 3]
            async with s.get(base + "/api/") as r:
                spec = await r.json()
            assert "/api/arenas/{arena}/commits/{commit}" in spec["paths"]

    run(go())


def test_untrusted_text_is_escaped(world: World) -> None:
    async def go() -> None:
        async with serving(world.home) as base, aiohttp.ClientSession() as s:
            for path in (f"/a/tiny/c/{world.rejected.id.hex()}", "/a/tiny/proposals?status=rejected", "/"):
                status, body, _ = await get(s, base + path)
                assert status == 200
                assert EVIL not in body and '<script>alert' not in body
                assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in body
            # a query string value comes back only escaped, inside links
            status, body, _ = await get(s, base + '/a/tiny/contributors?sort=points&x="><script>')
            assert status == 200 and '"><script>' not in body

    run(go())


def test_bad_input_gets_clear_errors(world: World) -> None:
    cases = {
        "/a/nosuch": (404, "no arena 'nosuch'"),
        "/a/tiny/c/" + "ab" * 32: (404, "no commit"),
        "/a/tiny/c/xyz": (400, "4 to 64 hex characters"),
        "/a/tiny/p/abcd": (400, "64 to 64 hex"),
        "/a/tiny/p/" + "00" * 32: (404, "no person"),
        "/a/tiny/commits?page=0": (400, "bad page '0'"),
        "/a/tiny/commits?per_page=1000": (400, "bad per_page"),
        "/a/tiny/commits?status=merged": (400, "one of mainline, all"),
        "/a/tiny/contributors?sort=name": (400, "bad sort 'name'"),
        "/nothing/here": (404, "no page at /nothing/here"),
        "/a/tiny/commits?q=" + "x" * 600: (414, "too long"),
    }

    async def go() -> None:
        async with serving(world.home) as base, aiohttp.ClientSession() as s:
            for path, (code, needle) in cases.items():
                status, body, headers = await get(s, base + path)
                assert status == code, (path, status, body[:200])
                assert needle in html.unescape(body), (path, body[:300])
                assert "Content-Security-Policy" in headers
            async with s.get(base + "/api/arenas/tiny/commits/" + "cd" * 32) as r:
                assert r.status == 404 and (await r.json())["error"]["status"] == 404
            async with s.post(base + "/api/arenas") as r:
                assert r.status == 405

    run(go())


def test_etag_and_refresh_on_new_objects(world: World) -> None:
    async def go() -> None:
        async with serving(world.home) as base, aiohttp.ClientSession() as s:
            url = base + "/api/arenas/tiny/proposals"
            async with s.get(url) as r:
                etag = r.headers["ETag"]
                first = await r.json()
            async with s.get(url, headers={"If-None-Match": etag}) as r:
                assert r.status == 304
            assert first["items"][0]["improves_votes"] == 1
            with Store.open(world.home) as store:  # another writer, as a node would be
                store.add(make_attestation(world.verifiers[1], world.pending, timestamp=1_700_000_070_000))
            async with s.get(url, headers={"If-None-Match": etag}) as r:
                assert r.status == 200 and r.headers["ETag"] != etag
                assert (await r.json())["total"] == 0  # the pending one was accepted
            async with s.get(base + "/api/arenas/tiny") as r:
                assert (await r.json())["arena"]["head"]["id"] == world.pending.id.hex()

    run(go())


def test_live_stream_announces_new_versions(world: World) -> None:
    async def go() -> None:
        async with serving(world.home) as base, aiohttp.ClientSession() as s:
            async with s.get(base + "/api/events") as r:
                assert r.headers["Content-Type"].startswith("text/event-stream")
                first = await _next_event(r)
                with Store.open(world.home) as store:
                    store.add(make_attestation(world.verifiers[2], world.pending, "no_gain",
                                               timestamp=1_700_000_080_000))
                second = await _next_event(r)
            assert second["version"] == first["version"] + 1
            [arena] = second["arenas"]
            assert arena["id"] == world.arena.hex and arena["commits"]["pending"] == 1

    run(go())


async def _next_event(r: aiohttp.ClientResponse) -> dict:
    data = None
    while True:
        line = (await asyncio.wait_for(r.content.readline(), 10)).decode().rstrip("\n")
        if line.startswith("data: "):
            data = json.loads(line[6:])
        elif line == "" and data is not None:
            return data


def test_rate_limit_per_client(world: World) -> None:
    async def go() -> None:
        settings = Settings(poll_s=0.05, rate=0.05, burst=3, builder="thread")
        async with serving(world.home, settings) as base, aiohttp.ClientSession() as s:
            codes = [(await get(s, base + "/api/arenas"))[0] for _ in range(4)]
            assert codes == [200, 200, 200, 429]
            async with s.get(base + "/api/arenas") as r:
                assert r.status == 429 and int(r.headers["Retry-After"]) >= 1

    run(go())


def test_rate_limit_behind_a_proxy_is_per_forwarded_client(world: World) -> None:
    async def go() -> None:
        settings = Settings(poll_s=0.05, rate=0.05, burst=2, builder="thread", trust_forwarded=True)
        async with serving(world.home, settings) as base, aiohttp.ClientSession() as s:
            a = {"X-Forwarded-For": "198.51.100.7, 203.0.113.1"}  # the proxy appended 203.0.113.1
            b = {"X-Forwarded-For": "203.0.113.2"}
            codes = [(await get(s, base + "/api/arenas", headers=h))[0] for h in (a, a, a, b)]
            assert codes == [200, 200, 429, 200]

    run(go())


def test_empty_store_and_several_arenas(empty_home: Path, world: World) -> None:
    async def go() -> None:
        async with serving(empty_home, FAST) as base, aiohttp.ClientSession() as s:
            status, body, _ = await get(s, base + "/")
            assert status == 200 and "holds no arena yet" in body
            async with s.get(base + "/api/arenas") as r:
                assert (await r.json())["arenas"] == []

    run(go())


def test_gzip_head_and_html_revalidation(world: World) -> None:
    async def go() -> None:
        async with serving(world.home) as base, aiohttp.ClientSession(auto_decompress=False) as s:
            async with s.get(base + "/", headers={"Accept-Encoding": "gzip"}) as r:
                packed = await r.read()
                assert r.headers["Content-Encoding"] == "gzip" and r.headers["Vary"] == "Accept-Encoding"
                etag = r.headers["ETag"]
            assert b"val_bpb over chain height" in gzip.decompress(packed)
            async with s.get(base + "/", headers={"Accept-Encoding": "identity"}) as r:
                assert "Content-Encoding" not in r.headers and await r.read() == gzip.decompress(packed)
            async with s.get(base + "/", headers={"If-None-Match": etag}) as r:
                assert r.status == 304 and await r.read() == b""
            async with s.head(base + "/a/tiny/verifiers") as r:
                assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")

    run(go())


def test_live_streams_are_capped_per_client(world: World) -> None:
    async def go() -> None:
        settings = Settings(poll_s=0.05, max_streams_per_client=2, builder="thread")
        async with serving(world.home, settings) as base, aiohttp.ClientSession() as s:
            first = await s.get(base + "/api/events")
            second = await s.get(base + "/api/events")
            try:
                assert first.status == second.status == 200
                async with s.get(base + "/api/events") as third:
                    assert third.status == 429
            finally:
                first.close()
                second.close()
            # closed streams free their slots
            await poll(lambda: _stream_ok(s, base))

    run(go())


async def _stream_ok(s: aiohttp.ClientSession, base: str) -> bool:
    async with s.get(base + "/api/events") as r:
        return r.status == 200


def test_concurrent_misses_share_one_rendering(world: World) -> None:
    async def go() -> None:
        async with serving(world.home) as base, aiohttp.ClientSession() as s:
            async with s.get(base + "/healthz") as r:
                before = (await r.json())["renders"]
            url = f"{base}/a/tiny/c/{world.accepted[2].id.hex()}"  # its diff is computed in a thread
            bodies = await asyncio.gather(*(_text(s, url) for _ in range(20)))
            assert len(set(bodies)) == 1 and "parent/train.py" in bodies[0]
            async with s.get(base + "/healthz") as r:
                assert (await r.json())["renders"] == before + 1

    run(go())


async def _text(s: aiohttp.ClientSession, url: str) -> str:
    async with s.get(url) as r:
        assert r.status == 200
        return await r.text()


def test_builder_process_survives_being_killed(world: World) -> None:
    async def go() -> None:
        settings = Settings(poll_s=0.05, wait_s=5.0, builder="process")
        async with serving(world.home, settings) as base, aiohttp.ClientSession() as s:
            async with s.get(base + "/api/arenas/tiny") as r:
                assert (await r.json())["arena"]["commits"]["pending"] == 1
            [builder] = [p for p in multiprocessing.active_children() if p.is_alive()]
            os.kill(builder.pid, signal.SIGKILL)
            with Store.open(world.home) as store:
                store.add(make_attestation(world.verifiers[1], world.pending, timestamp=1_700_000_070_000))

            async def accepted() -> bool:
                async with s.get(base + "/api/arenas/tiny") as r:
                    assert r.status == 200  # the old snapshot while the builder is replaced
                    return (await r.json())["arena"]["head"]["id"] == world.pending.id.hex()

            await poll(accepted, timeout=30)
        assert [p for p in multiprocessing.active_children() if p.is_alive()] == []  # closed with the app

    run(go(), timeout=60)
