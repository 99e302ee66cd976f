"""Headless Debian chromium: a hostile name and team render as text, beside the key, and run nothing."""

from __future__ import annotations

import json

import pytest
from cdp import browser_page
from lb_world import HOSTILE_NAME, HOSTILE_TEAM, World, add_profiles, run, serving

from chain.profiles import team_id


@pytest.mark.timeout(120)
def test_a_hostile_name_is_text_in_chromium(world: World) -> None:
    add_profiles(world)
    hostile = world.authors[1].public.hex()

    async def go() -> None:
        async with serving(world.home) as base, browser_page() as page:
            for path in ("/a/tiny/contributors", f"/a/tiny/p/{hostile}", f"/a/tiny/t/{team_id(HOSTILE_TEAM)}"):
                await page.navigate(base + path)
                await page.wait_for("document.readyState === 'complete' && !!document.querySelector('#main')")
                names = await page.evaluate("[...document.querySelectorAll('#main .name')].map(e => e.textContent)")
                assert HOSTILE_NAME in names or HOSTILE_TEAM in names, (path, names)
                # the markup in the name made no element: no image, no script in the page body
                assert await page.evaluate("document.querySelectorAll('#main img, #main script').length") == 0
                # each person's name sits in the same link as its key's prefix
                links = await page.evaluate(
                    "[...document.querySelectorAll('#main a.key')].filter(a => a.querySelector('.name'))"
                    ".map(a => [a.querySelector('.name').textContent, a.querySelector('code').textContent])")
                assert links and all(len(k) == 12 for _, k in links), (path, links)
                assert [hostile[:12]] == [k for n, k in links if n == HOSTILE_NAME][:1], (path, links)
            assert await page.evaluate("document.querySelector('#person-name .name') === null")  # the team page
            await page.navigate(f"{base}/a/tiny/p/{hostile}")
            await page.wait_for("!!document.querySelector('#person-name')")
            assert await page.evaluate("document.querySelector('#person-name .name').textContent") == HOSTILE_NAME
            assert (await page.evaluate("document.title")).startswith(HOSTILE_NAME)
            assert await page.evaluate("document.querySelectorAll('figure.chart svg').length") >= 1
            assert page.dialogs == []
            outside = [u for u in page.requests if not u.startswith(base + "/") and u != "about:blank"]
            assert outside == [], outside
            violations = [m for m in page.console if "Content Security Policy" in m or "Refused" in m]
            assert violations == [], json.dumps(page.console)

    run(go(), timeout=100)
