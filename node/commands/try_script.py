"""`ratchet try SCRIPT`: train a script under an arena's harness on this machine, and score it.

Your own code, so no sandbox (DirectLauncher); the harness is the one
verifiers run: same data feed, budget, evaluation probes and scorer.
Without a stored arena it uses the built-in `tiny` preset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from node.context import Context


def _arena(ctx: Context) -> Any:
    """The stored arena (--arena or the only one); the built-in preset when none is stored."""
    from chain.keys import SigningKey
    from model import arenas

    stored = (ctx.home / "chain.sqlite3").exists()
    if stored and ctx.store().arenas():
        name = ctx.arena_name
        if name is None or any(a.name == name for a in ctx.store().arenas()) or name not in arenas.PRESETS:
            return ctx.arena()
    preset = ctx.arena_name or "tiny"
    if preset not in arenas.PRESETS:
        raise click.ClickException(f"no arena {preset!r} here; built-in presets: {', '.join(arenas.PRESETS)}")
    key = SigningKey.generate()  # an unsigned-in-spirit local arena: never stored
    arena, _ = arenas.build_arena(preset, key, [key.public], 1, created_at_ms=0)
    return arena


@click.command("try")
@click.argument("script", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--arena", "arena_name", default=None, help="Arena name or id prefix (default: the only stored one, else tiny).")
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=1, show_default=True, help="Data seed.")
@click.option("--budget", type=click.IntRange(1), default=None, help="Override the budget (tokens, or seconds).")
@click.option("--threads", type=click.IntRange(1, 256), default=2, show_default=True, help="Torch threads.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def try_cmd(ctx: Context, script: Path, arena_name: str | None, seed: int, budget: int | None,
            threads: int, as_json: bool) -> None:
    """Train SCRIPT under the arena's harness and print val_bpb, the floor, tokens/s, time, params."""
    from tqdm import tqdm

    from model.arenas import harness_config
    from model.errors import ModelError
    from model.harness import DirectLauncher, run_script

    if arena_name:
        ctx.arena_name = arena_name
    ctx.as_json = ctx.as_json or as_json
    arena = _arena(ctx)
    try:
        config = harness_config(arena)
    except ModelError as e:
        raise click.ClickException(str(e)) from e
    if budget is not None:
        from dataclasses import replace

        config = replace(config, budget_value=budget)
    data = script.read_bytes()
    if len(data) > arena.max_script_bytes:
        raise click.ClickException(f"{script} is {len(data)} bytes, over the arena's limit of {arena.max_script_bytes}")
    unit = "tok" if config.budget_kind == "tokens" else "s"
    bar = tqdm(total=config.budget_value, unit=unit, unit_scale=True, disable=ctx.as_json,
               desc=f"{arena.name} seed {seed}", leave=False, dynamic_ncols=True)

    def progress(done: int, total: int) -> None:
        bar.update(done - bar.n)

    try:
        result = run_script(data, config, seed, launcher=DirectLauncher(), threads=threads, progress=progress)
    except ModelError as e:
        raise click.ClickException(str(e)) from e
    finally:
        bar.close()
    out = result_dict(result, arena.name, seed)
    ctx.emit(out, render(out))
    if not result.ok:
        click.get_current_context().exit(1)


def result_dict(r: Any, arena: str, seed: int) -> dict[str, Any]:
    excess = r.val_bpb - r.floor_bpb if r.val_bpb is not None and r.floor_bpb is not None else None
    return {"arena": arena, "seed": seed, "status": r.status, "reason": r.reason, "val_bpb": r.val_bpb,
            "floor_bpb": r.floor_bpb, "excess_bpb": excess, "tokens": r.tokens,
            "tokens_per_s": round(r.tokens_per_s, 1), "train_s": round(r.train_s, 3),
            "wall_s": round(r.wall_s, 3), "params": r.params, "detail": r.detail}


def render(d: dict[str, Any]) -> str:
    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.4f}"

    if d["status"] != "ok":
        return (click.style(f"{d['status']}: {d['reason']}", fg="red") + "\n" + d["detail"]).rstrip()
    rows = [("val_bpb", f(d["val_bpb"])), ("floor_bpb", f(d["floor_bpb"])), ("excess_bpb", f(d["excess_bpb"])),
            ("tokens", f"{d['tokens']:,}"), ("tokens_per_s", f"{d['tokens_per_s']:,.0f}"),
            ("train_s", f"{d['train_s']:.1f}"), ("wall_s", f"{d['wall_s']:.1f}"), ("params", f"{d['params']:,}"),
            ("seed", str(d["seed"])), ("arena", d["arena"])]
    return "\n".join(f"{k + ':':<14}{v}" for k, v in rows)
