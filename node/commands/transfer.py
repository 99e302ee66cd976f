"""`ratchet export` / `ratchet import FILE`: objects as a msgpack stream, moved by hand.

A stream is a sequence of msgpack bin items, each one object's canonical
encoding (chain.objects.encode_stream). Import checks every object before
storing it; objects whose dependencies come later in the stream are retried
until no more progress is made, so any order of a complete set imports.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from chain.errors import ChainError, DecodeError, ValidationError
from chain.objects import ChainObject, decode_stream, encode_stream
from node.context import Context

MAX_IMPORT_BYTES = 2 * 1024**3


@click.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file (default: standard output).")
@click.option("--all-arenas", is_flag=True, help="Export every arena, not just the selected one.")
@click.pass_obj
def export_cmd(ctx: Context, output: Path | None, all_arenas: bool) -> None:
    """Write the arena's objects (arena, scripts, proposals, attestations) and the profiles held
    (they belong to no arena) as a stream."""
    store = ctx.store()
    arena_ids = [a.id for a in store.arenas()] if all_arenas else [ctx.arena().id]
    count = 0
    if output is None and sys.stdout.isatty():
        raise click.UsageError("refusing to write binary to a terminal: use -o FILE or a pipe")
    tmp = output.with_name(output.name + ".part") if output else None
    sink = tmp.open("wb") if tmp else sys.stdout.buffer
    try:
        for objects in [*(store.iter_objects(a) for a in arena_ids), store.profiles()]:
            for chunk in encode_stream(objects):
                sink.write(chunk)
                count += 1
    finally:
        if tmp:
            sink.close()
    if tmp and output:
        tmp.replace(output)
    click.echo(f"exported {count} objects" + (f" to {output}" if output else ""), err=True)


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.pass_obj
def import_cmd(ctx: Context, file: str) -> None:
    """Read a stream written by `ratchet export` and store every valid object."""
    data = sys.stdin.buffer.read(MAX_IMPORT_BYTES + 1) if file == "-" else Path(file).read_bytes()
    if len(data) > MAX_IMPORT_BYTES:
        raise click.ClickException(f"input is over {MAX_IMPORT_BYTES} bytes")
    objects: list[ChainObject] = []
    try:
        for obj in decode_stream(data):
            objects.append(obj)
    except DecodeError as e:
        raise click.ClickException(
            f"{file}: object {len(objects) + 1} is invalid ({type(e).__name__}: {e}); nothing was imported"
        ) from e
    added, held, rejected = import_objects(ctx, objects)
    result = {"read": len(objects), "added": added, "already_held": held,
              "rejected": [{"id": o.hex, "type": o.TYPE, "reason": r} for o, r in rejected]}
    text = f"read {len(objects)} objects: {added} added, {held} already held, {len(rejected)} rejected"
    for o, r in rejected:
        text += f"\n  rejected {o.TYPE} {o.hex[:12]}: {r}"
    ctx.emit(result, text)
    if rejected:
        sys.exit(1)


def import_objects(ctx: Context, objects: list[ChainObject]) -> tuple[int, int, list[tuple[ChainObject, str]]]:
    """Store objects, retrying those whose dependencies arrive later. Returns (added, held, rejected)."""
    store = ctx.store()
    added = held = 0
    pending = list(objects)
    errors: dict[bytes, str] = {}
    while pending:
        progress, retry = False, []
        for obj in pending:
            try:
                if store.add(obj):
                    added += 1
                else:
                    held += 1
                progress = True
            except ValidationError as e:
                errors[obj.id] = str(e)
                retry.append(obj)
            except ChainError as e:
                errors[obj.id] = str(e)
        if not progress:
            return added, held, [(o, errors[o.id]) for o in retry]
        pending = retry
    rejected = [(o, errors[o.id]) for o in objects if o.id in errors and not store.has(o.id)]
    return added, held, rejected
