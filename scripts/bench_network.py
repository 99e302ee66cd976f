#!/usr/bin/env python3
"""Benchmark the network on loopback with real node processes (`ratchet node` / `ratchet verify`).

For each network size (10 and 20 processes: 3 verifiers, the rest relays, plus
this script's own publishing node), K proposals are published one at a time;
every node's store records when it received each object, so on one machine
(one clock) we get, per proposal:
- propagation: publication -> the last node holding it (median, p95);
- acceptance: publication -> the last node holding the quorum's attestations,
  minus the verification itself (the quorum's reported check time; checks are
  scripted, node.roles.fakecheck, with a fixed pause standing in for training);
- CPU per message: CPU of all node processes while publishing, minus their
  idle CPU over as long, per object delivered per node.
Then a fresh node syncs an N-commit chain (3 attestations each) from a peer.

Every figure stands next to a baseline measured in the same invocation:
propagation and acceptance against one direct request/response round trip
between two nodes; CPU per message against validating and storing the same
object in-process (`Store.add`); sync against filling a store in-process with
the same objects.

    python scripts/bench_network.py            # 10 and 20 nodes, 10,000-commit sync
    python scripts/bench_network.py --quick    # 10 nodes, fewer proposals, 1,000-commit sync
    python scripts/bench_network.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import trio

from chain.builders import key, make_arena, make_attestation, make_proposal
from chain.objects import Arena
from chain.store import Store

CLI = [sys.executable, "-c", "import sys; from node.cli import main; sys.exit(main())"]
QUORUM, VERIFIERS = 2, 3
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Row:
    name: str
    value: float
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    ratio: float | None = None
    note: str = ""


def row(name: str, value: float, unit: str, baseline: str = "", base: float | None = None,
        note: str = "") -> Row:
    return Row(name, value, unit, baseline, base, value / base if base else None, note)


def p95(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process (from /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def wait_addr(home: Path, pid: int, timeout: float = 60) -> str:
    """The first address of the node process `pid` on `home`, once its status file says it runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = json.loads((home / "p2p" / "status.json").read_text())
            if status.get("pid") == pid:
                return status["addrs"][0]
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"node in {home} did not start; see {home / 'node.log'}")


