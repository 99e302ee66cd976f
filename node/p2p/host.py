"""The libp2p host: an Ed25519 identity kept in the data directory, Noise only, yamux, TCP.

py-libp2p's `new_host` defaults are not what a public node wants: it offers
plaintext, secio and TLS next to Noise, and allows three connections per peer
(each extra dial waits 250 ms). Here the security option is Noise alone, the
muxer yamux alone, one connection per peer.

The network identity (which peer id a node has) is separate from the signing
key of `ratchet keys`: it lives in `<home>/p2p/peer.key` (32-byte seed, mode
0600), created on first start and kept across restarts so peers and bootstrap
lists keep recognising the node.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from libp2p.abc import IHost
    from libp2p.crypto.keys import KeyPair
    from multiaddr import Multiaddr

IDENTITY_FILE = Path("p2p") / "peer.key"
SEED_SIZE = 32


class HostError(Exception):
    """Base of the errors about the node's libp2p host (identity file, addresses)."""


class IdentityFileError(HostError):
    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = path, problem


class AddressError(HostError):
    def __init__(self, addr: str, problem: str) -> None:
        super().__init__(f"bad address {addr!r}: {problem}")
        self.addr, self.problem = addr, problem


def load_identity(home: Path) -> KeyPair:
    """The node's network key pair, created (mode 0600) on first use."""
    from libp2p.crypto.ed25519 import create_new_key_pair

    path = home / IDENTITY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        seed = os.urandom(SEED_SIZE)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it meanwhile: read theirs
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(seed)
                f.flush()
                os.fsync(f.fileno())
    try:
        seed = path.read_bytes()
    except OSError as e:
        raise IdentityFileError(path, f"cannot read: {e.strerror}") from e
    if len(seed) != SEED_SIZE:
        raise IdentityFileError(path, f"expected a {SEED_SIZE}-byte seed, found {len(seed)} bytes")
    try:
        return create_new_key_pair(seed)
    except ValueError as e:
        raise IdentityFileError(path, str(e)) from e


def make_host(key_pair: KeyPair, mdns: bool = False) -> IHost:
    """A host speaking Noise (only) and yamux (only) over TCP, one connection per peer;
    `mdns` announces it on the LAN and hears others (discovery.watch_mdns)."""
    from libp2p import new_host
    from libp2p.crypto.x25519 import create_new_key_pair as new_x25519
    from libp2p.custom_types import TProtocol
    from libp2p.network.config import ConnectionConfig
    from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_ID
    from libp2p.security.noise.transport import Transport as NoiseTransport
    from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_ID
    from libp2p.stream_muxer.yamux.yamux import Yamux

    security = {NOISE_ID: NoiseTransport(key_pair, noise_privkey=new_x25519().private_key)}
    muxers = {TProtocol(YAMUX_ID): Yamux}
    # The library's auto-connector dials peers from the peerstore while below the midpoint
    # of the watermarks (default: 200 dials at once); 4..32 keeps a modest mesh.
    config = ConnectionConfig(max_connections_per_peer=1, dial_timeout=5.0, min_connections=0,
                              low_watermark=4, high_watermark=32, max_connections=128)
    return new_host(key_pair=key_pair, sec_opt=security, muxer_opt=muxers, connection_config=config,
                    enable_mDNS=mdns)


def listen_addrs(host: str = "0.0.0.0", port: int = 0) -> list[Multiaddr]:
    """The TCP multiaddr to listen on (port 0: any free port, read back after listening)."""
    import ipaddress

    from multiaddr import Multiaddr

    if not 0 <= port <= 65535:
        raise AddressError(str(port), "port out of range")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise AddressError(host, "not an IPv4 or IPv6 address to listen on") from None
    return [Multiaddr(f"/ip{ip.version}/{ip}/tcp/{port}")]


def local_ips() -> list[str]:
    """This machine's IPv4 addresses, the one with the default route first, loopback last."""
    import socket

    found: dict[str, None] = {}
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # a documentation address: no packet is sent
        found[probe.getsockname()[0]] = None
    except OSError:
        pass  # no route at all (an offline machine): the other sources remain
    finally:
        probe.close()
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            found[str(info[4][0])] = None
    except OSError:
        pass
    found.pop("0.0.0.0", None)
    ips = [ip for ip in found if not ip.startswith("127.")]
    return [*ips, "127.0.0.1"]


def dialable(addr: str, ips: list[str] | None = None) -> list[str]:
    """`addr` with a wildcard IP (/ip4/0.0.0.0) replaced by each of `ips` (default: local_ips())."""
    if not addr.startswith("/ip4/0.0.0.0/"):
        return [addr]
    rest = addr[len("/ip4/0.0.0.0/"):]
    return [f"/ip4/{ip}/{rest}" for ip in (ips if ips is not None else local_ips())]


def parse_peer_addrs(addrs: Sequence[str]) -> list[Multiaddr]:
    """Multiaddrs with a /p2p/<peer id> part (what `ratchet status` prints), or AddressError."""
    from multiaddr import Multiaddr

    out = []
    for text in addrs:
        text = text.strip()
        if not text:
            continue
        try:
            addr = Multiaddr(text)
        except Exception as e:  # multiaddr raises several unrelated types on bad text
            raise AddressError(text, str(e)) from e
        if "/p2p/" not in text:
            raise AddressError(text, "needs a /p2p/<peer id> part")
        out.append(addr)
    return out
