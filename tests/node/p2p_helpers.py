"""Helpers for the p2p tests: bounded trio runs and N real libp2p hosts on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import trio

from chain.builders import key, make_arena, make_attestation, make_proposal
from chain.objects import Arena, Attestation, Blob, Proposal

LOOPBACK = "127.0.0.1"


def run_trio(fn: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    """Run `fn` under trio with a hard deadline (a hung test fails instead of hanging CI)."""

    async def main() -> Any:
        with trio.fail_after(timeout):
            return await fn()

    return trio.run(main)


@asynccontextmanager
async def running_hosts(n: int) -> AsyncIterator[list[Any]]:
    """`n` real hosts (Noise, yamux, TCP on 127.0.0.1, any port), closed on exit."""
    import os

    from libp2p.crypto.ed25519 import create_new_key_pair

    from node.p2p.host import listen_addrs, make_host

    async with AsyncExitStack() as stack:
        hosts = []
        for _ in range(n):
            host = make_host(create_new_key_pair(os.urandom(32)))
            await stack.enter_async_context(host.run(listen_addrs(LOOPBACK, 0)))
            hosts.append(host)
        yield hosts


async def connect(a: Any, b: Any) -> None:
    """Dial b from a."""
    from libp2p.peer.peerinfo import info_from_p2p_addr

    await a.connect(info_from_p2p_addr(b.get_addrs()[0]))


def small_chain(commits: int, verifiers: int = 3, quorum: int = 2,
                ) -> tuple[Arena, list[Blob], list[Proposal], list[Attestation]]:
    """An arena and a linear chain of `commits` accepted commits (quorum attestations each)."""
    vkeys = [key(i + 1) for i in range(verifiers)]
    arena, ref = make_arena(key(0), [v.public for v in vkeys], quorum=quorum)
    blobs, props, atts = [ref], [], []
    parent = arena.id
    for i in range(commits):
        p, b = make_proposal(key(10), arena, parent, message=f"commit {i}", timestamp=1_700_000_001_000 + i)
        blobs.append(b)
        props.append(p)
        atts.extend(make_attestation(v, p, timestamp=1_700_000_002_000 + i) for v in vkeys[:quorum])
        parent = p.id
    return arena, blobs, props, atts


FAST = dict(sync_interval_s=1.0, announce_interval_s=0.3, watch_interval_s=0.05, dial_interval_s=0.3)


@asynccontextmanager
async def running_networks(homes: list[Any], bootstrap_first: bool = True,
                           **config: Any) -> AsyncIterator[list[Any]]:
    """One Network per home (each with its own store), all on 127.0.0.1; node i > 0 bootstraps
    to node 0 when `bootstrap_first`. Everything is cancelled and closed on exit, even on failure."""
    from chain.store import Store
    from node.p2p.network import Network, NetworkConfig

    settings = {**FAST, **config}
    async with AsyncExitStack() as stack:
        stores = [stack.enter_context(Store.open(h)) for h in homes]
        nursery = await stack.enter_async_context(trio.open_nursery())
        stack.callback(nursery.cancel_scope.cancel)
        nets = []
        for i, (home, store) in enumerate(zip(homes, stores, strict=True)):
            boot = tuple(nets[0].addrs[:1]) if bootstrap_first and i > 0 else ()
            net = Network(home, store, NetworkConfig(listen=LOOPBACK, bootstrap=boot, **settings))
            await nursery.start(net.run)
            nets.append(net)
        yield nets


async def wait_until(predicate: Callable[[], bool], timeout: float = 60.0, poll: float = 0.05) -> None:
    """Poll `predicate` until true; fail with a clear error after `timeout` seconds."""
    with trio.move_on_after(timeout):
        while not predicate():
            await trio.sleep(poll)
        return
    raise AssertionError(f"condition not met within {timeout}s")


# -- real node processes ----------------------------------------------------------------
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

CLI = [sys.executable, "-c", "import sys; from node.cli import main; sys.exit(main())"]
CHECK = "node.roles.fakecheck:scripted"
FAST_FLAGS = ["--listen", LOOPBACK, "--port", "0", "--sync-interval", "1"]


def poll(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll `predicate` (sync) until it returns something truthy; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def ratchet(home: Path, *args: str, timeout: float = 180, env: dict[str, str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one `ratchet --home HOME ...` command to completion."""
    proc = subprocess.run([*CLI, "--home", str(home), *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"ratchet {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


class NodeProc:
    """One `ratchet node|verify` process; its output goes to HOME/role.log."""

    def __init__(self, home: Path, role: str, args: list[str], env: dict[str, str] | None = None,
                 prefix: list[str] | None = None) -> None:
        self.home, self.role = home, role
        home.mkdir(parents=True, exist_ok=True)
        self.log_path = home / f"{role}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        # `prefix` runs the node inside something, e.g. ["ip", "netns", "exec", NAME]
        self.proc = subprocess.Popen([*(prefix or []), *CLI, "--home", str(home), role, *FAST_FLAGS, *args],
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})

    def status(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.home / "p2p" / "status.json").read_text())
        except (OSError, ValueError):
            return None
        return data if data.get("pid") == self.proc.pid else None

    def addr(self, timeout: float = 90) -> str:
        status = poll(self.status, timeout, f"{self.role} in {self.home} to start")
        return status["addrs"][0]

    def peers(self) -> int:
        status = self.status()
        return len(status["peers"]) if status else 0

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def node_processes() -> Iterator[Callable[..., NodeProc]]:
    """A factory of node processes; every one is stopped (SIGTERM, then SIGKILL) on exit, and the
    logs of all are printed when the test failed."""
    procs: list[NodeProc] = []

    def start(home: Path, role: str = "node", *args: str, env: dict[str, str] | None = None,
              prefix: list[str] | None = None) -> NodeProc:
        proc = NodeProc(home, role, list(args), env, prefix)
        procs.append(proc)
        return proc

    failed = True
    try:
        yield start
        failed = False
    finally:
        for p in procs:
            p.stop(timeout=10)
        if failed:
            for p in procs:
                print(f"----- {p.role} {p.home} (rc {p.proc.returncode}) -----\n{p.output()[-4000:]}")


def setup_homes(root: Path, verifiers: int = 3, quorum: int = 2, others: int = 2) -> dict[str, Any]:
    """Homes for `verifiers` verifier nodes (keys 1..n, each with its key file) and `others` plain
    homes (an author key in each), all holding the same test arena and its script."""
    from chain.store import Store

    vkeys = [key(i + 1) for i in range(verifiers)]
    arena, ref = make_arena(key(0), [v.public for v in vkeys], quorum=quorum)
    homes: dict[str, Any] = {"arena": arena, "ref": ref, "verifiers": [], "others": []}
    for i, k in enumerate(vkeys):
        home = root / f"v{i + 1}"
        k.save(home / "keys" / "identity.pem")
        homes["verifiers"].append(home)
    for i in range(others):
        home = root / f"n{i + 1}"
        key(10 + i).save(home / "keys" / "identity.pem")
        homes["others"].append(home)
    for home in homes["verifiers"] + homes["others"]:
        with Store.open(home) as store:
            store.add(arena)
            store.add(ref)
    return homes
