"""Fuzzing the leaderboard's HTTP handlers: raw request lines with hostile paths and queries.

Every request is written by hand on a TCP socket (nothing normalises it on the
way) to a real server over a store holding the fuzz corpus. The server must
answer each with a client error or a page, never a 5xx, within a bounded
time, with its security headers, and keep serving afterwards.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from urllib.parse import quote

from aiohttp import web
from fuzzkit import build_corpus

from chain.objects import Arena, Attestation, Proposal
from chain.store import Store
from leaderboard.app import create_app
from leaderboard.state import Settings

CORPUS = build_corpus()
REQUESTS = 250
ROUTES = ["/a/{arena}", "/a/{arena}/commits", "/a/{arena}/proposals", "/a/{arena}/contributors",
          "/a/{arena}/verifiers", "/a/{arena}/c/{commit}", "/a/{arena}/p/{key}", "/api/arenas/{arena}",
          "/api/arenas/{arena}/commits", "/api/arenas/{arena}/proposals", "/api/arenas/{arena}/contributors",
          "/api/arenas/{arena}/verifiers", "/api/arenas/{arena}/commits/{commit}",
          "/api/arenas/{arena}/people/{key}", "/", "/arenas", "/api", "/api/arenas", "/healthz", "/static/{x}"]
QUERY_KEYS = ["page", "per_page", "status", "sort", "after", "x"]


def _values(rng: random.Random) -> dict[str, list[str]]:
    arena = next(o for o in CORPUS.preload if isinstance(o, Arena))
    props = [o for o in CORPUS.preload if isinstance(o, Proposal)]
    att = next(o for o in CORPUS.preload if isinstance(o, Attestation))
    hostile = ["", "..", "%2e%2e", "..%2f..%2fetc%2fpasswd", "%00", "%ff%fe", quote("é\u202e<script>"),
               "<script>alert(1)</script>", "a" * 5000, "0" * 64, "f" * 65, "zz", "%", "%%", "%zz",
               quote(chr(0xD800), errors="surrogatepass"), "null", "-1", "1e309", "[]", "{}",
               rng.randbytes(8).hex(), quote(rng.randbytes(20))]
    return {
        "arena": [arena.name, arena.hex, arena.hex[:4], arena.hex[:12], props[0].hex, *hostile],
        "commit": [props[0].hex, props[1].hex[:8], props[0].hex[:4], att.hex, arena.hex, *hostile],
        "key": [props[0].author.hex(), props[0].author.hex()[:10], att.verifier.hex(), *hostile],
        "x": ["app.js", "style.css", "../app.py", "%2e%2e/%2e%2e/pyproject.toml", *hostile],
        "query": ["1", "0", "-5", "100", "101", "99999999999999999999999", "abc", "", "all", "mainline",
                  "points", "pending", "%00", "1.5", quote("\u00e9"), *hostile],
    }


def _request(rng: random.Random, values: dict[str, list[str]]) -> str:
    path = rng.choice(ROUTES)
    for name in ("arena", "commit", "key", "x"):
        path = path.replace("{" + name + "}", rng.choice(values[name]))
    if rng.random() < 0.6:
        pairs = [f"{rng.choice(QUERY_KEYS)}={rng.choice(values['query'])}" for _ in range(rng.randint(1, 4))]
        path += "?" + "&".join(pairs)
    if rng.random() < 0.05:
        path = path.replace("/", "//", 1)
    return path


async def _raw_get(port: int, path: str) -> tuple[int, dict[str, str]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode("latin-1"))
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        await asyncio.wait_for(reader.read(), 10)
        return status, headers
    finally:
        writer.close()


def test_hostile_requests_get_client_errors_never_server_errors(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Store.open(home) as s:
        for o in CORPUS.preload:
            s.add(o)
    rng = random.Random(12)
    values = _values(rng)
    statuses: dict[int, int] = {}
    bad: list[str] = []

    async def main() -> None:
        runner = web.AppRunner(create_app(home, Settings(builder="thread", rate=1e9, burst=10**9, wait_s=5.0)))
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            arena_page = f"/a/{CORPUS.preload[1].name}"
            assert (await _raw_get(port, arena_page))[0] == 200
            for i in range(REQUESTS):
                path = _request(rng, values)
                status, headers = await _raw_get(port, path)
                statuses[status] = statuses.get(status, 0) + 1
                if status >= 500:
                    bad.append(f"{status} for {path[:200]}")
                if status != 404 and "content-security-policy" not in headers and not path.startswith("/static"):
                    bad.append(f"no CSP on {status} for {path[:200]}")
                if i % 50 == 0:  # still serving honest readers
                    assert (await _raw_get(port, arena_page))[0] == 200
        finally:
            await runner.cleanup()

    asyncio.run(asyncio.wait_for(main(), 150))
    print(statuses)
    assert not bad, bad[:10]
    assert statuses.get(200, 0) > 20 and sum(v for k, v in statuses.items() if 400 <= k < 500) > 50, statuses
