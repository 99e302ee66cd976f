"""`ratchet demo`: a whole local Ratchet network as separate processes on this machine.

Layout of the demo directory (created once, reused by later runs unless --fresh):

    <dir>/<role>/           one data directory (key + store) per node
    <dir>/logs/<role>.log   each process's output
    <dir>/demo.json         what was created: keys, arena id, ports, budget

Roles, each a separate `ratchet` process talking libp2p over loopback: a relay
node with the leaderboard on its data directory (`ratchet node` + `ratchet
serve`), N verifiers (`ratchet verify`, quorum K) and a contributor running
the built-in search (`ratchet contribute`, which starts its own node). The
relay starts first; the others bootstrap from its address. Each child runs in
its own session, so a Ctrl-C reaches only this supervisor, which stops the
children in order: SIGTERM, a second SIGTERM, then SIGKILL of the whole
process group.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import journalfile
from chain.keys import SigningKey
from chain.store import Store
from node.p2p.statusfile import wait_for
from node.supervise.errors import SuperviseError
from node.supervise.netnode import ratchet_argv

STOP_GRACE_S = 8.0


@dataclass
class Child:
    role: str
    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    _log_file: IO[bytes] | None = None

    def start(self, cwd: Path) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log, "ab")
        self._log_file.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(self.argv)}\n".encode())
        self._log_file.flush()
        self.proc = subprocess.Popen(
            self.argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=self._log_file,
            stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **self.env},
        )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.proc is None:
            return
        try:
            if sig == signal.SIGKILL:
                os.killpg(self.proc.pid, sig)  # training workers it started die with it
            elif self.proc.poll() is None:
                self.proc.send_signal(sig)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


@dataclass
class Layout:
    root: Path
    contributor: Path
    verifiers: list[Path]
    leaderboard: Path
    logs: Path
    arena_id: bytes
    budget: int
    quorum: int

    def info(self) -> dict[str, Any]:
        return {"arena": self.arena_id.hex(), "budget": self.budget, "quorum": self.quorum,
                "contributor": str(self.contributor), "verifiers": [str(v) for v in self.verifiers],
                "leaderboard": str(self.leaderboard), "logs": str(self.logs)}


def setup(root: Path, *, budget: int, verifiers: int, quorum: int, fresh: bool,
          overrides: dict[str, str] | None = None) -> Layout:
    """Create (or reuse) the demo's keys, arena and stores."""
    if quorum > verifiers:
        raise SuperviseError(f"quorum {quorum} exceeds the {verifiers} verifiers")
    if fresh and root.exists():
        _remove_demo(root)
    root.mkdir(parents=True, exist_ok=True)
    info_path = root / "demo.json"
    homes = {"contributor": root / "contributor", "leaderboard": root / "leaderboard"}
    vhomes = [root / f"verifier-{i + 1}" for i in range(verifiers)]
    if info_path.exists():
        info = json.loads(info_path.read_text())
        if info.get("verifiers") == [str(v) for v in vhomes] and info.get("quorum") == quorum:
            return Layout(root, homes["contributor"], vhomes, homes["leaderboard"],
                          root / "logs", bytes.fromhex(info["arena"]), int(info["budget"]), quorum)
        raise SuperviseError(f"{root} holds a demo with other settings; pass --fresh to replace it")

    keys = {}
    for name, home in [*homes.items(), *((p.name, p) for p in vhomes)]:
        path = home / "keys" / "identity.pem"
        if path.exists():
            keys[name] = SigningKey.load(path)
        else:
            keys[name] = SigningKey.generate()
            keys[name].save(path)
    from model.arenas import build_arena

    settings = {"budget_value": str(budget), **(overrides or {})}
    arena, blob = build_arena("tiny", keys["contributor"], [keys[p.name].public for p in vhomes],
                              quorum, overrides=settings)
    for home in [*homes.values(), *vhomes]:
        with Store.open(home) as store:
            store.add(blob)
            store.add(arena)
    layout = Layout(root, homes["contributor"], vhomes, homes["leaderboard"],
                    root / "logs", arena.id, budget, quorum)
    info_path.write_text(json.dumps(layout.info(), indent=1))
    return layout


def _remove_demo(root: Path) -> None:
    """Delete a previous demo directory, but only one that looks like ours."""
    if not (root / "demo.json").exists() and any(root.iterdir()):
        raise SuperviseError(f"{root} exists and is not a demo directory; refusing to delete it")
    shutil.rmtree(root)


RELAY_START_TIMEOUT_S = 90.0


def relay_children(layout: Layout, *, port: int) -> list[Child]:
    """The relay node and the leaderboard, both on the leaderboard's data directory."""
    home, logs = layout.leaderboard, layout.logs
    return [
        Child("relay", ratchet_argv(home, "node", "--listen", "127.0.0.1", "--port", "0",
                                    "--sync-interval", "5"), logs / "relay.log"),
        Child("leaderboard", ratchet_argv(home, "serve", "--host", "127.0.0.1", "--port", str(port)),
              logs / "leaderboard.log"),
    ]


