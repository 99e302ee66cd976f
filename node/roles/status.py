"""What `ratchet status` reports: the running node's status file plus the store's view of each arena."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chain.consensus import ACCEPTED, PENDING, ChainState, state_for
from chain.store import Store
from chain.verifiers import ADMIT_AFTER
from node.p2p.statusfile import local_node


def collect(home: Path, store: Store, me: bytes | None = None) -> dict[str, Any]:
    """{"node": status of the node running on `home` or None, "arenas": [...]}; with `me` (this
    home's public key) each arena also says where that key stands as a verifier."""
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
            "me": None if me is None else standing_of(state, me),
        })
    return {"home": str(home), "node": local_node(home), "arenas": arenas}


def standing_of(state: ChainState, key: bytes) -> dict[str, Any]:
    """One key's verifier standing on an arena (chain.verifiers) and what it needs to be counted."""
    standing = state.standing
    if standing is None:
        return {"status": "founding" if key in state.arena.verifiers else "volunteer"}
    rec = standing.record(key)
    if rec.counted:
        needs = "nothing: its votes count"
    elif rec.status == "retired":
        needs = "an amendment adding it back as a founding key"
    elif rec.eligible_at is not None:
        needs = "an admission slot: one key is admitted per height, the one eligible longest first"
    else:
        needs = (f"{rec.needed} more agreeing checks in a row (of {ADMIT_AFTER}) on decided proposals its "
                 "volunteer ticket gives it")
    return {"status": rec.status, "since_height": rec.since, "checks": rec.checks, "agreed": rec.agreed,
            "disagreed": rec.disagreed, "streak": rec.streak, "needed": rec.needed, "needs": needs,
            "counted_keys": len(standing.counted), "quorum": standing.quorum}