class Swarm:
    """N node processes on 127.0.0.1 sharing one arena; stopped on exit whatever happens."""

    def __init__(self, root: Path, n: int, check_s: float) -> None:
        self.root, self.n, self.check_s = root, n, check_s
        vkeys = [key(i + 1) for i in range(VERIFIERS)]
        self.arena, self.ref = make_arena(key(0), [v.public for v in vkeys], quorum=QUORUM, name="bench")
        self.homes = [root / f"node{i}" for i in range(n)]
        self.procs: list[subprocess.Popen[bytes]] = []
        self.stores: list[Store] = []
        for i, home in enumerate(self.homes):
            if i < VERIFIERS:
                vkeys[i].save(home / "keys" / "identity.pem")
            with Store.open(home) as store:
                store.add(self.arena)
                store.add(self.ref)

    def start(self) -> list[str]:
        addrs: list[str] = []
        env = {**os.environ, "RATCHET_FAKE_CHECK_S": str(self.check_s)}
        for i, home in enumerate(self.homes):
            # A tree: node i bootstraps to node (i-1)//2; peer exchange and the library's
            # auto-connector then add links, as on a real network grown from a few seeds.
            boot = ["--bootstrap", addrs[(i - 1) // 2]] if i else []
            role = ["verify", "--check-with", "node.roles.fakecheck:scripted"] if i < VERIFIERS else ["node"]
            log = open(home / "node.log", "ab")  # noqa: SIM115 - the process owns it until it exits
            self.procs.append(subprocess.Popen(
                [*CLI, "--home", str(home), role[0], "--listen", "127.0.0.1", "--port", "0", *boot, *role[1:]],
                stdout=log, stderr=subprocess.STDOUT, env=env))
            addrs.append(wait_addr(home, self.procs[-1].pid))
        self.stores = [Store.open(h) for h in self.homes]
        return addrs

    def peers(self) -> list[int]:
        out = []
        for home in self.homes:
            try:
                out.append(len(json.loads((home / "p2p" / "status.json").read_text())["peers"]))
            except (OSError, ValueError, KeyError):
                out.append(0)
        return out

    def cpu(self) -> float:
        return sum(proc_cpu(p.pid) for p in self.procs)

    def stop(self) -> None:
        for store in self.stores:
            store.close()
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


async def run_size(n: int, proposals: int, check_s: float, root: Path) -> dict[str, Any]:
    """Publish `proposals` proposals into an n-process swarm; per-proposal timings and CPU."""
    from node.p2p import reqresp
    from node.p2p.network import Network, NetworkConfig

    swarm = Swarm(root / f"n{n}", n, check_s)
    try:
        addrs = swarm.start()
        pub_home = root / f"n{n}" / "publisher"
        with Store.open(pub_home) as store:
            store.add(swarm.arena)
            store.add(swarm.ref)
            net = Network(pub_home, store, NetworkConfig(listen="127.0.0.1", bootstrap=(addrs[0], addrs[-1])))
            async with trio.open_nursery() as nursery:
                await nursery.start(net.run)
                with trio.fail_after(120):
                    while min(swarm.peers()) < 2 or len(net.connected()) < 2:
                        await trio.sleep(0.2)
                await trio.sleep(3.0)  # gossip meshes form over a few heartbeats
                # baseline: one direct request/response round trip to a peer
                peer = net.connected()[0]
                rtts = []
                for _ in range(20):
                    t = time.perf_counter()
                    await reqresp.have(net.host, peer, [swarm.arena.id])
                    rtts.append(time.perf_counter() - t)
                idle_s = 3.0
                c0 = swarm.cpu()
                await trio.sleep(idle_s)
                idle_rate = (swarm.cpu() - c0) / idle_s
                results = []
                c0, t_start = swarm.cpu(), time.monotonic()
                for i in range(proposals):
                    prop, blob = make_proposal(key(30), swarm.arena, swarm.arena.id, message=f"bench {i}",
                                               script=f"# bench {i}\n# verdict: improves\n".encode(),
                                               timestamp=int(time.time() * 1000))
                    store.add(blob)
                    t0 = time.time() * 1000
                    await net.publish(prop)
                    results.append(await _follow(swarm, prop.id, t0, check_s))
                busy_s = time.monotonic() - t_start
                cpu = swarm.cpu() - c0 - idle_rate * busy_s
                nursery.cancel_scope.cancel()
        objects = proposals * (1 + VERIFIERS) + proposals  # proposals, attestations, scripts
        return {"n": n, "results": results, "rtt_s": statistics.median(rtts),
                "cpu_per_msg_s": cpu / (objects * n), "idle_cpu_per_node": idle_rate / n}
    finally:
        swarm.stop()


async def _follow(swarm: Swarm, pid: bytes, t0_ms: float, check_s: float, timeout: float = 60) -> dict[str, float]:
    """Wait until every node holds the proposal and a quorum of attestations; read the timings."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen, accepted, check_ms = [], [], []
        for store in swarm.stores:
            if not store.has(pid):
                break
            seen.append(store.received_at(pid))
            atts = sorted((store.received_at(a.id), a.wall_ms) for a in store.attestations(swarm.arena.id, pid)
                          if a.verdict == "improves")
            if len(atts) < QUORUM:
                break
            accepted.append(atts[QUORUM - 1][0])
            check_ms.append(atts[QUORUM - 1][1])
        else:
            verify_ms = statistics.median(check_ms)
            return {"propagation_s": (max(seen) - t0_ms) / 1000,
                    "acceptance_s": (max(accepted) - t0_ms - verify_ms) / 1000,
                    "verify_s": verify_ms / 1000}
        await trio.sleep(0.05)
    raise RuntimeError(f"proposal {pid.hex()[:12]} not accepted everywhere within {timeout}s")


def build_chain(commits: int) -> tuple[Arena, list[Any]]:
    vkeys = [key(i + 1) for i in range(VERIFIERS)]
    arena, ref = make_arena(key(0), [v.public for v in vkeys], quorum=QUORUM, name="sync")
    objs: list[Any] = [arena, ref]
    parent = arena.id
    for i in range(commits):
        p, b = make_proposal(key(10), arena, parent, message=f"c{i}", timestamp=1_700_000_001_000 + i)
        objs += [b, p, *(make_attestation(v, p, timestamp=1_700_000_002_000 + i) for v in vkeys)]
        parent = p.id
    return arena, objs


def bench_sync(commits: int, root: Path) -> list[Row]:
    arena, objs = build_chain(commits)
    source, fresh = root / "sync-source", root / "sync-fresh"
    t = time.perf_counter()
    with Store.open(source) as store:
        for obj in objs:
            store.add(obj)
        total = len(store.inventory(arena.id))
    fill_s = time.perf_counter() - t
    procs = []
    try:
        procs.append(subprocess.Popen([*CLI, "--home", str(source), "node", "--listen", "127.0.0.1", "--port", "0"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        addr = wait_addr(source, procs[0].pid)
        t = time.perf_counter()
        procs.append(subprocess.Popen([*CLI, "--home", str(fresh), "node", "--listen", "127.0.0.1", "--port", "0",
                                       "--bootstrap", addr], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_addr(fresh, procs[1].pid)
        with Store.open(fresh) as store:
            deadline = time.monotonic() + 1800
            while time.monotonic() < deadline:
                if store.has(arena.id) and len(store.inventory(arena.id)) == total:
                    break
                time.sleep(0.5)
            else:
                raise RuntimeError("sync did not finish in 30 minutes")
        sync_s = time.perf_counter() - t
        cpu = proc_cpu(procs[0].pid) + proc_cpu(procs[1].pid)
    finally:
        for p in procs:
            p.terminate()
            p.wait(20)
    return [row(f"sync of a {commits:,}-commit chain ({total:,} objects), fresh node incl. start",
                sync_s, "s", "same objects stored in-process (Store.add)", fill_s,
                note=f"{total / sync_s:,.0f} objects/s; both nodes {cpu:.1f} CPU-s")]


def store_add_cost(root: Path, n: int = 300) -> float:
    """CPU seconds per Store.add of a proposal/attestation-like mix (the validation baseline)."""
    arena, objs = build_chain(n // 5)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    with Store.open(root / "baseline") as store:
        for obj in objs:
            store.add(obj)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / len(objs)


def size_rows(data: dict[str, Any], add_cpu: float) -> list[Row]:
    n, res = data["n"], data["results"]
    prop = [r["propagation_s"] for r in res]
    acc = [r["acceptance_s"] for r in res]
    rtt = data["rtt_s"]
    base = "one request/response round trip"
    return [
        row(f"{n} nodes: proposal reaches every node, median", statistics.median(prop) * 1000, "ms", base, rtt * 1000),
        row(f"{n} nodes: proposal reaches every node, p95", p95(prop) * 1000, "ms", base, rtt * 1000),
        row(f"{n} nodes: publication -> accepted everywhere, minus verification, median",
            statistics.median(acc) * 1000, "ms", base, rtt * 1000,
            note=f"verification {statistics.median(r['verify_s'] for r in res):.2f} s subtracted"),
        row(f"{n} nodes: same, p95", p95(acc) * 1000, "ms", base, rtt * 1000),
        row(f"{n} nodes: CPU per object delivered, per node", data["cpu_per_msg_s"] * 1000, "ms",
            "Store.add of one object in-process", add_cpu * 1000,
            note=f"idle CPU {data['idle_cpu_per_node'] * 100:.1f}% of a core per node"),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10 nodes, 5 proposals, a 1,000-commit sync")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="node processes per network")
    ap.add_argument("--proposals", type=int, default=None)
    ap.add_argument("--commits", type=int, default=None, help="length of the synced chain")
    ap.add_argument("--check-s", type=float, default=0.5, help="scripted verification time")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    from node.roles.runner import setup_logging

    setup_logging()  # the in-process publisher's libp2p chatter stays out of the table
    sizes = args.sizes or ([10] if args.quick else [10, 20])
    proposals = args.proposals or (5 if args.quick else 15)
    commits = args.commits or (1000 if args.quick else 10_000)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-net-") as tmp:
        root = Path(tmp)
        add_cpu = store_add_cost(root)
        for n in sizes:
            print(f"... {n} nodes, {proposals} proposals", file=sys.stderr, flush=True)
            rows += size_rows(trio.run(run_size, n, proposals, args.check_s, root), add_cpu)
        print(f"... syncing {commits:,} commits", file=sys.stderr, flush=True)
        rows += bench_sync(commits, root)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return 0
    print(f"{'measurement':<78} {'median':>11} {'baseline':>11} {'ratio':>8}  note")
    for r in rows:
        base = f"{r.baseline_value:,.2f}" if r.baseline_value is not None else ""
        ratio = f"{r.ratio:,.1f}x" if r.ratio is not None else ""
        print(f"{r.name:<78} {r.value:>9,.2f}{r.unit:>2} {base:>11} {ratio:>8}  {r.baseline} {r.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
