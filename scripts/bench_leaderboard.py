#!/usr/bin/env python3
"""Benchmark the leaderboard: latency and throughput of its main pages under concurrent clients.

Builds a store with a real chain (10,000 commits by default, 3 attestations
each, some rejected and pending), starts `ratchet serve` on it as a separate
process (rate limit off: every client is 127.0.0.1), and drives it from this
process with N concurrent aiohttp clients. Every page is measured next to a
baseline in the same run: a static file served by the same server, so the
ratio column says what the leaderboard adds on top of aiohttp itself.

    python scripts/bench_leaderboard.py            # 10,000 commits, 100 clients
    python scripts/bench_leaderboard.py --quick    # 1,000 commits, fewer requests
    python scripts/bench_leaderboard.py --json

The last rows repeat the overview while another process stores new objects
(`--write-rate` per second), so each answer may need a fresh snapshot.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp

from chain.builders import REFERENCE_SCRIPT, key, make_arena, make_attestation, make_proposal
from chain.store import Store

T0 = 1_700_000_000_000


@dataclass
class Row:
    name: str
    path: str
    requests: int
    rps: float
    median_ms: float
    p99_ms: float
    bytes: int = 0
    ratio: float | None = None  # median / baseline median


def build_store(home: Path, commits: int) -> dict[str, str]:
    """A chain of `commits` proposals: 90% accepted on one line, the rest rejected or pending."""
    verifiers = [key(1), key(2), key(3)]
    authors = [key(10 + i) for i in range(20)]
    arena, blob = make_arena(key(0), [v.public for v in verifiers], quorum=2, name="bench")
    with Store.open(home) as s:
        s.add(blob)
        s.add(arena)
        parent = arena.id
        head = arena.id
        for i in range(commits):
            ts = T0 + i * 60_000
            script = REFERENCE_SCRIPT + f"STEP = {i}  # change {i}\n".encode()
            p, b = make_proposal(authors[i % len(authors)], arena, parent, script=script,
                                 message=f"change {i}: tune the schedule", timestamp=ts)
            s.add(b)
            s.add(p)
            kind = "accept" if i % 10 else ("reject" if i % 20 else "pending")
            if kind == "accept":
                for j, v in enumerate(verifiers):
                    verdict = "no_gain" if (i + j) % 7 == 0 and j == 2 else "improves"
                    s.add(make_attestation(v, p, verdict, gain_ubpb=500 + i % 300, timestamp=ts + 1000 + j))
                parent = head = p.id
            elif kind == "reject":
                for j, v in enumerate(verifiers[:2]):
                    s.add(make_attestation(v, p, "no_gain", gain_ubpb=3, timestamp=ts + 1000 + j))
            else:
                s.add(make_attestation(verifiers[0], p, gain_ubpb=400, timestamp=ts + 1000))
        return {"arena": arena.hex[:12], "head": head.hex()}


def reuse_store(home: Path, commits: int) -> dict[str, str] | None:
    """The ids of a store built by an earlier run with as many commits, else None (build anew)."""
    with Store.open(home) as s:
        arenas = s.arenas()
        if len(arenas) != 1 or s.counts()["proposal"] != commits:
            raise SystemExit(f"{home} holds another store: remove it or pick another --store")
        arena = arenas[0]
        votes: dict[bytes, int] = {}
        for a in s.attestations(arena.id):
            votes[a.proposal] = votes.get(a.proposal, 0) + 1
        accepted = [p for p in s.proposals(arena.id) if votes.get(p.id) == 3]
        return {"arena": arena.hex[:12], "head": accepted[-1].id.hex()}


def write_forever(home: Path, rate: float, seconds: float) -> None:
    """The writer process of the "under writes" rows: a no_gain verdict on pending proposals, `rate`/s."""
    with Store.open(home) as s:
        arena = s.arenas()[0]
        votes: dict[bytes, int] = {}
        for a in s.attestations(arena.id):
            votes[a.proposal] = votes.get(a.proposal, 0) + 1
        pending = [p for p in s.proposals(arena.id) if votes.get(p.id) == 1]
        end = time.monotonic() + seconds
        for i, p in enumerate(pending):
            if time.monotonic() >= end:
                break
            s.add(make_attestation(key(3), p, "no_gain", timestamp=T0 + 10**10 + i))
            time.sleep(1 / rate)


def start_writer(home: Path, rate: float, seconds: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, "--writer", str(home), "--write-rate", str(rate),
                             "--write-seconds", str(seconds)], stdout=subprocess.DEVNULL)


def start_server(home: Path) -> tuple[subprocess.Popen[str], str]:
    argv = [sys.executable, "-c", "from node.cli import main; main()", "--home", str(home),
            "serve", "--host", "127.0.0.1", "--port", "0", "--rate", "0"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 120)
    if not ready:
        proc.kill()
        raise SystemExit("the server did not start within 120 s")
    line = proc.stdout.readline()
    if not line.startswith("leaderboard: "):
        proc.kill()
        raise SystemExit(f"unexpected server output: {line!r}")
    return proc, line.split()[1].rstrip("/")


async def load(session: aiohttp.ClientSession, url: str, total: int, clients: int
               ) -> tuple[list[float], float, int]:
    """`clients` workers share `total` GETs of `url`; returns latencies, the wall time, a body's size."""
    latencies: list[float] = []
    size = [0]
    left = [total]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            t = time.perf_counter()
            async with session.get(url) as r:
                size[0] = len(await r.read())
                if r.status != 200:
                    raise SystemExit(f"{url}: HTTP {r.status}")
            latencies.append(time.perf_counter() - t)

    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(clients))), 600)
    return latencies, time.perf_counter() - started, size[0]


