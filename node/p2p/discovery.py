"""Where a node finds peers: bootstrap addresses and, on a LAN, mDNS.

Bootstrap addresses come from three places, merged in this order without
duplicates: the command line (`--bootstrap`, repeatable), the node's config
file (`<home>/node.toml`, `[network] bootstrap = [...]`), and the `bootstrap`
field of every stored arena (an arena's creator names well-known peers). Each
is a multiaddr with a /p2p/<peer id> part, as `ratchet status` prints it.

mDNS (py-libp2p's, over zeroconf) is opt-in (`--mdns`): it announces the node
on the LAN and reports peers it hears; the node dials them like bootstrap peers.
Beyond that, nodes ask their peers for the addresses of their own peers (the
"peers" request), so a network started from one bootstrap node becomes a mesh.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain.objects import Arena
from node.p2p.host import AddressError, HostError, parse_peer_addrs

CONFIG_FILE = "node.toml"


class ConfigError(HostError):
    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = path, problem


@dataclass(frozen=True)
class NetworkSettings:
    """The [network] table of node.toml (every key optional)."""

    listen: str | None = None
    port: int | None = None
    bootstrap: tuple[str, ...] = ()
    mdns: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def read_config(home: Path) -> NetworkSettings:
    """`<home>/node.toml`'s [network] table, or defaults when the file does not exist."""
    path = home / CONFIG_FILE
    if not path.exists():
        return NetworkSettings()
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(path, f"cannot read: {e}") from e
    net = data.get("network", {})
    if not isinstance(net, dict):
        raise ConfigError(path, "[network] must be a table")
    boot = net.get("bootstrap", [])
    if not isinstance(boot, list) or not all(isinstance(b, str) for b in boot):
        raise ConfigError(path, "network.bootstrap must be a list of multiaddr strings")
    port = net.get("port")
    if port is not None and (not isinstance(port, int) or not 0 <= port <= 65535):
        raise ConfigError(path, "network.port must be an integer 0..65535")
    listen = net.get("listen")
    if listen is not None and not isinstance(listen, str):
        raise ConfigError(path, "network.listen must be a string (an IP address)")
    mdns = net.get("mdns")
    if mdns is not None and not isinstance(mdns, bool):
        raise ConfigError(path, "network.mdns must be true or false")
    known = {"bootstrap", "port", "listen", "mdns"}
    return NetworkSettings(listen=listen, port=port, bootstrap=tuple(boot), mdns=mdns,
                           extra={k: v for k, v in net.items() if k not in known})


def merge_bootstrap(flag: Sequence[str], config: NetworkSettings) -> tuple[str, ...]:
    """The operator's bootstrap list: flag entries, then config entries (AddressError on a typo)."""
    merged = tuple(dict.fromkeys(t.strip() for t in [*flag, *config.bootstrap] if t.strip()))
    parse_peer_addrs(list(merged))
    return merged


def bootstrap_addrs(operator: Sequence[str], arenas: Iterable[Arena],
                    own_peer_id: str | None = None) -> list[str]:
    """Every bootstrap multiaddr (the operator's, then the arenas'), deduplicated, ours left out.

    An arena's entries that do not parse are skipped (the arena is someone else's data).
    """
    out: dict[str, None] = {t.strip(): None for t in operator}
    for arena in arenas:
        for text in arena.bootstrap:
            try:
                parse_peer_addrs([text])
            except AddressError:
                continue
            out[text.strip()] = None
    return [a for a in out if a and not (own_peer_id and a.endswith("/p2p/" + own_peer_id))]


def watch_mdns(on_peer: Callable[[Any], None]) -> Callable[[], None]:
    """Call `on_peer(peer_info)` for each peer mDNS reports; returns the function that stops it."""
    from libp2p.discovery.events.peerDiscovery import peerDiscovery

    peerDiscovery.register_peer_discovered_handler(on_peer)
    return lambda: peerDiscovery.unregister_peer_discovered_handler(on_peer)
