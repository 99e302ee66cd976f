"""`ratchet node` (relay and store) and `ratchet verify` (a verifier node): long-running roles.

Both run until SIGINT/SIGTERM, keep all state in the data directory, and print
one progress line per event (JSON lines under --json).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from node.context import Context

DEFAULT_PORT = 4001


def network_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--listen, --port, --bootstrap, --mdns, --sync-interval (shared by node, verify, propose)."""
    options = [
        click.option("--listen", default=None, help="Address to listen on (default 0.0.0.0, or node.toml)."),
        click.option("--port", type=click.IntRange(0, 65535), default=None,
                     help=f"TCP port (0 = any free port; default {DEFAULT_PORT}, or node.toml)."),
        click.option("--bootstrap", multiple=True, metavar="MULTIADDR",
                     help="Peer to connect to, /ip4/A.B.C.D/tcp/PORT/p2p/PEERID (repeatable)."),
        click.option("--mdns/--no-mdns", default=None, help="Find peers on the LAN by mDNS."),
        click.option("--sync-interval", type=click.FloatRange(0.2), default=15.0, show_default=True,
                     help="Seconds between anti-entropy rounds with every peer."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def network_config(home: Path, listen: str | None, port: int | None, bootstrap: tuple[str, ...],
                   mdns: bool | None, sync_interval: float, default_port: int = DEFAULT_PORT) -> Any:
    """NetworkConfig from flags, then node.toml, then defaults (bad addresses: a usage error)."""
    from node.p2p.discovery import merge_bootstrap, read_config
    from node.p2p.host import HostError, listen_addrs
    from node.p2p.network import NetworkConfig

    try:
        settings = read_config(home)
        boot = merge_bootstrap(bootstrap, settings)
    except HostError as e:
        raise click.BadParameter(str(e), param_hint="--bootstrap / node.toml") from e
    listen = listen or settings.listen or "0.0.0.0"
    port = port if port is not None else (settings.port if settings.port is not None else default_port)
    try:
        listen_addrs(listen, port)
    except HostError as e:
        raise click.BadParameter(str(e), param_hint="--listen / node.toml") from e
    return NetworkConfig(
        listen=listen, port=port,
        bootstrap=boot, mdns=bool(mdns if mdns is not None else settings.mdns),
        sync_interval_s=sync_interval,
    )


@click.command("node")
@network_options
@click.pass_obj
def node_cmd(ctx: Context, listen: str | None, port: int | None, bootstrap: tuple[str, ...],
             mdns: bool | None, sync_interval: float) -> None:
    """Run a relay node: store the chain, gossip, sync with peers, serve objects."""
    from node.roles.runner import Reporter, run_role

    config = network_config(ctx.home, listen, port, bootstrap, mdns, sync_interval)
    code = run_role(ctx.home, config, "node", [], Reporter(ctx.as_json))
    if code:
        raise SystemExit(code)


@click.command("verify")
@network_options
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Checks run in parallel.")
@click.option("--threads", type=click.IntRange(1, 256), default=2, show_default=True,
              help="CPU threads per check.")
@click.option("--unsafe-no-sandbox", is_flag=True,
              help="Run untrusted scripts without bubblewrap (only on a throwaway machine).")
@click.option("--escalate-after", type=click.FloatRange(0.1), default=600.0, show_default=True,
              help="Seconds after which an undecided proposal's sortition threshold doubles.")
@click.option("--check-with", default=None, hidden=True,
              help="MODULE:FUNCTION replacing the real check (tests and benchmarks only).")
@click.pass_obj
def verify_cmd(ctx: Context, listen: str | None, port: int | None, bootstrap: tuple[str, ...],
               mdns: bool | None, sync_interval: float, workers: int, threads: int,
               unsafe_no_sandbox: bool, escalate_after: float, check_with: str | None) -> None:
    """Run a verifier node with any key: check the proposals sortition gives it, sign, publish.

    A key outside an arena's verifier set verifies as a volunteer: its checks are stored and shown,
    and count once the chain has admitted it (docs/ARCHITECTURE.md, "Open verification")."""
    from chain.errors import KeyFileError
    from chain.keys import SigningKey
    from node.roles.runner import Reporter, run_role
    from node.roles.verifier import Verifier, real_verify_fn

    try:
        key = SigningKey.load(ctx.key_path)
    except KeyFileError as e:
        raise click.ClickException(str(e)) from e
    reporter = Reporter(ctx.as_json)
    if check_with:
        verify_fn = _load_function(check_with)
    else:
        if not unsafe_no_sandbox:
            _require_sandbox()
        verify_fn = real_verify_fn(threads, unsafe_no_sandbox, reporter)
    config = network_config(ctx.home, listen, port, bootstrap, mdns, sync_interval)
    verifier = Verifier(key, verify_fn, workers=workers, escalate_after_s=escalate_after)
    reporter.event("verifier", f"verifier key {key.public.hex()} ({workers} worker(s))",
                   key=key.public.hex(), workers=workers)
    code = run_role(ctx.home, config, "verify", [verifier.run], reporter, status_extra=verifier.status)
    if code:
        raise SystemExit(code)


def _load_function(target: str) -> Callable[..., Any]:
    module_name, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise click.BadParameter(f"cannot load {target!r}: {e}", param_hint="--check-with") from e


def _require_sandbox() -> None:
    try:
        from verify.sandbox import sandbox_available
    except ImportError as e:
        raise click.ClickException(f"the verifier package is not available: {e}") from e
    missing = sandbox_available()
    if missing is not None:
        raise click.ClickException(
            f"no sandbox: {missing}. Install bubblewrap, or pass --unsafe-no-sandbox on a throwaway machine."
        )