def relay_address(layout: Layout, relay: Child, timeout_s: float = RELAY_START_TIMEOUT_S) -> str:
    """The relay's loopback multiaddr, read from its status file once it is up."""
    status = wait_for(layout.leaderboard, lambda s: bool(_loopback(s)), timeout_s, gone=lambda: not relay.alive)
    if status is not None:
        return _loopback(status)[0]
    if not relay.alive:
        raise SuperviseError(f"the relay node exited; see {relay.log}")
    raise SuperviseError(f"the relay node did not report an address within {timeout_s:.0f}s; see {relay.log}")


def _loopback(status: dict[str, Any]) -> list[str]:
    return [str(a) for a in status.get("addrs", []) if "/127.0.0.1/" in a]


def peer_children(layout: Layout, bootstrap: str, *, threads: int, unsafe: bool,
                  seeds: int | None) -> list[Child]:
    """The verifiers and the contributor, bootstrapping from the relay."""
    net = ["--listen", "127.0.0.1", "--port", "0", "--sync-interval", "5", f"--bootstrap={bootstrap}"]
    extra = ["--unsafe-no-sandbox"] if unsafe else []
    kids = [Child(v.name, ratchet_argv(v, "verify", *net, "--threads", str(threads), *extra),
                  layout.logs / f"{v.name}.log") for v in layout.verifiers]
    contrib = ["contribute", *net, "--max-pending", "1", "--threads", str(threads), "--nice", "5",
               *extra] + (["--seeds", str(seeds)] if seeds else [])
    kids.append(Child("contributor", ratchet_argv(layout.contributor, *contrib),
                      layout.logs / "contributor.log"))
    return kids


def status_line(layout: Layout, store_home: Path, journal_home: Path) -> str:
    """One line: head, proposals by status, experiments run (read-only on the stores and journal)."""
    from chain.consensus import state_for
    from chain.metrics import fmt_ubpb

    with Store.open(store_home) as store:
        state = state_for(store, layout.arena_id)
        n_att = len(store.attestations(layout.arena_id))
    counts: dict[str, int] = {}
    for c in state.commits.values():
        counts[c.status] = counts.get(c.status, 0) + 1
    head = state.commits.get(state.head)
    head_text = (f"head height {head.height} val_bpb {fmt_ubpb(head.metric_ubpb or 0)} "
                 f"cumulative gain {fmt_ubpb(head.cumulative_ubpb, signed=True)}"
                 if head else "head = reference script")
    experiments = _experiment_counts(journal_home, layout.arena_id)
    decided = sum(n for decision, n in experiments if decision)
    props = " ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
    return (f"{head_text} | proposals: {props} | attestations {n_att} | "
            f"experiments {decided} done, {sum(n for _, n in experiments) - decided} running")


def _experiment_counts(home: Path, arena_id: bytes) -> list[tuple[str | None, int]]:
    """(decision, experiments) from the contributor's journal; none before it creates the journal."""
    conn = journalfile.open_existing(home)
    if conn is None:
        return []
    with closing(conn):
        return journalfile.decision_counts(conn, arena_id) if journalfile.has_tables(conn) else []


def supervise(children: list[Child], cwd: Path, *, status: Callable[[], str],
              say: Callable[[str], None], every_s: float = 10.0, duration_s: float | None = None,
              done: Callable[[], bool] | None = None,
              then: Callable[[], list[Child]] | None = None) -> None:
    """Start the children (then those `then()` returns, once the first are up), print status
    until Ctrl-C / duration / done(), then stop them all."""
    stop = {"now": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["now"] = True

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    try:
        def start(batch: list[Child]) -> None:
            for c in batch:
                c.start(cwd)
                say(f"started {c.role:<12} pid {c.proc.pid if c.proc else '-'}  log {c.log}")

        start(children)
        if then is not None:
            more = then()
            children.extend(more)
            start(more)
        last = 0.0
        while not stop["now"]:
            now = time.monotonic()
            if duration_s is not None and now - started >= duration_s:
                break
            for c in children:
                if c.proc is not None and not c.alive and c.proc.returncode not in (0, None):
                    say(f"{c.role} exited with status {c.proc.returncode}; see {c.log}")
                    c.proc = None
            if now - last >= every_s:
                last = now
                try:
                    say(status())
                except (SuperviseError, sqlite3.Error, OSError) as e:
                    say(f"status unavailable: {e}")
            if done is not None and done():
                break
            time.sleep(0.2)
    finally:
        say("stopping all processes...")
        stop_all(children)
        for s, h in old.items():
            signal.signal(s, h)
        say("all processes stopped")


def stop_all(children: list[Child]) -> None:
    """SIGTERM everyone, again after half the grace period, then SIGKILL each process group."""
    for c in children:
        c.signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    resent = False
    while time.monotonic() < deadline and any(c.alive for c in children):
        if not resent and time.monotonic() > deadline - STOP_GRACE_S / 2:
            for c in children:
                c.signal(signal.SIGTERM)
            resent = True
        time.sleep(0.1)
    for c in children:
        c.signal(signal.SIGKILL)
        if c.proc is not None:
            try:
                c.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        c.close()
