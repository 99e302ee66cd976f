"""The `ratchet` command: one root group; each subcommand lives in node/commands/.

Subcommands are imported lazily, so `ratchet keys show` never pays for torch
or libp2p imports it does not use.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import click

from node.context import Context

# name -> "module:attribute" of a click command; one line per subcommand.
COMMANDS: dict[str, str] = {
    "keys": "node.commands.keys:keys",
    "arena": "node.commands.arena:arena",
    "log": "node.commands.log:log",
    "show": "node.commands.show:show",
    "import": "node.commands.transfer:import_cmd",
    "export": "node.commands.transfer:export_cmd",
    "try": "node.commands.try_script:try_cmd",
    "check": "node.commands.check:check",
    "replay": "node.commands.replay:replay",
    "node": "node.commands.roles:node_cmd",
    "verify": "node.commands.roles:verify_cmd",
    "propose": "node.commands.propose:propose",
    "profile": "node.commands.profile:profile",
    "status": "node.commands.status:status",
    "serve": "node.commands.serve:serve",
    "contribute": "node.commands.contribute:contribute",
    "journal": "node.commands.journal:journal",
    "demo": "node.commands.demo:demo",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if _module_exists(COMMANDS[name]))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None or not _module_exists(target):
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)


def _module_exists(target: str) -> bool:
    module_name = target.split(":")[0]
    return importlib.util.find_spec(module_name) is not None


def default_home() -> Path:
    return Path(os.environ.get("RATCHET_HOME") or Path.home() / ".ratchet")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data directory (default: $RATCHET_HOME or ~/.ratchet).",
)
@click.option("--arena", "arena_name", default=None, help="Arena name or id prefix to work on.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
@click.version_option(package_name="ratchet")
@click.pass_context
def main(ctx: click.Context, home: Path | None, arena_name: str | None, as_json: bool) -> None:
    """Ratchet: a decentralized research network for ML training code."""
    ctx.obj = Context(home=home or default_home(), arena_name=arena_name, as_json=as_json)
    ctx.call_on_close(ctx.obj.close)
