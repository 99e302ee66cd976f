"""Headless Debian chromium against a real server and store: render, live update, escaping, no outside requests."""

from __future__ import annotations

import asyncio
import json

import pytest
from cdp import browser_page
from lb_world import EVIL, T0, World, run, serving

from chain.builders import make_proposal
from chain.store import Store


def _add_proposal(world: World, message: str) -> str:
    with Store.open(world.home) as store:  # a separate writer, as a node would be
        p, blob = make_proposal(world.authors[1], world.arena, world.accepted[-1].id, message=message,
                                timestamp=T0 + 90_000)
        store.add(blob)
        store.add(p)
    return p.id.hex()


@pytest.mark.timeout(120)
def test_overview_in_chromium(world: World) -> None:
    async def go() -> None:
        async with serving(world.home) as base, browser_page() as page:
            await page.navigate(base + "/")
            await page.wait_for("document.readyState === 'complete' && !!document.querySelector('#main')")
            # server-rendered content: the chart (3 accepted commits in each of two charts) and the tables
            assert await page.evaluate("document.querySelectorAll('figure.chart svg').length") == 2
            assert await page.evaluate("document.querySelectorAll('figure.chart circle.dot.main').length") == 6
            assert await page.evaluate("document.querySelector('figure.chart path.line').getAttribute('d')"
                                       ".split('L').length") == 4  # reference point + 3 commits
            assert await page.evaluate("document.querySelectorAll('#top-contributors tbody tr').length") == 2
            assert await page.evaluate("document.querySelectorAll('#top-verifiers tbody tr').length") == 3
            # the hostile commit message is shown as text, not markup, and ran nothing
            activity = await page.evaluate("document.querySelector('#activity').textContent")
            assert EVIL in activity
            assert await page.evaluate("document.querySelectorAll('#activity b, #main script').length") == 0
            # live: the stream connects, then a proposal written by another process appears without reload
            await page.wait_for("document.querySelector('#live').textContent === 'live'")
            await page.evaluate("window.__marker = 'same document'")
            cid = await asyncio.to_thread(_add_proposal, world, "live update arrives")
            await page.wait_for("document.querySelector('#activity').textContent.includes('live update arrives')")
            assert await page.evaluate("window.__marker") == "same document"  # no reload happened
            assert await page.evaluate(f"!!document.querySelector('a[href$=\"{cid}\"]')")
            # the commit page of the hostile message: its text exactly, inside a <pre>
            await page.navigate(f"{base}/a/tiny/c/{world.rejected.id.hex()}")
            await page.wait_for("document.readyState === 'complete' && !!document.querySelector('#message')")
            assert await page.evaluate("document.querySelector('#message').textContent") == EVIL
            assert await page.evaluate("document.querySelectorAll('#message *').length") == 0
            assert await page.evaluate("document.querySelectorAll('#diff tr.add').length") >= 1
            assert page.dialogs == []
            outside = [u for u in page.requests if not u.startswith(base + "/") and u != "about:blank"]
            assert outside == [], outside
            assert any(u.endswith("/static/live.js") for u in page.requests)
            violations = [m for m in page.console if "Content Security Policy" in m or "Refused" in m]
            assert violations == [], json.dumps(page.console)

    run(go(), timeout=100)
