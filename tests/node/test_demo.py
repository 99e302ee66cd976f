"""`ratchet demo`: separate processes on loopback, the leaderboard answering, a clean Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(240)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read().decode()


def test_demo_starts_a_network_serves_the_leaderboard_and_stops_cleanly(tmp_path: Path) -> None:
    port = _free_port()
    root = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from node.cli import main; main()", "--home", str(tmp_path / "home"),
         "demo", "--dir", str(root), "--port", str(port), "--budget", "4000", "--threads", "1",
         "--duration", "200"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    out: list[str] = []
    try:
        deadline = time.monotonic() + 150
        verifiers_seen = False
        while time.monotonic() < deadline:
            line = proc.stdout.readline() if proc.stdout else ""
            if not line:
                break
            out.append(line)
            if line.startswith("started contributor"):
                verifiers_seen = True
                break
        assert verifiers_seen, "".join(out)
        # the relay has every peer (3 verifiers + the contributor's node) and the board answers
        relay_status = root / "leaderboard" / "p2p" / "status.json"
        peers = 0
        while time.monotonic() < deadline and peers < 4:
            try:
                peers = len(json.loads(relay_status.read_text())["peers"])
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.5)
        assert peers >= 4, "".join(out)
        status, page = _get(f"http://127.0.0.1:{port}/")
        assert status == 200 and "tiny" in page
        status, api = _get(f"http://127.0.0.1:{port}/api/arenas")
        assert status == 200 and json.loads(api)
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        out.append(rest)
    text = "".join(out)
    assert proc.returncode == 0, text
    assert "relay listening on /ip4/127.0.0.1/" in text and "all processes stopped" in text
    pids = [int(p) for p in re.findall(r"^started \S+\s+pid (\d+)", text, re.M)]
    assert len(pids) == 6  # relay, leaderboard, 3 verifiers, contributor
    assert not [p for p in pids if _alive(p)]
    # the contributor's own node (a grandchild) is gone too
    node_log = root / "contributor" / "logs" / "contribute-node.log"
    assert "listening on" in node_log.read_text()
    contributor_status = json.loads((root / "contributor" / "p2p" / "status.json").read_text())
    node_pid = int(contributor_status["pid"])
    deadline = time.monotonic() + 15  # its parent stopped it; on a loaded machine it may still be exiting
    while _alive(node_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(node_pid)
