"""The val_bpb chart and the history (points over time) chart: data and inline-SVG geometry, server side.

Only numbers leave this module (coordinates, tick labels made from numbers),
so the SVG needs no script and carries no untrusted text. Long chains are
thinned: the line keeps MAX_POINTS points, and at most MAX_DOTS of them get a
clickable dot, which keeps the overview of a 10,000-commit chain small.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from chain.consensus import ACCEPTED
from chain.metrics import fmt_ubpb

if TYPE_CHECKING:  # the snapshot builder imports this module's thin() (through leaderboard.people)
    from leaderboard.snapshot import ArenaView

WIDTH, HEIGHT = 720, 260
PAD_L, PAD_R, PAD_T, PAD_B = 64, 16, 14, 30
MAX_POINTS = 300
MAX_DOTS = 60


def thin(items: list[Any], limit: int) -> list[Any]:
    """At most `limit` items spread evenly, first and last kept."""
    if len(items) <= limit:
        return items
    step = (len(items) - 1) / (limit - 1)
    return [items[round(i * step)] for i in range(limit)]


def series(av: ArenaView, only: Collection[bytes] | None = None) -> list[dict[str, Any]]:
    """Accepted commits with a metric (of `only`, if given), oldest first (thinned); mainline ones flagged."""
    main = set(av.mainline)
    commits = av.commits
    kept = [c for c in reversed(av.newest) if commits[c].status == ACCEPTED and commits[c].metric_ubpb is not None
            and (only is None or c in only)]
    chosen = thin([c for c in kept if c in main], MAX_POINTS) + thin([c for c in kept if c not in main],
                                                                     MAX_POINTS // 3)
    points = []
    for cid in chosen:
        info = commits[cid]
        points.append({"id": cid.hex(), "short": cid.hex()[:12], "height": info.height,
                       "timestamp": info.timestamp, "val_ubpb": info.metric_ubpb,
                       "mainline": cid in main})
    return sorted(points, key=lambda p: (p["timestamp"], p["id"]))


def chart_data(av: ArenaView, only: Collection[bytes] | None = None) -> dict[str, Any]:
    """What the chart shows, as data (the API's form); `only`: just these commits (a person's)."""
    return {"points": series(av, only), "reference_ubpb": av.reference_ubpb, "floor_ubpb": av.floor_ubpb,
            "created_at": av.arena.created_at}


def points_svg(points: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Geometry of a history chart: cumulative points over time (`points`: timestamp, points, id,
    short), from zero; None without points."""
    if not points:
        return None
    t0, t1 = points[0]["timestamp"], points[-1]["timestamp"]
    top = max(p["points"] for p in points)
    pts = [{**p, "mainline": True} for p in points]
    return _geometry(pts, "timestamp", (t0, max(t1, t0 + 1)), 0, max(top * 1.06, 1), None, None, _time_label,
                     start=(t0, 0), ykey="points", yfmt=lambda v: str(round(v)),
                     label=lambda p: f"{p['short']} {p['points']} points")


def svg(data: dict[str, Any]) -> dict[str, Any]:
    """Geometry of the two charts (over height, over time) for the page's inline SVG."""
    pts, ref, floor = data["points"], data["reference_ubpb"], data["floor_ubpb"]
    out: dict[str, Any] = {"width": WIDTH, "height": HEIGHT, "by_height": None, "by_time": None}
    if not pts:
        return out
    values = [p["val_ubpb"] for p in pts] + [v for v in (ref, floor) if v is not None]
    lo, hi = min(values), max(values)
    span = max(hi - lo, 1)
    lo, hi = lo - span * 0.06, hi + span * 0.06
    out["by_height"] = _geometry(pts, "height", (0, max(p["height"] for p in pts)), lo, hi, ref, floor,
                                 _height_label, start=(0, ref), integer_x=True)
    # Over time the line starts at the reference when the arena was created (if that came first).
    t0 = min(p["timestamp"] for p in pts)
    t1 = max(p["timestamp"] for p in pts)
    created = data.get("created_at")
    start = None
    if created is not None and created < t0:
        t0, start = created, (created, ref)
    out["by_time"] = _geometry(pts, "timestamp", (t0, max(t1, t0 + 1)), lo, hi, ref, floor, _time_label,
                               start=start)
    return out


def _val_label(p: dict[str, Any]) -> str:
    return f"{p['short']} h{p['height']} {fmt_ubpb(p['val_ubpb'])}"


def _geometry(pts: list[dict[str, Any]], xkey: str, xrange: tuple[float, float], lo: float, hi: float,
              ref: int | None, floor: int | None, xlabel: Any,
              start: tuple[float, int | None] | None = None, integer_x: bool = False, ykey: str = "val_ubpb",
              yfmt: Callable[[float], str] = lambda v: fmt_ubpb(round(v))[:6],
              label: Callable[[dict[str, Any]], str] = _val_label) -> dict[str, Any]:
    x0, x1 = xrange
    xspan = max(x1 - x0, 1)
    inner_w, inner_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B

    def sx(x: float) -> float:
        return round(PAD_L + (x - x0) / xspan * inner_w, 1)

    def sy(y: float) -> float:
        return round(PAD_T + (hi - y) / (hi - lo) * inner_h, 1)

    main = [p for p in pts if p["mainline"]]
    line = [(sx(p[xkey]), sy(p[ykey])) for p in main]
    if start is not None and start[1] is not None:
        line.insert(0, (sx(start[0]), sy(start[1])))
    path = "M" + " L".join(f"{x},{y}" for x, y in line) if len(line) > 1 else ""
    dotted = thin(main, MAX_DOTS) + thin([p for p in pts if not p["mainline"]], MAX_DOTS // 3)
    dots = [{"x": sx(p[xkey]), "y": sy(p[ykey]), "main": p["mainline"], "id": p["id"], "label": label(p)}
            for p in dotted]
    yticks = [{"y": sy(lo + (hi - lo) * i / 4), "label": yfmt(lo + (hi - lo) * i / 4)} for i in range(5)]
    xticks = []
    for i in range(5):
        x = x0 + xspan * i / 4
        if integer_x:
            x = round(x)
        label = xlabel(x, xspan)
        if not xticks or xticks[-1]["label"] != label:
            xticks.append({"x": sx(x), "label": label, "anchor": "middle"})
    xticks[0]["anchor"] = "start"  # the outer labels stay inside the chart
    if len(xticks) > 1:
        xticks[-1]["anchor"] = "end"
    return {
        "path": path, "dots": dots, "xticks": xticks, "yticks": yticks,
        "ref_y": sy(ref) if ref is not None else None, "floor_y": sy(floor) if floor is not None else None,
        "left": PAD_L, "right": WIDTH - PAD_R, "top": PAD_T, "bottom": HEIGHT - PAD_B,
    }


def _height_label(x: float, span: float) -> str:
    return str(round(x))


def _time_label(ms: float, span: float) -> str:
    t = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    if span < 3600 * 1000:
        return t.strftime("%H:%M:%S")
    return t.strftime("%H:%M" if span < 2 * 86400 * 1000 else "%m-%d")
