"""`ratchet serve`: the public leaderboard over this node's store (read-only)."""

from __future__ import annotations

import click

from node.context import Context


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 to expose it; put TLS in front).")
@click.option("--port", type=click.IntRange(0, 65535), default=8377, show_default=True,
              help="Port (0: any free port, printed on start).")
@click.option("--rate", type=click.FloatRange(0), default=20.0, show_default=True,
              help="Requests per second allowed per client address (0: no limit).")
@click.option("--burst", type=click.IntRange(1), default=200, show_default=True,
              help="Requests a client may make at once before the rate applies.")
@click.option("--poll", type=click.FloatRange(0.05, 60), default=0.5, show_default=True,
              help="Seconds between checks of the store for live updates.")
@click.option("--builder", type=click.Choice(["process", "thread"]), default="process", show_default=True,
              help="Where snapshots of the chain are computed: a separate process keeps pages fast "
                   "while a large chain changes; a thread uses less memory.")
@click.option("--behind-proxy", is_flag=True,
              help="Trust X-Forwarded-For from one reverse proxy in front (rate limits per real client).")
@click.pass_obj
def serve(ctx: Context, host: str, port: int, rate: float, burst: int, poll: float, builder: str,
          behind_proxy: bool) -> None:
    """Serve the leaderboard: chain, contributors, verifiers, live updates and a JSON API under /api/."""
    from chain.errors import StoreError
    from leaderboard.server import serve_forever
    from leaderboard.state import Settings

    settings = Settings(poll_s=poll, rate=rate, burst=burst, builder=builder, trust_forwarded=behind_proxy)

    def ready(url: str) -> None:
        click.echo(f"leaderboard: {url}/  (store {ctx.home}; Ctrl-C stops)", err=False)

    try:
        serve_forever(ctx.home, host, port, settings, on_ready=ready)
    except StoreError as e:
        raise click.ClickException(f"cannot read the store in {ctx.home}: {e}") from e
    except OSError as e:
        raise click.ClickException(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
