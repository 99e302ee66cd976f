"""`ratchet check SCRIPT`: one local verification, exactly as a verifier runs it.

Parent and candidate, paired on the same fresh seeds, in the bubblewrap
sandbox, judged by verify.stats.decide against the arena's margin. The
parent is --parent (a stored proposal id prefix, or the arena id), else the
head of the stored chain, else the arena's reference script. Without a
stored arena the built-in `tiny` preset is used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from node.context import Context


def _arena(ctx: Context) -> Any:
    from node.commands.try_script import _arena as arena_or_preset

    return arena_or_preset(ctx)


def _parent_script(ctx: Context, arena: Any, parent: str | None) -> tuple[str, bytes, Any]:
    """(label, script bytes, compute position) of the parent to compare against."""
    from model.arenas import reference_script
    from verify.compute import GENESIS, Position

    stored = (ctx.home / "chain.sqlite3").exists() and any(a.id == arena.id for a in ctx.store().arenas())
    if not stored:
        if parent:
            raise click.ClickException(f"--parent {parent}: no stored arena here to look it up in")
        return f"{arena.name} reference", reference_script(arena.name), GENESIS
    from chain.consensus import state_for
    from chain.errors import ChainError

    store = ctx.store()
    try:
        state = state_for(store, arena.id)
        pid = store.resolve(parent) if parent else state.head
        if pid == arena.id:
            return f"arena {arena.hex[:12]} reference", store.blob_data(arena.script), GENESIS
        proposal = store.get(pid)
        if getattr(proposal, "arena", None) != arena.id or not hasattr(proposal, "script"):
            raise click.ClickException(f"{pid.hex()[:12]} is not a proposal of arena {arena.name}")
        return (f"commit {pid.hex()[:12]}", store.blob_data(proposal.script),
                Position(*state.compute_position(pid)))
    except ChainError as e:
        raise click.ClickException(str(e)) from e


def _seeds(text: str | None, n: int) -> list[int]:
    if not text:
        return [int.from_bytes(os.urandom(4), "big") & 0x7FFFFFFF for _ in range(n)]
    try:
        seeds = [int(s) for s in text.replace(",", " ").split()]
    except ValueError as e:
        raise click.BadParameter(f"{text!r}: seeds are integers separated by commas") from e
    if not seeds or any(not 0 <= s < 2**31 for s in seeds):
        raise click.BadParameter("give at least one seed, each in [0, 2**31)")
    return seeds


@click.command()
@click.argument("script", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--parent", default=None, help="Commit (proposal id prefix) to compare against; default: the head.")
@click.option("--arena", "arena_name", default=None, help="Arena name or id prefix (default: the only stored one, else tiny).")
@click.option("--seeds", default=None, help="Comma-separated seeds (default: the arena's count of fresh random seeds).")
@click.option("--budget", type=click.IntRange(1), default=None, help="Override the budget (tokens, or seconds) for a quick look.")
@click.option("--threads", type=click.IntRange(1, 256), default=2, show_default=True, help="Torch threads.")
@click.option("--unsafe-no-sandbox", is_flag=True, help="Run WITHOUT the sandbox (only for code you trust).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def check(ctx: Context, script: Path, parent: str | None, arena_name: str | None, seeds: str | None,
          budget: int | None, threads: int, unsafe_no_sandbox: bool, as_json: bool) -> None:
    """Verify SCRIPT against its parent as a verifier would; exit status 0 only if it improves."""
    from tqdm import tqdm

    from model.errors import ModelError
    from verify.check import run_check
    from verify.errors import VerifyError

    if arena_name:
        ctx.arena_name = arena_name
    ctx.as_json = ctx.as_json or as_json
    arena = _arena(ctx)
    if budget is not None:
        arena = arena.replace(budget_value=budget)
    label, parent_script, position = _parent_script(ctx, arena, parent)
    seed_list = _seeds(seeds, arena.seeds)
    candidate = script.read_bytes()
    bar = tqdm(total=2 * len(seed_list) * arena.budget_value, disable=ctx.as_json, leave=False,
               unit="tok" if arena.budget_kind == "tokens" else "s", unit_scale=True, dynamic_ncols=True)
    base: dict[tuple[str, int], int] = {}

    def progress(role: str, index: int, done: int, total: int) -> None:
        base[(role, index)] = arena.budget_value * done // max(total, 1)
        bar.set_description(f"seed {index + 1}/{len(seed_list)} {role}")
        bar.update(sum(base.values()) - bar.n)

    try:
        result = run_check(parent_script, candidate, arena, seed_list, unsafe_no_sandbox=unsafe_no_sandbox,
                           threads=threads, progress=progress, parent_position=position)
    except (VerifyError, ModelError) as e:
        raise click.ClickException(str(e)) from e
    finally:
        bar.close()
    _report(ctx, arena, label, script, result)
    if result.verdict != "improves":
        click.get_current_context().exit(1)


def _report(ctx: Context, arena: Any, label: str, script: Path, r: Any) -> None:
    from chain.metrics import fmt_ubpb

    d = r.decision
    data = {
        "verdict": r.verdict, "arena": arena.hex, "parent": label, "script": str(script),
        "seeds": r.seeds, "parent_ubpb": r.parent_ubpb, "candidate_ubpb": r.candidate_ubpb,
        "floor_ubpb": r.floor_ubpb, "margin_ubpb": arena.margin_ubpb, "flags": r.flags,
        "wall_ms": r.wall_ms, "detail": r.detail,
        "mean_gain_ubpb": None if d is None else round(d.mean_gain),
        "stderr_ubpb": None if d is None else round(d.stderr),
        "lower_bound_ubpb": None if d is None else round(d.lower_bound),
        "compute_class": r.position.klass, "compute_x_milli": r.position.x_milli,
        "compute_ratio": r.compute_ratio,
        "runs": [{"seed": q.seed, "parent_tokens": q.parent.tokens, "candidate_tokens": q.candidate.tokens,
                  "parent_cpu_ms": q.parent.cpu_ms, "candidate_cpu_ms": q.candidate.cpu_ms} for q in r.pairs],
    }
    if ctx.as_json:
        ctx.emit(data)
        return
    lines = [f"{script} against {label} ({arena.name}, margin {fmt_ubpb(arena.margin_ubpb)} bpb)", ""]
    if r.pairs:
        lines.append(f"{'seed':>10}  {'parent':>9}  {'candidate':>9}  {'gain':>9}  {'floor':>9}  "
                     f"{'tokens p/c':>17}  {'CPU s p/c':>13}")
        for q in r.pairs:
            floor = fmt_ubpb(q.floor_ubpb) if q.floor_ubpb is not None else "-"
            lines.append(f"{q.seed:>10}  {fmt_ubpb(q.parent_ubpb):>9}  {fmt_ubpb(q.candidate_ubpb):>9}  "
                         f"{fmt_ubpb(q.gain_ubpb, signed=True):>9}  {floor:>9}  "
                         f"{q.parent.tokens:>8}/{q.candidate.tokens:<8}  "
                         f"{q.parent.cpu_ms / 1000:>6.1f}/{q.candidate.cpu_ms / 1000:<6.1f}")
        lines.append("")
        if arena.budget_kind == "compute":
            ratio = r.compute_ratio
            lines.append(f"compute class {r.position.klass:+d} (drift {r.position.x:+.3f}); candidate/parent CPU "
                         + (f"{ratio:.3f}x" if ratio is not None else "-"))
    color = "green" if r.verdict == "improves" else ("yellow" if r.verdict == "no_gain" else "red")
    lines.append(click.style(f"verdict: {r.verdict}", fg=color, bold=True) + f"  ({r.wall_ms / 1000:.1f} s)")
    if r.flags:
        lines.append(f"flags: {', '.join(r.flags)}")
    lines.append(r.detail.strip()[-1500:])
    click.echo("\n".join(lines))
