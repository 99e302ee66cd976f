"""The object the root `ratchet` group hands every subcommand."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from chain.objects import Arena
    from chain.store import Store


@dataclass
class Context:
    home: Path
    arena_name: str | None = None
    as_json: bool = False
    _store: Store | None = field(default=None, repr=False)

    @property
    def key_path(self) -> Path:
        return self.home / "keys" / "identity.pem"

    def store(self) -> Store:
        """The node's store, opened on first use and closed when the command ends."""
        if self._store is None:
            from chain.errors import StoreError
            from chain.store import Store

            try:
                self._store = Store.open(self.home)
            except StoreError as e:
                raise click.ClickException(str(e)) from e
        return self._store

    def arena(self) -> Arena:
        """The arena named by --arena, or the only arena in the store."""
        from chain.errors import ChainError

        store = self.store()
        try:
            if self.arena_name:
                return store.find_arena(self.arena_name)
            arenas = store.arenas()
        except ChainError as e:
            raise click.ClickException(str(e)) from e
        if not arenas:
            raise click.ClickException(
                "no arena in this store: create one with `ratchet arena init tiny` or import one"
            )
        if len(arenas) > 1:
            names = ", ".join(sorted(a.name for a in arenas))
            raise click.ClickException(f"several arenas are stored ({names}): pick one with --arena")
        return arenas[0]

    def emit(self, data: Any, text: str | None = None) -> None:
        """Print `data` as JSON under --json, else `text` (or a plain rendering of data)."""
        if self.as_json:
            json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
            sys.stdout.write("\n")
        else:
            click.echo(text if text is not None else str(data))

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
