"""`ratchet keys new|show`: the node's Ed25519 identity (the secret is never printed)."""

from __future__ import annotations

import click

from chain.errors import KeyFileError
from chain.keys import SigningKey
from node.context import Context


@click.group()
def keys() -> None:
    """Create or show this node's signing key."""


@keys.command("new")
@click.pass_obj
def keys_new(ctx: Context) -> None:
    """Create a new key (mode 0600); refuses to replace an existing one."""
    key = SigningKey.generate()
    try:
        key.save(ctx.key_path)
    except KeyFileError as e:
        raise click.ClickException(str(e)) from e
    ctx.emit(
        {"public_key": key.public.hex(), "path": str(ctx.key_path)},
        f"created key {key.public.hex()}\nsecret stored in {ctx.key_path} (mode 0600)",
    )


@keys.command("show")
@click.pass_obj
def keys_show(ctx: Context) -> None:
    """Print the public key."""
    key = load_key(ctx)
    ctx.emit({"public_key": key.public.hex(), "path": str(ctx.key_path)}, key.public.hex())


def load_key(ctx: Context) -> SigningKey:
    try:
        return SigningKey.load(ctx.key_path)
    except KeyFileError as e:
        raise click.ClickException(str(e)) from e
