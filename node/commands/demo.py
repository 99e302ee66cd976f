"""`ratchet demo`: a local Ratchet network of separate processes on the `tiny` arena."""

from __future__ import annotations

from pathlib import Path

import click

from node.context import Context

# The demo's budget: training tokens per run. The shipped `tiny` budget is sized for a
# ~1-minute check on two cores; the demo runs a contributor and three verifiers on the
# same two cores, so it uses a smaller budget that still separates good settings from
# bad ones (see BENCHMARKS.md / the research report for the measurement).
DEMO_BUDGET = 60_000


@click.command()
@click.option("--dir", "root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Demo directory (default: HOME/demo). Reused by later runs.")
@click.option("--fresh", is_flag=True, help="Delete a previous demo directory first.")
@click.option("--port", type=click.IntRange(0, 65535), default=8377, show_default=True,
              help="Leaderboard port on 127.0.0.1.")
@click.option("--budget", type=click.IntRange(1000), default=DEMO_BUDGET, show_default=True,
              help="Training tokens per run on the demo arena.")
@click.option("--verifiers", type=click.IntRange(1, 9), default=3, show_default=True)
@click.option("--quorum", type=click.IntRange(1, 9), default=2, show_default=True)
@click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Threads per training run (each process).")
@click.option("--seeds", type=click.IntRange(1, 16), default=None, help="Contributor's local seeds per stage.")
@click.option("--duration", type=click.FloatRange(1), default=None, help="Stop after this many seconds.")
@click.option("--until-accepted", type=click.IntRange(1), default=None,
              help="Stop once this many commits are accepted.")
@click.option("--unsafe-no-sandbox", is_flag=True, help="Run scripts without bubblewrap.")
@click.pass_obj
def demo(ctx: Context, root: Path | None, fresh: bool, port: int, budget: int, verifiers: int,
         quorum: int, threads: int, seeds: int | None, duration: float | None,
         until_accepted: int | None, unsafe_no_sandbox: bool) -> None:
    """Start a relay with the leaderboard, verifiers (quorum) and a contributor (built-in search),
    as separate processes talking libp2p on loopback; Ctrl-C stops all."""
    from chain.consensus import state_for
    from chain.errors import ChainError
    from chain.store import Store
    from node.supervise import demo as d
    from node.supervise.errors import SuperviseError

    root = (root or ctx.home / "demo").resolve()
    try:
        layout = d.setup(root, budget=budget, verifiers=verifiers, quorum=quorum, fresh=fresh)
    except (SuperviseError, ChainError, OSError) as e:
        raise click.ClickException(f"cannot set up the demo in {root}: {e}") from e
    say = lambda text: click.echo(text)  # noqa: E731
    lb = layout.leaderboard
    say(f"Ratchet demo in {root}")
    say(f"  arena        tiny {layout.arena_id.hex()[:12]}  budget {layout.budget} tokens/run, "
        f"{verifiers} verifiers, quorum {quorum}")
    say(f"  leaderboard  http://127.0.0.1:{port}/")
    say(f"  chain        ratchet --home {lb} log      (status: ratchet --home {lb} status)")
    say(f"  journal      ratchet --home {layout.contributor} journal")
    say(f"  logs         {layout.logs}/")
    say("Ctrl-C stops everything.")
    relay, board = d.relay_children(layout, port=port)

    def peers() -> list[d.Child]:
        address = d.relay_address(layout, relay)
        say(f"relay listening on {address}")
        return d.peer_children(layout, address, threads=threads, unsafe=unsafe_no_sandbox, seeds=seeds)

    def accepted() -> bool:
        if until_accepted is None:
            return False
        with Store.open(lb) as store:
            return len(state_for(store, layout.arena_id).accepted) >= until_accepted

    try:
        d.supervise([relay, board], root, status=lambda: d.status_line(layout, lb, layout.contributor),
                    say=say, duration_s=duration, done=accepted, then=peers)
    except SuperviseError as e:
        raise click.ClickException(str(e)) from e
