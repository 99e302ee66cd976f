"""The running node's status file, `<home>/p2p/status.json`: its one writer and its one reader.

`ratchet node` (network.Network) rewrites it every STATUS_INTERVAL_S, atomically
(a temporary file, then a rename), so a reader never sees half a file. Whatever
runs beside it on the same data directory reads it to learn whether a node runs
there and what it is doing: `ratchet status`, `ratchet propose` (publish through
it), the contributor's link to its node and the demo supervisor. Standard
library only, so reading it costs no libp2p import.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

STATUS_FILE = Path("p2p") / "status.json"
STATUS_INTERVAL_S = 1.0
FRESH_STATUS_S = 5.0  # an older status file was left by a node that is gone (or hung)


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
