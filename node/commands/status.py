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
    from chain.errors import KeyFileError
    from chain.keys import SigningKey
    from node.roles.status import collect

    try:
        me = SigningKey.load(ctx.key_path).public if ctx.key_path.exists() else None
    except KeyFileError:
        me = None  # an unreadable key: the rest of the status still helps
    data = collect(ctx.home, ctx.store(), me)
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
        me = a.get("me")
        if me and "checks" in me:
            lines.append(f"  this key: {me['status']} since height {me['since_height']}, {me['checks']} checks "
                         f"read, {me['agreed']} agreed, {me['disagreed']} disagreed; needs {me['needs']}")
        elif me:
            lines.append(f"  this key: {me['status']}")
    return "\n".join(lines)
