"""`ratchet propose`: sign a hand-made script as a proposal on the current head and get it out.

Two ways out, chosen automatically:
- a node (`ratchet node` / `ratchet verify`) runs on the same data directory:
  the proposal and its script go into the shared store and that node gossips
  them (its watcher notices objects other processes write); `propose` waits
  until the node reports it published something new;
- no node runs there: `propose` starts a short-lived node of its own on the
  data directory (bootstrap peers from --bootstrap, node.toml, the arena),
  syncs the chain first (the head must be current), publishes, and stays until
  a peer confirms it holds both the proposal and its script, then exits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from chain.consensus import state_for
from chain.keys import SigningKey
from chain.objects import Arena, Blob, Proposal
from chain.store import Store

if TYPE_CHECKING:
    from node.p2p.network import NetworkConfig

log = logging.getLogger(__name__)


class ProposeError(Exception):
    """A proposal that cannot be made or published (too large, no peers, no confirmation)."""


@dataclass(frozen=True)
class MeasuredClaim:
    """What the author says it measured (the proposal's claim fields), in micro-bpb."""

    parent_ubpb: int
    candidate_ubpb: int
    seeds: tuple[int, ...] = ()
    hardware: str = "unmeasured"


def build_proposal(key: SigningKey, store: Store, arena: Arena, script: bytes, message: str,
                   parent: bytes | None = None, claim: MeasuredClaim | None = None,
                   now_ms: int | None = None) -> tuple[Proposal, Blob]:
    """The signed proposal (on the head unless `parent` is given) and its script blob: the one
    builder behind `ratchet propose` and the research loop.

    Without a measured claim, the author claims no gain: the head's metric for both.
    """
    if len(script) > arena.max_script_bytes:
        raise ProposeError(f"script of {len(script)} bytes exceeds the arena's limit of "
                           f"{arena.max_script_bytes}")
    state = state_for(store, arena.id)
    parent = state.head if parent is None else parent
    if parent != arena.id and parent not in state.commits:
        raise ProposeError(f"parent {parent.hex()[:12]} is not a proposal of arena {arena.name}")
    if claim is None:
        metric = state.head_metric_ubpb() or 0
        claim = MeasuredClaim(metric, metric)
    blob = Blob(data=script)
    proposal = Proposal.create(
        key, arena=arena.id, parent=parent, script=blob.id, message=message,
        claim_parent_ubpb=claim.parent_ubpb, claim_candidate_ubpb=claim.candidate_ubpb,
        claim_seeds=list(claim.seeds), claim_hardware=claim.hardware,
        timestamp=now_ms if now_ms is not None else int(time.time() * 1000),
    )
    return proposal, blob


def publish_to_store(store: Store, proposal: Proposal, blob: Blob) -> None:
    """Write the script, then the proposal, into the store; the node running on it gossips them."""
    store.add(blob)
    store.add(proposal)


async def propose_via_peers(home: Path, store: Store, config: NetworkConfig,
                            make: Callable[[], tuple[Proposal, Blob]], timeout: float,
                            progress: Callable[[str], None] | None = None,
                            ) -> tuple[Proposal | None, Blob | None, list[str]]:
    """Run a short-lived node: sync the chain from a peer (so the head is current), build the
    proposal with `make()`, publish it, and return it with the peers that confirmed holding it."""
    import trio  # here, not above: the research loop builds proposals without loading libp2p

    from node.p2p import reqresp
    from node.p2p.network import Network

    network = Network(home, store, config)
    say = progress or (lambda text: None)
    confirmed: list[str] = []
    proposal = blob = None
    async with trio.open_nursery() as nursery:
        await nursery.start(network.run)
        with trio.move_on_after(timeout):
            say("connecting to peers")
            while not network.connected():
                await trio.sleep(0.1)
            say(f"connected to {len(network.connected())} peer(s); syncing the chain")
            while network.counters.sync_rounds + network.counters.sync_failures == 0:
                await trio.sleep(0.1)
            proposal, blob = make()
            say(f"publishing {proposal.hex[:12]} on {proposal.parent.hex()[:12]}")
            store.add(blob)
            await network.publish(proposal)
            while not confirmed:
                for peer in network.connected():
                    try:
                        held = await reqresp.have(network.host, peer, [proposal.id, blob.id], timeout=5)
                    except Exception as e:  # a peer that cannot answer now is asked again
                        log.debug("have from %s: %r", peer, e)
                        continue
                    if all(held):
                        confirmed.append(str(peer))
                if not confirmed:
                    await trio.sleep(0.2)
        nursery.cancel_scope.cancel()
    return proposal, blob, confirmed
