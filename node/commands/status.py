"""`ratchet status`: this data directory's node (running or not), its peers, heads and queue."""

from __future__ import annotations

from typing import Any

import click

from node.context import Context
from node.render import short


@click.command()
@click.pass_obj
def status(ctx: Context) -> None:
    """Show the node on this data directory: peers, head of each arena, verifier queue."""
    from node.roles.status import collect

    data = collect(ctx.home, ctx.store())
    ctx.emit(data, _text(data))


def _text(data: dict[str, Any]) -> str:
    node = data["node"]
    lines = []
    if node is None:
        lines.append("node: not running on this data directory")
    else:
        lines.append(f"node: {node.get('role', '?')} running (pid {node['pid']}), peer id {node['peer_id']}")
        lines.extend(f"  listening on {a}" for a in node.get("addrs", []))
        peers = node.get("peers", [])
        lines.append(f"peers: {len(peers)} connected" + (f", {len(node['banned'])} banned" if node.get("banned") else ""))
        lines.extend(f"  {p['id']}  score {p.get('score', 0)}" for p in peers)
        c = node.get("counters", {})
        lines.append(f"sync: {c.get('sync_rounds', 0)} rounds, {c.get('pulled', 0)} objects pulled, "
                     f"{c.get('sync_failures', 0)} failed; gossip: {c.get('gossip_stored', 0)} stored, "
                     f"{c.get('published', 0)} published")
        v = node.get("verifier")
        if v:
            lines.append(f"verifier {short(v['key'], 16)}: queue {v['queue']}, running {len(v['in_flight'])}"
                         f"/{v['workers']}, checked {v['checked']}, failed {v['failed']}")
    for a in data["arenas"]:
        head = "the arena (nothing accepted yet)" if a["head"] == a["id"] else short(a["head"])
        lines.append(f"arena {a['name']} {short(a['id'])}: head {head} height {a['height']}, "
                     f"{a['accepted']} accepted, {a['pending']} pending, {a['objects']} objects")
    return "\n".join(lines)
