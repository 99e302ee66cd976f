"""`ratchet contribute`: the unattended research loop (built-in search, random search or an agent)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from node.commands.roles import network_config, network_options
from node.context import Context

if TYPE_CHECKING:
    from chain.keys import SigningKey
    from chain.objects import Arena
    from node.research.limits import Gate
    from node.research.loop import EventSink, LoopConfig
    from node.research.search import Proposer
    from node.supervise.netnode import NodeLink

ARENA_SYNC_TIMEOUT_S = 120.0
PROPOSERS = ("tpe", "search", "random", "agent")


@dataclass(frozen=True)
class ContributeSettings:
    """What `ratchet contribute` was asked to do: its flags (defaults: the options'), checked once."""

    loop: LoopConfig  # what each experiment does: seeds, confirm, claims, budget overrides, ...
    proposer: str  # one of PROPOSERS
    agent_cmd: str | None  # the coding agent's command line, for proposer "agent"
    agent_timeout_s: float
    gpus: str | None  # CUDA_VISIBLE_DEVICES of the training runs
    niceness: int
    hours: tuple[int, int] | None  # start experiments only between these local hours
    search_seed: int | None  # seed of the search's own randomness

    def __post_init__(self) -> None:
        if self.proposer not in PROPOSERS:
            raise click.BadParameter(f"{self.proposer!r} is not one of {', '.join(PROPOSERS)}",
                                     param_hint="--proposer")
        if self.proposer == "agent" and not self.agent_cmd:
            raise click.BadParameter("--proposer agent needs --agent-cmd", param_hint="--agent-cmd")

    @classmethod
    def from_flags(cls, *, proposer: str, agent_cmd: str | None, agent_timeout: float, threads: int,
                   gpus: str | None, seeds: int | None, max_experiments: int | None, max_pending: int,
                   overrides: tuple[str, ...], niceness: int, hours: str | None, no_confirm: bool,
                   no_claims: bool, unsafe_no_sandbox: bool, search_seed: int | None) -> ContributeSettings:
        """The settings of these flags; click.BadParameter naming the flag that is wrong."""
        from node.research.errors import ResearchError
        from node.research.limits import parse_hours
        from node.research.loop import LoopConfig

        try:
            window = parse_hours(hours) if hours else None
        except ResearchError as e:
            raise click.BadParameter(str(e), param_hint="--hours") from e
        loop = LoopConfig(seeds=seeds, confirm=not no_confirm, threads=threads,
                          max_experiments=max_experiments, max_pending=max_pending, claims=not no_claims,
                          unsafe_no_sandbox=unsafe_no_sandbox, budget_overrides=parse_overrides(overrides))
        return cls(loop, proposer, agent_cmd, agent_timeout, gpus, niceness, window, search_seed)


@click.command()
@click.option("--proposer", type=click.Choice(PROPOSERS), default="tpe",
              show_default=True, help="Where candidates come from: tpe (Optuna TPE over knob moves), search (the older bandit), random, or agent.")
@click.option("--agent-cmd", default=None, metavar="COMMAND",
              help="Coding-agent command line for --proposer agent; runs in a working copy holding "
                   "train.py, program.md, journal.json, arena.json ({workdir} and {script} are substituted).")
@click.option("--agent-timeout", type=click.FloatRange(1), default=1800.0, show_default=True,
              help="Seconds the agent may take per candidate.")
@click.option("--threads", type=click.IntRange(1, 256), default=2, show_default=True,
              help="CPU threads per training run.")
@click.option("--gpus", default=None, metavar="IDS", help="GPUs the training runs may use (CUDA_VISIBLE_DEVICES).")
@click.option("--seeds", type=click.IntRange(1, 64), default=None,
              help="Local seeds per stage (default: the arena's seeds per check).")
@click.option("--max-experiments", type=click.IntRange(1), default=None, help="Stop after N experiments.")
@click.option("--max-pending", type=click.IntRange(1), default=2, show_default=True,
              help="Wait while this many own proposals on the head await verification.")
@click.option("--budget-override", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Local checks only: budget_value, wall_cap_s (or a bare number for budget_value). "
                   "Local results then predict verification less well.")
@click.option("--nice", "niceness", type=click.IntRange(0, 19), default=10, show_default=True,
              help="Lower this process's CPU priority by N (training runs inherit it).")
@click.option("--hours", default=None, metavar="START-END", help="Only start experiments between these local hours, e.g. 22-7.")
@click.option("--no-confirm", is_flag=True, help="Propose on the screen stage alone (no fresh-seed confirmation).")
@click.option("--no-claims", is_flag=True, help="Do not sign 'trying X' claims.")
@click.option("--offline", is_flag=True, help="Do not start the network node; propose into the local store.")
@click.option("--unsafe-no-sandbox", is_flag=True, help="Run scripts without the bubblewrap sandbox.")
@click.option("--search-seed", type=int, default=None, help="Seed of the search's own randomness.")
@network_options
@click.pass_obj
def contribute(ctx: Context, offline: bool, listen: str | None, port: int | None,
               bootstrap: tuple[str, ...], mdns: bool | None, sync_interval: float, **flags: Any) -> None:
    """Search for improvements of the head's script, check them locally, propose what wins.

    Proposals go to the network through a `ratchet node` on this data directory:
    the one already running, or one started here with the network options
    (--bootstrap, --port, ...) and stopped with the loop. --offline keeps
    everything in the local store.

    Pause with `touch HOME/research/pause` or SIGUSR1, resume by deleting the
    file or SIGUSR2. Ctrl-C stops after the current run; a restart resumes.
    """
    from node.commands.keys import load_key

    settings = ContributeSettings.from_flags(**flags)
    key = load_key(ctx)
    emit = _printer(ctx.as_json)
    link = None if offline else _attach_node(ctx, emit, listen, port, bootstrap, mdns, sync_interval)
    try:
        _contribute(ctx, key, emit, settings)
    finally:
        if link is not None:
            link.close()


def _contribute(ctx: Context, key: SigningKey, emit: EventSink, settings: ContributeSettings) -> None:
    from node.research.errors import ResearchError
    from node.research.journal import Journal
    from node.research.limits import Gate, set_nice
    from node.research.loop import ContributorLoop
    from verify.errors import NoSandboxError

    arena = ctx.arena()
    store = ctx.store()
    if settings.gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = settings.gpus
    set_nice(settings.niceness)
    gate = Gate(pause_file=ctx.home / "research" / "pause", hours=settings.hours)
    gate.install_signals()
    _stop_on_signals(gate, emit)
    with Journal.open(ctx.home) as journal:
        try:
            # proposals land in the local store; a node on this home publishes them
            loop = ContributorLoop(store, arena, key, journal, make_proposer(settings, arena, ctx.home),
                                   settings.loop, gate=gate, on_event=emit)
        except (NoSandboxError, ResearchError) as e:
            raise click.ClickException(str(e)) from e
        emit("start", f"contributing to {arena.name} {arena.hex[:12]} as {key.public.hex()[:12]} "
                      f"({settings.proposer}; {loop.n_seeds} seeds per stage; margin {arena.margin_ubpb} ubpb); "
                      f"journal {journal.path}")
        try:
            n = loop.run()
        except ResearchError as e:
            raise click.ClickException(str(e)) from e
        emit("stop", f"stopped after {n} experiments; {len(loop.proposed)} proposed")


def make_proposer(settings: ContributeSettings, arena: Arena, home: Path) -> Proposer:
    from node.research.search import BanditSearch, RandomSearch

    if settings.proposer == "tpe":
        from node.research.tpe import TpeSearch

        return TpeSearch(home=home, arena=arena.id, seed=settings.search_seed,
                         seeds_per_stage=settings.loop.seeds or arena.seeds)
    if settings.proposer == "search":
        return BanditSearch(seed=settings.search_seed)
    if settings.proposer == "random":
        return RandomSearch(seed=settings.search_seed)
    from node.research.agent import AgentProposer

    info = {"name": arena.name, "arena": arena.hex, "budget_kind": arena.budget_kind,
            "budget_value": arena.budget_value, "wall_cap_s": arena.wall_cap_s,
            "seeds": arena.seeds, "hardware": arena.hardware,
            "max_script_bytes": arena.max_script_bytes, "settings": dict(arena.settings)}
    env = {"RATCHET_HOME": str(home), "RATCHET_ARENA": arena.hex}
    return AgentProposer(settings.agent_cmd or "", timeout_s=settings.agent_timeout_s, arena_info=info,
                         max_script_bytes=arena.max_script_bytes, env=env)


def parse_overrides(items: tuple[str, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep:
            k, v = "budget_value", item
        try:
            out[k.strip()] = int(v)
        except ValueError as e:
            raise click.BadParameter(f"{item!r}: value must be an integer",
                                     param_hint="--budget-override") from e
        if k.strip() not in ("budget_value", "wall_cap_s"):
            raise click.BadParameter(f"{k!r} cannot be overridden (budget_value, wall_cap_s)",
                                     param_hint="--budget-override")
    return out


def _printer(as_json: bool) -> EventSink:
    def emit(kind: str, text: str) -> None:
        if as_json:
            sys.stdout.write(json.dumps({"t": int(time.time() * 1000), "event": kind, "text": text}) + "\n")
        else:
            sys.stdout.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        sys.stdout.flush()

    return emit


def _stop_on_signals(gate: Gate, emit: EventSink) -> None:
    """First SIGINT/SIGTERM: finish the current run and stop; a second one exits at once."""

    def handler(signum: int, frame: Any) -> None:
        if gate.stop.is_set():
            raise KeyboardInterrupt
        gate.stop.set()
        emit("stopping", "stopping after the current run (again to quit now)")

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _attach_node(ctx: Context, emit: EventSink, listen: str | None, port: int | None,
                 bootstrap: tuple[str, ...], mdns: bool | None, sync_interval: float) -> NodeLink:
    """The node publishing this home's proposals: the running one, or a child node started here."""
    from node.supervise import netnode
    from node.supervise.errors import SuperviseError

    network_config(ctx.home, listen, port, bootstrap, mdns, sync_interval)  # bad flags: a usage error here
    args = ["--port", str(port if port is not None else 0), "--sync-interval", str(sync_interval)]
    args += ["--listen", listen] if listen else []
    args += [f"--bootstrap={b}" for b in bootstrap]
    args += [] if mdns is None else ["--mdns" if mdns else "--no-mdns"]
    try:
        link = netnode.attach(ctx.home, args)
    except SuperviseError as e:
        raise click.ClickException(str(e)) from e
    how = "started" if link.owned is not None else "already running"
    emit("network", f"network node {how} (pid {link.pid}) on {' '.join(link.addrs) or 'no address'}")
    if not ctx.store().arenas():
        emit("network", "no arena stored yet: waiting for the node to sync one from its peers")
        if not netnode.wait_for_arena(ctx.home, link, ARENA_SYNC_TIMEOUT_S):
            link.close()
            raise click.ClickException(f"no arena arrived from the network within {ARENA_SYNC_TIMEOUT_S:.0f}s: "
                                       "check --bootstrap, or create one with `ratchet arena init`")
    return link
