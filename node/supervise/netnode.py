"""The contributor's link to the network: a `ratchet node` on the same data directory.

The research loop writes its proposals into the local store; the node running
on that data directory gossips whatever lands in the store (its watch loop) and
keeps the store synced with peers, so a new head reaches the loop without any
other channel. `attach` reuses a node already running on the home, or starts
one as a child process in its own session (so a Ctrl-C in the terminal lets
the loop finish its run and publish before the node stops), which gets
SIGTERM from the kernel if this process dies first (PR_SET_PDEATHSIG) and is
stopped by `close`.
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from node.p2p.statusfile import local_node, wait_for
from node.supervise.errors import SuperviseError

START_TIMEOUT_S = 90.0  # importing libp2p and binding on a loaded machine
STOP_TIMEOUT_S = 10.0
LOG_NAME = "contribute-node.log"


@dataclass
class NodeLink:
    """A node the contributor publishes through; `owned` when this process started it."""

    pid: int
    addrs: list[str]
    owned: subprocess.Popen[bytes] | None = None

    def close(self) -> None:
        proc = self.owned
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)


def ratchet_argv(home: Path, *args: str) -> list[str]:
    """The `ratchet` command run by this interpreter (no reliance on PATH or an installed script)."""
    return [sys.executable, "-c", "from node.cli import main; main()", "--home", str(home), *args]


def attach(home: Path, network_args: list[str], *, timeout_s: float = START_TIMEOUT_S) -> NodeLink:
    """The node running on `home`, or a new child node started with `network_args`.

    Raises SuperviseError naming the log when the child exits or never reports.
    """
    running = local_node(home)
    if running is not None:
        return NodeLink(int(running["pid"]), list(running.get("addrs", [])))
    log_path = home / "logs" / LOG_NAME
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(ratchet_argv(home, "node", *network_args), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_die_with_parent)
    status = wait_for(home, lambda s: int(s.get("pid", -1)) == proc.pid, timeout_s,
                      gone=lambda: proc.poll() is not None)
    if status is not None:
        return NodeLink(proc.pid, list(status.get("addrs", [])), owned=proc)
    if proc.poll() is not None:
        raise SuperviseError(f"the network node exited with status {proc.returncode}: "
                            f"{_tail(log_path)} (full log: {log_path})")
    NodeLink(proc.pid, [], owned=proc).close()
    raise SuperviseError(f"the network node did not start within {timeout_s:.0f}s (log: {log_path})")


def wait_for_arena(home: Path, link: NodeLink, timeout_s: float) -> bool:
    """Wait until the store under `home` holds an arena (synced by the node); False on timeout."""
    from chain.store import Store

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with Store.open(home) as store:
            if store.arenas():
                return True
        if link.owned is not None and link.owned.poll() is not None:
            return False
        time.sleep(0.5)
    return False


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux prctl PR_SET_PDEATHSIG)."""
    pr_set_pdeathsig = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: close() still stops it
        pass


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"
