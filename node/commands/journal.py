"""`ratchet journal`: the contributor's experiments, newest last, with what became of proposals."""

from __future__ import annotations

from typing import Any

import click

from chain.consensus import state_for
from chain.metrics import fmt_ubpb
from node.context import Context
from node.render import short, when


@click.command()
@click.option("-n", "--max-count", type=click.IntRange(1), default=50, show_default=True,
              help="Show the last N experiments.")
@click.option("--decision", type=click.Choice(["proposed", "discarded", "invalid", "stale", "running"]),
              default=None, help="Only experiments with this outcome.")
@click.pass_obj
def journal(ctx: Context, max_count: int, decision: str | None) -> None:
    """Show the local journal of experiments run by `ratchet contribute`."""
    from node.research.errors import JournalError
    from node.research.journal import Journal

    arena = ctx.arena()
    try:
        with Journal.open(ctx.home) as j:
            entries = j.entries(arena.id)
    except JournalError as e:
        raise click.ClickException(str(e)) from e
    if decision:
        want = None if decision == "running" else decision
        entries = [e for e in entries if e.decision == want]
    entries = entries[-max_count:]
    state = state_for(ctx.store(), arena.id)
    rows: list[dict[str, Any]] = []
    for e in entries:
        d = e.to_json()
        commit = state.commits.get(e.proposal) if e.proposal else None
        d["chain_status"] = commit.status if commit else None
        d["on_head"] = e.parent == state.head
        rows.append(d)
    if ctx.as_json:
        ctx.emit({"arena": arena.hex, "head": state.head.hex(), "experiments": rows})
        return
    if not rows:
        click.echo("the journal is empty: run `ratchet contribute`")
        return
    lines = []
    for d in rows:
        gain = d["mean_gain_ubpb"]
        outcome = d["decision"] or "running/interrupted"
        if d["chain_status"]:
            outcome += f" -> {d['chain_status']}"
        lines.append(
            f"#{d['seq']:<5} {when(d['started_at'])}  {d['proposer']:<7} parent {short(d['parent'], 10)}"
            f"  {outcome:<22} gain {fmt_ubpb(gain, signed=True) if gain is not None else '-':>10}"
        )
        lines.append(f"       {d['summary']}" + (f"  [{d['reason']}]" if d["reason"] else ""))
    click.echo("\n".join(lines))