async def bench(base: str, ids: dict[str, str], requests: int, clients: int, home: Path, write_rate: float
                ) -> tuple[list[Row], dict[str, float]]:
    a = ids["arena"]
    targets = [
        ("baseline: minimal handler", "/healthz"),
        ("baseline: static file", "/static/style.css"),
        ("overview", f"/a/{a}"),
        ("commit page (head)", f"/a/{a}/c/{ids['head']}"),
        ("contributors page", f"/a/{a}/contributors"),
        ("API overview", f"/api/arenas/{a}"),
        ("API commits (page of 25)", f"/api/arenas/{a}/commits?per_page=25"),
        ("API commit", f"/api/arenas/{a}/commits/{ids['head']}"),
    ]
    rows = []
    connector = aiohttp.TCPConnector(limit=clients)
    # identity: measure the server, not this client's gunzip (gzip is served to clients that ask)
    async with aiohttp.ClientSession(connector=connector, headers={"Accept-Encoding": "identity"}) as session:
        await load(session, base + "/healthz", clients * 3, clients)  # open every connection first
        for _, path in targets:  # warm: the first request of a version renders, later ones are cached
            async with session.get(base + path) as r:
                await r.read()
        for name, path in targets:
            lat, wall, size = await load(session, base + path, requests, clients)
            lat.sort()
            rows.append(Row(name, path, len(lat), len(lat) / wall, statistics.median(lat) * 1000,
                            lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, size))
        extra = await freshness(session, base)
        if write_rate > 0:
            for name, path in [("overview under writes", f"/a/{a}"), ("API overview under writes", f"/api/arenas/{a}")]:
                async with session.get(base + "/healthz") as r:
                    before = (await r.json())["version"]
                written = _stored(home)
                writer = start_writer(home, write_rate, 600)
                try:
                    await _until_version_moves(session, base, before)  # the writer is under way
                    lat, wall, size = await load(session, base + path, requests * 3, clients)
                finally:
                    writer.kill()
                    writer.wait()
                written = _stored(home) - written
                lat.sort()
                rows.append(Row(f"{name} ({written} objects written at {write_rate:g}/s)", path, len(lat),
                                len(lat) / wall, statistics.median(lat) * 1000,
                                lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, size))
    for r in rows:
        r.ratio = r.median_ms / rows[0].median_ms
    return rows, extra


def _stored(home: Path) -> int:
    with Store.open(home) as s:
        return s.data_version()


