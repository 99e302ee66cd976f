"""A bare network node in its own process, for kill/restart tests: `python node_child.py HOME [BOOTSTRAP...]`.

Runs node.p2p.network.Network around the store in HOME on 127.0.0.1 with fast
intervals, prints one line `ready <json: peer_id, addrs>` once listening, and
runs until killed (SIGTERM ends it cleanly; the tests mostly use SIGKILL).
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import trio

from chain.store import Store
from node.p2p.network import Network, NetworkConfig

FAST = dict(sync_interval_s=1.0, announce_interval_s=0.3, watch_interval_s=0.05, dial_interval_s=0.3)


async def main(home: Path, bootstrap: tuple[str, ...], port: int) -> None:
    with Store.open(home) as store:
        net = Network(home, store, NetworkConfig(listen="127.0.0.1", port=port, bootstrap=bootstrap, **FAST))
        async with trio.open_nursery() as nursery:
            await nursery.start(net.run)
            print("ready " + json.dumps({"peer_id": net.peer_id, "addrs": net.addrs}), flush=True)
            with trio.open_signal_receiver(signal.SIGTERM) as signals:
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break


if __name__ == "__main__":
    args = sys.argv[1:]
    port = 0
    if args and args[0].startswith("--port="):
        port = int(args.pop(0).split("=", 1)[1])
    trio.run(main, Path(args[0]), tuple(args[1:]), port)
