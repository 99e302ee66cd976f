"""Fetching the scripts that gossiped proposals name (gossip carries ids, never scripts).

A wanted blob is asked first from the peer that sent the proposal (it validated
the proposal and most likely holds the script), then from a few other peers;
misses back off (0.2 s, 0.4 s, ...) and give up after `MAX_TRIES`, leaving the
rest to anti-entropy sync. Whatever arrives is checked against its id by
reqresp and stored by the store; a peer whose answer is wrong is penalised.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from chain.errors import ChainError
from chain.objects import ChainObject
from node.p2p import reqresp
from node.p2p.peers import PeerBook

if TYPE_CHECKING:
    from libp2p.abc import IHost
    from libp2p.peer.id import ID

    from chain.store import Store

log = logging.getLogger(__name__)

MAX_TRIES = 8
FETCH_TIMEOUT_S = 20.0


class BlobFetcher:
    def __init__(self, host: IHost, store: Store, peers: PeerBook,
                 on_stored: Callable[[ChainObject], None], idle_s: float) -> None:
        self.host, self.store, self.peers = host, store, peers
        self.on_stored = on_stored
        self.idle_s = idle_s
        self.fetched = 0
        self._wanted: dict[bytes, tuple[ID | None, int, float]] = {}  # id -> (hint, tries, not before)
        self._wake = trio.Event()

    def want(self, blob_id: bytes, hint: ID | None) -> None:
        if blob_id not in self._wanted and not self.store.has(blob_id):
            self._wanted[blob_id] = (hint, 0, 0.0)
            self._wake.set()

    async def run(self) -> None:
        while True:
            with trio.move_on_after(self.idle_s):
                await self._wake.wait()
            self._wake = trio.Event()
            now = trio.current_time()
            for blob_id, (hint, tries, when) in list(self._wanted.items()):
                if when > now:
                    continue
                if self.store.has(blob_id) or tries >= MAX_TRIES:
                    del self._wanted[blob_id]
                    continue
                others = [p for p in self.host.get_connected_peers() if p != hint]
                random.shuffle(others)
                candidates = ([hint] if hint is not None and tries == 0 else []) + others[:3]
                if await self._fetch(blob_id, candidates):
                    del self._wanted[blob_id]
                else:
                    self._wanted[blob_id] = (None, tries + 1, now + 0.2 * 2**tries)

    async def _fetch(self, blob_id: bytes, candidates: list[ID]) -> bool:
        for peer in candidates:
            try:
                (obj,) = await reqresp.get_objects(self.host, peer, [blob_id], timeout=FETCH_TIMEOUT_S)
            except reqresp.PeerAnswerError as e:
                self.peers.invalid(peer, str(e))
                continue
            except Exception as e:  # peer gone or slow: try the next
                log.debug("blob %s from %s: %r", blob_id.hex()[:12], peer, e)
                continue
            if obj is None:
                continue
            try:
                self.store.add(obj)
            except ChainError as e:
                self.peers.invalid(peer, f"blob {blob_id.hex()[:12]}: {e}")
                continue
            self.on_stored(obj)
            self.fetched += 1
            return True
        return False
