"""The running node's status file, `<home>/p2p/status.json`: its one writer and its one reader.

`ratchet node` (network.Network) replaces it atomically every STATUS_INTERVAL_S;
`ratchet status`, `ratchet propose`, the contributor's node link and the demo
supervisor read it to learn whether a node runs on a home (no libp2p import).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STATUS_FILE = Path("p2p") / "status.json"
STATUS_INTERVAL_S = 1.0
FRESH_STATUS_S = 5.0  # an older status file was left by a node that is gone (or hung)
POLL_S = 0.2


def write_status(home: Path, status: dict[str, Any]) -> None:
    """Replace the status file of `home` with `status` (which carries `pid` and `updated_ms`)."""
    path = home / STATUS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(status, indent=1, sort_keys=True, default=str))
    os.replace(tmp, path)


def local_node(home: Path) -> dict[str, Any] | None:
    """The status of a node running on `home` (fresh status file, live process), else None."""
    path = home / STATUS_FILE
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(status, dict) or time.time() * 1000 - status.get("updated_ms", 0) > FRESH_STATUS_S * 1000:
        return None
    try:
        os.kill(int(status.get("pid", -1)), 0)
    except (OSError, ValueError):
        return None
    return status


def wait_for(home: Path, ok: Callable[[dict[str, Any]], bool], timeout_s: float,
             gone: Callable[[], bool] = lambda: False) -> dict[str, Any] | None:
    """The local node's status once `ok(status)`; None after `timeout_s`, or as soon as `gone()`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = local_node(home)
        if status is not None and ok(status):
            return status
        if gone():
            return None
        time.sleep(POLL_S)
    return None
