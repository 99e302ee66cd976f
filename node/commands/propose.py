"""`ratchet propose SCRIPT -m MESSAGE`: sign a hand-made train.py against the head and publish it.

If a node runs on this data directory, the proposal goes through it (shared
store); otherwise a short-lived node connects to peers, publishes and waits
for a peer to confirm it holds the proposal and its script (node.roles.propose).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from node.commands.roles import network_config, network_options
from node.context import Context
from node.render import short

if TYPE_CHECKING:
    from chain.objects import Blob, Proposal


@click.command()
@click.argument("script", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-m", "--message", required=True, help="What the change does and why (the commit message).")
@click.option("--parent", default=None, help="Parent commit id prefix (default: the current head).")
@click.option("--claim-parent", type=float, default=None, help="val_bpb you measured for the parent.")
@click.option("--claim-candidate", type=float, default=None, help="val_bpb you measured for your script.")
@click.option("--wait", "wait_s", type=click.FloatRange(1), default=60.0, show_default=True,
              help="Seconds to wait for the network to take the proposal.")
@network_options
@click.pass_obj
def propose(ctx: Context, script: Path, message: str, parent: str | None, claim_parent: float | None,
            claim_candidate: float | None, wait_s: float, listen: str | None, port: int | None,
            bootstrap: tuple[str, ...], mdns: bool | None, sync_interval: float) -> None:
    """Sign SCRIPT as a proposal on the head of the arena and publish it.

    Works from a data directory holding only a key: without a local node it first
    syncs the chain (arenas included) from the peers it connects to.
    """
    from chain.errors import ChainError
    from chain.metrics import to_ubpb
    from node.commands.keys import load_key
    from node.p2p.statusfile import local_node, wait_for
    from node.roles.propose import MeasuredClaim, ProposeError, build_proposal, publish_to_store

    key = load_key(ctx)
    store = ctx.store()
    claim = None
    if (claim_parent is None) != (claim_candidate is None):
        raise click.UsageError("give both --claim-parent and --claim-candidate, or neither")
    if claim_parent is not None and claim_candidate is not None:
        claim = MeasuredClaim(to_ubpb(claim_parent), to_ubpb(claim_candidate), hardware="self-reported")
    script_bytes = script.read_bytes()

    def make() -> tuple[Proposal, Blob]:
        try:
            parent_id = store.resolve(parent) if parent else None
            # resolved here, after a fresh data directory has synced its arenas from peers
            return build_proposal(key, store, ctx.arena(), script_bytes, message, parent_id, claim)
        except (ProposeError, ChainError) as e:
            raise click.ClickException(str(e)) from e

    node = local_node(ctx.home)
    if node is not None:
        proposal, blob = make()
        result = _result(proposal, blob, "local-node")
        before = node.get("counters", {}).get("published", 0)
        publish_to_store(store, proposal, blob)
        if not ctx.as_json:
            click.echo(f"proposal {short(proposal.id)} stored; the local node (pid {node['pid']}) publishes it")
        if wait_for(ctx.home, lambda s: s.get("counters", {}).get("published", 0) > before, wait_s):
            result["confirmed_by"] = ["local-node"]
    else:
        import trio

        from node.roles.propose import propose_via_peers

        config = network_config(ctx.home, listen, port, bootstrap, mdns, sync_interval, default_port=0)
        if not config.bootstrap and not any(a.bootstrap for a in store.arenas()) and not config.mdns:
            raise click.ClickException("no node runs on this data directory and no peer is known: "
                                       "start `ratchet node`, or pass --bootstrap MULTIADDR")
        say = (lambda text: None) if ctx.as_json else (lambda text: click.echo(f"  {text}"))
        try:
            made, made_blob, confirmed = trio.run(propose_via_peers, ctx.home, store, config, make,
                                                  wait_s, say)
        except BaseExceptionGroup as group:  # make() refused inside trio's nursery
            refused = group.subgroup(lambda e: isinstance(e, click.ClickException))
            if refused is None:
                raise
            raise _first(refused) from None
        if made is None or made_blob is None:
            raise click.ClickException(f"no peer reachable within {wait_s:.0f}s; nothing was proposed")
        result = _result(made, made_blob, "peers")
        result["confirmed_by"] = confirmed
    ctx.emit(result, _summary(result))
    if not result["confirmed_by"]:
        raise SystemExit(1)


def _first(group: BaseExceptionGroup) -> BaseException:  # type: ignore[type-arg]
    e: BaseException = group
    while isinstance(e, BaseExceptionGroup):
        e = e.exceptions[0]
    return e


def _result(proposal: Proposal, blob: Blob, via: str) -> dict:  # type: ignore[type-arg]
    return {"proposal": proposal.hex, "parent": proposal.parent.hex(), "script": blob.hex,
            "arena": proposal.arena.hex(), "via": via, "confirmed_by": []}


def _summary(result: dict) -> str:  # type: ignore[type-arg]
    head = f"proposal {result['proposal']} on {short(result['parent'])}"
    if result["confirmed_by"]:
        return f"{head}: published ({', '.join(short(p, 16) for p in result['confirmed_by'])})"
    return f"{head}: stored locally, but no peer confirmed it yet (it spreads when a node syncs)"
