"""`ratchet arena create|init|show|list`: the genesis objects of chains."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from chain.errors import ChainError
from chain.metrics import fmt_ubpb
from chain.objects import MAX_BLOB_BYTES, Arena, Blob
from model.harness.config import HARNESS_VERSION
from node.commands.keys import load_key
from node.context import Context
from node.render import parse_key_hex, short


@click.group()
def arena() -> None:
    """Create and inspect arenas (what a chain competes on)."""


def _store_arena(ctx: Context, arena_obj: Arena, blob: Blob) -> None:
    store = ctx.store()
    try:
        store.add(blob)
        store.add(arena_obj)
    except ChainError as e:
        raise click.ClickException(f"arena not stored: {e}") from e


def _verifier_keys(ctx: Context, verifier_hex: tuple[str, ...], own: bytes) -> list[bytes]:
    keys = [parse_key_hex(v) for v in verifier_hex] or [own]
    return sorted(set(keys))


@arena.command("init")
@click.argument("preset")
@click.option("--verifier", "verifiers", multiple=True, help="Verifier public key (hex); repeat. Default: this node's key.")
@click.option("--quorum", type=click.IntRange(1, 1000), default=None, help="Attestations needed (default: majority of verifiers).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override an arena setting (e.g. budget_value=200000).")
@click.option("--text", "text_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None, help="Local text file for the `text` arena.")
@click.pass_obj
def arena_init(ctx: Context, preset: str, verifiers: tuple[str, ...], quorum: int | None,
               overrides: tuple[str, ...], text_path: Path | None) -> None:
    """Create a shipped arena (tiny, text, gpu) signed by this node's key."""
    from model import arenas as presets

    if preset not in presets.PRESETS:
        raise click.BadParameter(f"unknown preset {preset!r}; choose one of {', '.join(presets.PRESETS)}", param_hint="PRESET")
    key = load_key(ctx)
    keys = _verifier_keys(ctx, verifiers, key.public)
    q = quorum if quorum is not None else len(keys) // 2 + 1
    if q > len(keys):
        raise click.BadParameter(f"quorum {q} exceeds the {len(keys)} verifiers", param_hint="--quorum")
    try:
        arena_obj, blob = presets.build_arena(
            preset, key, keys, q, overrides=_parse_overrides(overrides), text_path=text_path
        )
    except (ChainError, ValueError, OSError) as e:
        raise click.ClickException(f"cannot build arena {preset!r}: {e}") from e
    _store_arena(ctx, arena_obj, blob)
    ctx.emit(arena_dict(arena_obj), f"created arena {arena_obj.name} {arena_obj.hex}")


