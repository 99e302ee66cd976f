#!/usr/bin/env python3
"""Benchmark what profiles cost the leaderboard: snapshot build and page render with N profiles.

Builds the chain of scripts/bench_leaderboard.py (2,000 commits by default),
then for each profile count N measures, in this process, the snapshot build
(consensus, credit, look-alikes, teams, histories) and the uncached render of
the pages that show names (present + Jinja, what a cache miss costs), next to
the baseline of the same store with no profile. The 23 active keys get
profiles (in 8 teams, two keys with look-alike names); the other N - 23 are
keys that set a profile and did nothing else (what a flood of profiles leaves).

    python scripts/bench_profiles.py                 # N = 0, 1,000, 10,000
    python scripts/bench_profiles.py --commits 500 --profiles 0 100
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_leaderboard import T0, build_store  # noqa: E402

from chain.builders import key  # noqa: E402
from chain.objects import Profile  # noqa: E402
from chain.store import Store  # noqa: E402
from leaderboard import present, present_teams  # noqa: E402
from leaderboard.chart import chart_data, points_svg, svg  # noqa: E402
from leaderboard.render import environment  # noqa: E402
from leaderboard.snapshot import build_snapshot  # noqa: E402

ACTIVE = [0, 1, 2, 3, *range(10, 30)]  # key numbers of build_store: creator, verifiers, 20 authors
REPEATS = 15


def median_ms(fn: object, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def measure(home: Path) -> dict[str, float]:
    with Store.open(home) as s:
        build = median_ms(lambda: build_snapshot(s), 3)
        snap = build_snapshot(s)
    av = snap.arenas[0]
    env = environment()
    author = key(10).public
    paging = present.Paging()

    def page(template: str, data: dict) -> None:  # type: ignore[type-arg]
        env.get_template(template).render(data=data, nav="", version=snap.version, arenas=[], current=None,
                                          query={}, journal=False)

    def person() -> None:
        data = present.person(av, author, paging)
        chart = chart_data(av, only=av.by_author.get(author, []))
        page("person.html", {**data, "chart": chart, "svg": {"history": points_svg(data["history"]), **svg(chart)}})

    def team() -> None:
        data = present_teams.team(av, av.teams[0], paging)
        page("team.html", {**data, "svg": {"history": points_svg(data["history"])}})

    out = {"snapshot build": build,
           "overview": median_ms(lambda: page("overview.html", {
               **present.overview(av, chart_data(av)), "svg": svg(chart_data(av))})),
           "contributors": median_ms(lambda: page("contributors.html", present.contributors(av, "points", paging))),
           "person": median_ms(person)}
    if av.teams:
        out["teams"] = median_ms(lambda: page("teams.html", present_teams.teams(av, "points", paging)))
        out["team"] = median_ms(team)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commits", type=int, default=2000)
    ap.add_argument("--profiles", type=int, nargs="+", default=[0, 1000, 10000])
    args = ap.parse_args()
    rows: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        build_store(home, args.commits)
        held = 0
        for n in sorted(args.profiles):
            if n > held:  # profiles accumulate: each count adds to the last
                with Store.open(home) as s:
                    before = s.counts()["profile"]
                add_profiles_range(home, before, n)
                held = n
            rows[n] = measure(home)
    names = list(rows[max(rows)])
    base = rows[min(rows)]
    print(f"{args.commits} commits; median ms (snapshot: of 3 builds; pages: of {REPEATS} uncached renders)")
    print(f"{'profiles':>9} " + " ".join(f"{n:>14}" for n in names))
    for n, r in rows.items():
        cells = [f"{r[k]:8.1f} ({r[k] / base[k]:.2f}x)" if k in r and k in base else f"{r.get(k, 0):8.1f}"
                 for k in names]
        print(f"{n:>9} " + " ".join(f"{c:>14}" for c in cells))


def add_profiles_range(home: Path, start: int, end: int) -> None:
    """Profiles number `start` to `end` - 1 (add_profiles' numbering)."""
    with Store.open(home) as s:
        for i in range(start, end):
            k = ACTIVE[i] if i < len(ACTIVE) else 1000 + i
            name = "Ada" if k in (10, 11) else f"person {k}"
            s.add(Profile.create(key(k), name=name, team=f"team {k % 8}", url="", timestamp=T0 + i))


if __name__ == "__main__":
    main()
