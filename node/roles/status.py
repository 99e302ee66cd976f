"""What `ratchet status` reports: the running node's status file plus the store's view of each arena."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chain.consensus import ACCEPTED, PENDING, state_for
from chain.store import Store
from node.p2p.statusfile import local_node


def collect(home: Path, store: Store) -> dict[str, Any]:
    """{"node": status of the node running on `home` or None, "arenas": [...]}."""
    arenas = []
    for arena in store.arenas():
        state = state_for(store, arena.id)
        head = state.commits.get(state.head)
        arenas.append({
            "id": arena.hex, "name": arena.name, "head": state.head.hex(),
            "height": head.height if head is not None else 0,
            "accepted": len(state.accepted),
            "pending": sum(1 for c in state.commits.values() if c.status == PENDING),
            "proposals": len(state.commits),
            "objects": len(store.inventory(arena.id)),
            "head_metric_ubpb": state.head_metric_ubpb(),
            "accepted_ids": None if len(state.accepted) > 50 else sorted(
                c.hex() for c in state.accepted if state.commits[c].status == ACCEPTED),
        })
    return {"home": str(home), "node": local_node(home), "arenas": arenas}