@arena.command("create")
@click.option("--name", required=True, help="Arena name (lowercase letters, digits, - and _).")
@click.option("--script", "script_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Reference train.py.")
@click.option("--description", default="", help="What this arena is about.")
@click.option("--harness", default=HARNESS_VERSION, show_default=True, help="Harness version that runs checks (this ratchet's).")
@click.option("--dataset-name", default="tinylang", show_default=True)
@click.option("--dataset-sha256", default="", help="SHA-256 (hex) of the dataset, empty when generated per check.")
@click.option("--dataset-source", default="generated", show_default=True, help="Where the data comes from (URL, generator name).")
@click.option("--budget-kind", type=click.Choice(["tokens", "seconds"]), default="tokens", show_default=True)
@click.option("--budget", "budget_value", type=click.IntRange(1), required=True, help="Training tokens, or seconds.")
@click.option("--wall-cap", type=click.IntRange(1, 7 * 86400), default=300, show_default=True, help="Hard wall-clock cap per run (s).")
@click.option("--hardware", default="cpu", show_default=True, help="Hardware class (cpu, cuda:H100, ...).")
@click.option("--seeds", type=click.IntRange(1, 64), default=3, show_default=True, help="Seeds per check.")
@click.option("--verifier", "verifiers", multiple=True, help="Verifier public key (hex); repeat. Default: this node's key.")
@click.option("--quorum", type=click.IntRange(1, 1000), default=None, help="Attestations needed (default: majority).")
@click.option("--margin", type=float, default=0.002, show_default=True, help="Minimum mean paired improvement (bpb).")
@click.option("--max-script-bytes", type=click.IntRange(1, MAX_BLOB_BYTES), default=64 * 1024, show_default=True)
@click.option("--setting", "settings", multiple=True, metavar="KEY=VALUE", help="Harness setting; repeat.")
@click.option("--bootstrap", multiple=True, help="Multiaddr of a well-known peer; repeat.")
@click.pass_obj
def arena_create(ctx: Context, name: str, script_path: Path, description: str, harness: str,
                 dataset_name: str, dataset_sha256: str, dataset_source: str, budget_kind: str,
                 budget_value: int, wall_cap: int, hardware: str, seeds: int,
                 verifiers: tuple[str, ...], quorum: int | None, margin: float,
                 max_script_bytes: int, settings: tuple[str, ...], bootstrap: tuple[str, ...]) -> None:
    """Create a custom arena from flags."""
    from model.arenas import SETTING_KEYS, harness_config
    from model.errors import ModelError

    key = load_key(ctx)
    script = script_path.read_bytes()
    if len(script) > max_script_bytes:
        raise click.BadParameter(f"script is {len(script)} bytes, over --max-script-bytes {max_script_bytes}", param_hint="--script")
    try:
        sha = bytes.fromhex(dataset_sha256)
    except ValueError as e:
        raise click.BadParameter("not hex", param_hint="--dataset-sha256") from e
    if harness != HARNESS_VERSION:
        raise click.BadParameter(f"this ratchet runs harness {HARNESS_VERSION!r}; an arena for {harness!r} "
                                 "could not be checked here", param_hint="--harness")
    setting_pairs = _parse_overrides(settings)
    unknown = sorted(set(setting_pairs) - SETTING_KEYS)
    if unknown:
        raise click.BadParameter(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(SETTING_KEYS))}",
                                 param_hint="--setting")
    keys = _verifier_keys(ctx, verifiers, key.public)
    q = quorum if quorum is not None else len(keys) // 2 + 1
    if margin < 0 or margin > 10:
        raise click.BadParameter("must be between 0 and 10 bpb", param_hint="--margin")
    blob = Blob(data=script)
    try:
        arena_obj = Arena.create(
            key, name=name, description=description, script=blob.id, harness=harness,
            dataset_name=dataset_name, dataset_sha256=sha, dataset_source=dataset_source,
            budget_kind=budget_kind, budget_value=budget_value, wall_cap_s=wall_cap,
            hardware=hardware, seeds=seeds, quorum=q, verifiers=keys,
            margin_ubpb=int(round(margin * 1e6)), max_script_bytes=max_script_bytes,
            settings=sorted(setting_pairs.items()), bootstrap=list(bootstrap),
            created_at=int(time.time() * 1000),
        )
        harness_config(arena_obj)  # refuse an arena the harness could not run
    except (ChainError, ModelError) as e:
        raise click.ClickException(f"invalid arena: {e}") from e
    _store_arena(ctx, arena_obj, blob)
    ctx.emit(arena_dict(arena_obj), f"created arena {arena_obj.name} {arena_obj.hex}")


@arena.command("show")
@click.argument("name", required=False)
@click.pass_obj
def arena_show(ctx: Context, name: str | None) -> None:
    """Show an arena (default: the only one, or --arena)."""
    if name:
        ctx.arena_name = name
    a = ctx.arena()
    d = arena_dict(a)
    lines = [f"arena {a.name} {a.hex}"]
    for k in ("description", "harness", "dataset_name", "dataset_source", "budget", "wall_cap_s",
              "hardware", "seeds", "quorum", "margin_bpb", "max_script_bytes", "creator", "created_at"):
        lines.append(f"  {k + ':':<18} {d[k]}")
    lines.append(f"  {'verifiers:':<18} " + (", ".join(short(v) for v in d["verifiers"]) or "-"))
    for k, v in a.settings:
        lines.append(f"  {'setting:':<18} {k}={v}")
    ctx.emit(d, "\n".join(lines))


@arena.command("list")
@click.pass_obj
def arena_list(ctx: Context) -> None:
    """List the arenas in the store."""
    arenas = ctx.store().arenas()
    rows = [arena_dict(a) for a in arenas]
    text = "\n".join(f"{a.hex[:12]}  {a.name:<16} {a.hardware:<10} {a.budget_kind}={a.budget_value}" for a in arenas)
    ctx.emit(rows, text or "no arenas (create one with `ratchet arena init tiny`)")


def arena_dict(a: Arena) -> dict[str, Any]:
    return {
        "id": a.hex, "name": a.name, "description": a.description, "script": a.script.hex(),
        "harness": a.harness, "dataset_name": a.dataset_name,
        "dataset_sha256": a.dataset_sha256.hex(), "dataset_source": a.dataset_source,
        "budget": f"{a.budget_kind}={a.budget_value}", "budget_kind": a.budget_kind,
        "budget_value": a.budget_value, "wall_cap_s": a.wall_cap_s, "hardware": a.hardware,
        "seeds": a.seeds, "quorum": a.quorum, "verifiers": [v.hex() for v in a.verifiers],
        "margin_bpb": fmt_ubpb(a.margin_ubpb), "max_script_bytes": a.max_script_bytes,
        "settings": dict(a.settings), "bootstrap": list(a.bootstrap),
        "created_at": a.created_at, "creator": a.creator.hex(),
    }


def _parse_overrides(items: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE")
        out[k.strip()] = v.strip()
    return out