async def _until_version_moves(session: aiohttp.ClientSession, base: str, before: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        async with session.get(base + "/healthz") as r:
            if (await r.json())["version"] > before:
                return
        await asyncio.sleep(0.05)
    raise SystemExit("the writer stored nothing within 60 s")


async def freshness(session: aiohttp.ClientSession, base: str) -> dict[str, float]:
    """Snapshot build time, and how long a new object takes to show (write -> version seen)."""
    async with session.get(base + "/healthz") as r:
        health = await r.json()
    return {"snapshot_build_ms": health["build_ms"], "version": health["version"]}


async def visible_after_write(base: str, home: Path) -> float:
    """Milliseconds from storing one attestation to the API answering at a version that holds it."""
    async with aiohttp.ClientSession() as session:

        async def served() -> int:
            async with session.get(base + "/api/arenas") as r:
                return int((await r.json())["version"])

        deadline = time.perf_counter() + 120
        while await served() < _stored(home):  # let the server catch up with earlier writes first
            if time.perf_counter() > deadline:
                raise SystemExit("the server never caught up with the store")
            await asyncio.sleep(0.05)
        with Store.open(home) as s:
            arena = s.arenas()[0]
            votes: dict[bytes, int] = {}
            for a in s.attestations(arena.id):
                votes[a.proposal] = votes.get(a.proposal, 0) + 1
            pending = [p for p in s.proposals(arena.id) if votes.get(p.id) == 1]
            t = time.perf_counter()
            s.add(make_attestation(key(2), pending[-1], "no_gain", timestamp=T0 + 10**10))
            target = s.data_version()
        while time.perf_counter() < t + 60:
            if await served() >= target:
                return (time.perf_counter() - t) * 1000
            await asyncio.sleep(0.01)
    raise SystemExit("the new object never became visible")


def render(rows: list[Row], meta: dict[str, object]) -> str:
    out = [f"leaderboard benchmark: {meta['commits']:,} commits, {meta['clients']} concurrent clients, "
           f"{meta['requests']} requests per row ({meta['machine']})",
           "| page | body bytes | requests/s | median ms | p99 ms | median vs minimal handler |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r.name} (`{r.path[:40]}`) | {r.bytes:,} | {r.rps:,.0f} | {r.median_ms:.1f} | {r.p99_ms:.1f} | "
                   f"{r.ratio:.2f}x |")
    out.append(f"store built in {meta['build_s']:.1f} s; server start to first answer {meta['start_s']:.1f} s; "
               f"snapshot build {meta['snapshot_build_ms']:.0f} ms; a new attestation visible after "
               f"{meta['visible_ms']:.0f} ms")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--commits", type=int, default=None, help="commits in the store (default 10,000)")
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--requests", type=int, default=None, help="requests per row (default 3,000)")
    ap.add_argument("--quick", action="store_true", help="1,000 commits and 500 requests per row")
    ap.add_argument("--write-rate", type=float, default=5.0,
                    help="objects/s a separate writer process stores during the 'under writes' rows (0: skip)")
    ap.add_argument("--store", type=Path, default=None,
                    help="keep the store in this directory and reuse it on later runs (default: a fresh temp dir)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--writer", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--write-seconds", type=float, default=60.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.writer is not None:
        write_forever(args.writer, args.write_rate, args.write_seconds)
        return 0
    commits = args.commits or (1_000 if args.quick else 10_000)
    requests = args.requests or (500 if args.quick else 3_000)
    with tempfile.TemporaryDirectory(prefix="ratchet-bench-lb-") as tmp:
        home = args.store or Path(tmp) / "home"
        t = time.perf_counter()
        ids = reuse_store(home, commits) if args.store and (home / "chain.sqlite3").exists() else None
        if ids is None:
            ids = build_store(home, commits)
        build_s = time.perf_counter() - t
        t = time.perf_counter()
        proc, base = start_server(home)
        try:
            start_s = time.perf_counter() - t
            rows, extra = asyncio.run(bench(base, ids, requests, args.clients, home, args.write_rate))
            visible_ms = asyncio.run(visible_after_write(base, home))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    meta: dict[str, object] = {
        "commits": commits, "clients": args.clients, "requests": requests, "build_s": build_s,
        "start_s": start_s, "visible_ms": visible_ms, **extra,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
    }
    if args.json:
        print(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2))
    else:
        print(render(rows, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
