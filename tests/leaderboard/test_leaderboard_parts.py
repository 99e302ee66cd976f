"""The leaderboard's pure parts: snapshot indexes, diff lexing, chart geometry, caches, rate limit."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
from lb_world import FAST, run, serving

from chain.builders import key, make_arena, make_attestation, make_proposal
from chain.consensus import compute_state, tally
from chain.objects import Attestation
from chain.seeds import derive_seeds, seed_proof
from chain.store import Store
from leaderboard.cache import ResponseCache, SnapshotCache
from leaderboard.chart import MAX_DOTS, chart_data, svg, thin
from leaderboard.diff import MAX_LINES, highlight, script_diff
from leaderboard.security import RateLimiter
from leaderboard.snapshot import Snapshot, build_snapshot, build_view


def _with_floor(verifier, proposal, gain: int, floor: int) -> Attestation:
    proof = seed_proof(verifier, proposal.id)
    seeds = derive_seeds(proof, 2)
    return Attestation.create(
        verifier, proposal=proposal.id, arena=proposal.arena, seeds=seeds, seed_proof=proof,
        parent_ubpb=[1_500_000] * 2, candidate_ubpb=[1_500_000 - gain] * 2, floor_ubpb=[floor] * 2,
        hardware="cpu", harness="test-1", verdict="improves", flags=[], wall_ms=1000, timestamp=1_700_000_005_000,
    )


def test_view_agreement_conflicts_orphans_and_floor() -> None:
    v = [key(1), key(2), key(3)]
    arena, _ = make_arena(key(0), [x.public for x in v], quorum=2)
    p1, _ = make_proposal(key(10), arena, arena.id, message="first")
    p2, _ = make_proposal(key(11), arena, p1.id, message="child of a rejected one", timestamp=1_700_000_009_000)
    atts = [
        make_attestation(v[0], p1, "no_gain"), make_attestation(v[1], p1, "no_gain"),
        # v3 signed both verdicts on p1: it counts for nothing and disagreed
        make_attestation(v[2], p1, "improves"), make_attestation(v[2], p1, "no_gain", timestamp=1_700_000_003_000),
        _with_floor(v[0], p2, 900, 1_200_000), _with_floor(v[1], p2, 1100, 1_210_000),
    ]
    av = build_view(compute_state(arena, [p1, p2], atts), atts)
    assert av.commits[p1.id].status == "rejected" and av.commits[p2.id].status == "orphaned"
    [conflict] = av.recent_checks[v[2].public]
    assert (conflict.proposal, conflict.verdict, conflict.agreed) == (p1.id, "conflicting", False)
    assert av.disagreements[v[2].public] == [conflict] and av.disagreements[v[0].public] == []
    # newest commit first; no_gain on a rejected commit and improves on an orphaned one both agree
    assert [(c.proposal, c.agreed) for c in av.recent_checks[v[0].public]] == [(p2.id, True), (p1.id, True)]
    assert av.floor_ubpb == 1_200_000 and av.mainline == [] and av.status_counts["orphaned"] == 1
    assert av.commits[p2.id].metric_ubpb == 1_500_000 - 1100  # low median of the quorum's candidate means
    assert av.children[p1.id] == [p2.id] and av.commits[p2.id].votes == 2
    assert [e.kind for e in av.recent][:1] == ["proposal"]  # p2 is the newest event
    # Checks and credit read the consensus tally; they keep no vote rule of their own.
    for cid, row in av.commits.items():
        t = tally(arena, cid, atts)
        assert row.votes == len(t.signed)
        for k in t.signed:
            assert [(c.verdict, c.agreed) for c in av.recent_checks[k] if c.proposal == cid] == [
                (t.verdict(k), t.agreed(k, row.status))]
    for k, vc in av.verifier.items():
        assert (vc.agreed, vc.disagreed) == (sum(1 for c in av.recent_checks[k] if c.agreed), len(av.disagreements[k]))


def test_highlight_and_diff_keep_text_as_data() -> None:
    toks = highlight('x = "a<b>"  # <script>alert(1)</script>')
    assert ("s", '"a<b>"') in toks and toks[-1] == ("c", "# <script>alert(1)</script>")
    assert "".join(t for _, t in toks) == 'x = "a<b>"  # <script>alert(1)</script>'
    assert ("k", "def") in highlight("def f(): return len(x)") and ("b", "len") in highlight("len(x)")
    d = script_diff(b"a = 1\nb = 2\nc = 3\n", b"a = 1\nb = 20\nc = 3\nd = 4\n")
    kinds = [(ln["kind"], ln["old"], ln["new"]) for ln in d["lines"]]
    assert kinds[:3] == [("file", None, None), ("file", None, None), ("hunk", None, None)]
    assert ("del", 2, None) in kinds and ("add", None, 2) in kinds and ("add", None, 4) in kinds
    assert (d["added"], d["removed"], d["truncated"]) == (2, 1, False)
    big = script_diff(b"", b"".join(b"x%d = 1\n" % i for i in range(MAX_LINES + 50)))
    assert big["truncated"] and len(big["lines"]) == MAX_LINES
    assert script_diff(b"same\n", b"same\n")["identical"]


def test_chart_thinning_and_geometry() -> None:
    assert thin(list(range(10)), 20) == list(range(10))
    t = thin(list(range(1000)), 7)
    assert len(t) == 7 and t[0] == 0 and t[-1] == 999
    v = [key(1), key(2)]
    arena, _ = make_arena(key(0), [x.public for x in v], quorum=2)
    props, atts, parent = [], [], arena.id
    for i in range(200):
        p, _ = make_proposal(key(10), arena, parent, message=f"c{i}", timestamp=1_700_000_001_000 + i)
        props.append(p)
        atts += [make_attestation(x, p, gain_ubpb=1000, parent_ubpb=1_500_000 - 1000 * i) for x in v]
        parent = p.id
    av = build_view(compute_state(arena, props, atts), atts)
    data = chart_data(av)
    assert len(data["points"]) == 200 and data["reference_ubpb"] == 1_500_000
    g = svg(data)["by_height"]
    assert len(g["dots"]) == MAX_DOTS
    ys = [d["y"] for d in g["dots"]]
    assert ys == sorted(ys)  # val_bpb falls along the chain: each dot lower on the chart
    assert all(g["top"] <= y <= g["bottom"] for y in ys) and g["path"].count("L") == 200  # ref + 200


def test_rate_limiter_refills() -> None:
    rl = RateLimiter(rate=2.0, burst=2)
    assert [rl.allow("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.5]
    assert rl.allow("b", now=0.0) == 0.0  # per client
    assert rl.allow("a", now=0.6) == 0.0  # 1.2 tokens refilled
    assert RateLimiter(0, 1).allow("a") == 0.0  # 0: no limit


def test_response_cache_versions_and_bounds() -> None:
    c = ResponseCache(max_entries=10, max_bytes=100)
    e = c.put("a", 1, b"x" * 60, "text/html")
    assert c.get("a", 1) == e and c.get("a", 2) is None
    assert e.etag.startswith('"1-')
    c.put("b", 1, b"y" * 60, "text/html")  # 120 bytes > 100: the oldest goes
    assert c.get("a", 1) is None and c.get("b", 1) is not None and c.bytes == 60


def test_snapshot_cache_serves_stale_while_rebuilding() -> None:
    release = threading.Event()
    versions = iter([1, 2])

    def build() -> Snapshot:
        v = next(versions)
        if v == 2:
            release.wait(10)
        return Snapshot(v, [], 0.0)

    async def go() -> None:
        with ThreadPoolExecutor(1) as pool:
            cache = SnapshotCache(build, lambda: pool, wait_s=0.05, pause=0)
            assert (await cache.get(1)).version == 1
            assert (await cache.get(2)).version == 1  # rebuild still running: the old one, quickly
            release.set()
            await asyncio.wait_for(cache._task, 10)  # type: ignore[arg-type]
            assert (await cache.get(2)).version == 2 and cache.builds == 2

    run(go())


def test_several_arenas_and_a_missing_script(tmp_path: Path) -> None:
    home = tmp_path / "two"
    v = [key(1), key(2), key(3)]
    with Store.open(home) as s:
        for name in ("alpha", "beta"):
            arena, blob = make_arena(key(0), [x.public for x in v], quorum=2, name=name)
            s.add(blob)
            s.add(arena)
        p, _ = make_proposal(key(10), arena, arena.id, message="script never arrived")
        s.add(p)  # its blob is not held
        snap = build_snapshot(s)
    assert [a.arena.name for a in snap.arenas] == ["alpha", "beta"] and snap.find("beta").id == arena.id
    assert snap.find(arena.hex[:6]).id == arena.id and snap.find("gamma") is None

    async def go() -> None:
        async with serving(home, FAST) as base, aiohttp.ClientSession() as http:
            async with http.get(base + "/") as r:
                body = await r.text()
            assert r.status == 200 and "alpha" in body and "beta" in body and 'class="switcher"' in body
            async with http.get(f"{base}/a/alpha") as r:  # an arena with no proposal yet
                body = await r.text()
            assert r.status == 200 and "No accepted commit yet" in body and "No proposals yet" in body
            async with http.get(f"{base}/a/beta/c/{p.id.hex()}") as r:
                body = await r.text()
            assert r.status == 200 and "script not held by this node" in body

    run(go())
