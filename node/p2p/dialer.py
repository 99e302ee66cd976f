"""Keeping a node connected: bootstrap peers, peers learned from peers, mDNS, and no banned ones.

Every `interval_s`: dial each bootstrap address (operator's and arenas') not
connected; while below `target_peers`, ask a random peer where its peers
listen (the "peers" request) and dial a few; disconnect peers that got banned.
Dials run as separate tasks, one per address at a time, each bounded in time.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from node.p2p import reqresp
from node.p2p.discovery import bootstrap_addrs, watch_mdns
from node.p2p.host import dialable
from node.p2p.peers import PeerBook

if TYPE_CHECKING:
    from libp2p.abc import IHost
    from libp2p.peer.id import ID

    from chain.store import Store

log = logging.getLogger(__name__)

DIAL_TIMEOUT_S = 10.0


class Dialer:
    """The dial loop of one node; `run(nursery)` until cancelled."""

    def __init__(self, host: IHost, store: Store, peers: PeerBook, bootstrap: tuple[str, ...],
                 mdns: bool, target_peers: int, interval_s: float) -> None:
        self.host, self.store, self.peers = host, store, peers
        self.bootstrap, self.mdns = bootstrap, mdns
        self.target_peers, self.interval_s = target_peers, interval_s
        self._dialing: set[str] = set()
        self._nursery: trio.Nursery | None = None

    def connected(self) -> list[ID]:
        return list(self.host.get_connected_peers())

    async def run(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        own = str(self.host.get_id())
        stop_mdns: Callable[[], None] | None = None
        if self.mdns:  # zeroconf calls from its own thread: hop into trio first
            token = trio.lowlevel.current_trio_token()
            stop_mdns = watch_mdns(lambda info: token.run_sync_soon(self._dial_info_soon, info))
        try:
            while True:
                connected = {str(p) for p in self.connected()}
                for text in bootstrap_addrs(self.bootstrap, self.store.arenas(), own):
                    if text.rsplit("/p2p/", 1)[-1] not in connected:
                        self.dial_soon(text, persistent=True)
                if 0 < len(connected) < self.target_peers:
                    await self._exchange_peers(connected, own)
                for peer in self.connected():
                    if self.peers.is_banned(peer):
                        await disconnect(self.host, peer)
                await trio.sleep(self.interval_s)
        finally:
            if stop_mdns is not None:
                stop_mdns()

    async def _exchange_peers(self, connected: set[str], own: str) -> None:
        peer = random.choice(self.connected())
        try:
            addrs = await reqresp.get_peer_addrs(self.host, peer, timeout=5)
        except Exception as e:  # a peer that cannot answer this is simply not asked again now
            log.debug("peer exchange with %s failed: %s", peer, e)
            return
        for text in addrs[:4]:
            pid = text.rsplit("/p2p/", 1)[-1]
            if pid != own and pid not in connected:
                self.dial_soon(text)

    def _dial_info_soon(self, info: Any) -> None:
        if self._nursery is not None and info.peer_id != self.host.get_id():
            self._nursery.start_soon(self._dial, None, info)

    def dial_soon(self, text: str, persistent: bool = False) -> None:
        """Dial `text` in the background; `persistent` (bootstrap peers) bypasses py-libp2p's
        negative dial cache, which otherwise refuses a peer for 60 s after one failed dial, so a
        restarted bootstrap node is reached again within one dial interval."""
        if text in self._dialing or self._nursery is None:
            return
        self._dialing.add(text)
        self._nursery.start_soon(self._dial, text, None, persistent)

    async def _dial(self, text: str | None, info: Any, persistent: bool = False) -> None:
        from libp2p.peer.peerinfo import info_from_p2p_addr
        from multiaddr import Multiaddr

        try:
            if info is None:
                info = info_from_p2p_addr(Multiaddr(text))
            if self.peers.is_banned(info.peer_id):
                return
            unblock = getattr(self.host.get_network(), "unblock_peer", None)
            if persistent and unblock is not None:
                unblock(info.peer_id)
            with trio.move_on_after(DIAL_TIMEOUT_S):
                await self.host.connect(info)
        except Exception as e:  # unreachable peers are normal; retried on the next round
            log.debug("dial %s failed: %s", text or info, e)
        finally:
            if text is not None:
                self._dialing.discard(text)


async def disconnect(host: IHost, peer: ID) -> None:
    try:
        await host.disconnect(peer)
    except Exception as e:  # the connection may already be gone
        log.debug("disconnecting %s: %s", peer, e)


def peer_addrs(host: IHost) -> list[str]:
    """Where connected peers listen, as others can dial them: a peer's wildcard address
    takes the IP its connection to us comes from; loopback ones only for loopback peers."""
    out = []
    store = host.get_peerstore()
    network = host.get_network()
    for peer in host.get_connected_peers():
        conns = network.get_connections(peer)
        remote_ip = next((ip for c in conns[:1] for a in c.get_transport_addresses()
                          if (ip := _ip4(str(a)))), None)
        for addr in store.addrs(peer)[:4]:
            text = str(addr)
            if "/tcp/" not in text or "/ws" in text or not text.startswith("/ip4/"):
                continue
            if text.startswith("/ip4/0.0.0.0/"):
                if remote_ip is None:
                    continue
                text = dialable(text, [remote_ip])[0]
            if text.startswith("/ip4/127.") and not (remote_ip or "").startswith("127."):
                continue
            out.append(text if "/p2p/" in text else f"{text}/p2p/{peer}")
    return list(dict.fromkeys(out))


def _ip4(addr: str) -> str | None:
    """The IPv4 address of a multiaddr's text ("/ip4/1.2.3.4/tcp/..."), or None."""
    parts = addr.split("/")
    return parts[2] if len(parts) > 2 and parts[1] == "ip4" else None
