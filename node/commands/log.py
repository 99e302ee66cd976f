"""`ratchet log`: the accepted chain from the head down, like `git log`, with metrics."""

from __future__ import annotations

from typing import Any

import click

from chain.consensus import ChainState, CommitInfo, Tally, median_mean, state_for, tally
from chain.metrics import fmt_ubpb
from chain.objects import Attestation
from node.context import Context
from node.render import bpb, short, when


@click.command()
@click.option("-n", "--max-count", type=click.IntRange(1), default=None, help="Show at most N commits.")
@click.option("--all", "show_all", is_flag=True, help="Also list proposals that are not on the head's line.")
@click.pass_obj
def log(ctx: Context, max_count: int | None, show_all: bool) -> None:
    """Show the chain from the head down to the arena."""
    arena = ctx.arena()
    state = state_for(ctx.store(), arena.id)
    ids = state.lineage(state.head) if state.head != arena.id else []
    if show_all:
        on_line = set(ids)
        rest = sorted((c for c in state.commits.values() if c.id not in on_line),
                      key=lambda c: (-c.proposal.timestamp, c.id))
        ids = ids + [c.id for c in rest]
    if max_count is not None:
        ids = ids[:max_count]
    store = ctx.store()
    entries = [commit_dict(state, state.commits[i], store.attestations(arena.id, i)) for i in ids]
    if ctx.as_json:
        ctx.emit({"arena": arena.hex, "head": state.head.hex(), "commits": entries})
        return
    if not entries:
        click.echo(f"arena {arena.name} {arena.hex[:12]}: no accepted commits yet (head is the arena)")
        return
    out = []
    for e in entries:
        mark = " (HEAD)" if e["id"] == state.head.hex() else ""
        out.append(click.style(f"commit {e['id']}{mark}", fg="yellow"))
        out.append(f"Author:  {e['author']}")
        out.append(f"Date:    {when(e['timestamp'])}")
        out.append(f"Status:  {e['status']}  height {e['height']}" + (f"  ({e['reason']})" if e["reason"] else ""))
        out.append(f"Metric:  val_bpb {e['val_bpb']}  gain {e['gain_bpb']}  cumulative {e['cumulative_bpb']}"
                   f"  votes {e['improves_votes']}/{len(e['votes'])} improves")
        out.append("")
        out.extend("    " + line for line in (e["message"] or "(no message)").splitlines())
        out.append("")
    click.echo("\n".join(out).rstrip())


def commit_dict(state: ChainState, c: CommitInfo, atts: list[Attestation]) -> dict[str, Any]:
    p = c.proposal
    t = tally(state.arena, c.id, atts, c.counted or None)
    votes = {k.hex(): v for k, v in c.votes.items()}
    return {
        "id": c.id.hex(), "parent": p.parent.hex(), "author": p.author.hex(), "message": p.message,
        "timestamp": p.timestamp, "status": c.status, "reason": c.reason, "height": c.height,
        "script": p.script.hex(), "gain_ubpb": c.gain_ubpb, "gain_bpb": fmt_ubpb(c.gain_ubpb, signed=True),
        "cumulative_ubpb": c.cumulative_ubpb, "cumulative_bpb": fmt_ubpb(c.cumulative_ubpb, signed=True),
        "val_bpb": bpb(measured_metric(t)), "votes": votes,
        "improves_votes": len(t.improving),
        "claim": {"parent_bpb": fmt_ubpb(p.claim_parent_ubpb), "candidate_bpb": fmt_ubpb(p.claim_candidate_ubpb),
                  "seeds": list(p.claim_seeds), "hardware": p.claim_hardware},
        "short": short(c.id),
    }


def measured_metric(t: Tally) -> int | None:
    """Low median of the counted verifiers' mean candidate val_bpb (micro-bits); a key that signed
    conflicting verdicts is not counted (Tally.measured, the leaderboard's fallback, counts it)."""
    return median_mean(a.candidate_ubpb for key in t.votes for a in t.signed[key].values())
