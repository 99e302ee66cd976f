#!/usr/bin/env python3
"""Soak: many Ratchet processes on 127.0.0.1, killed and restarted at random, then a convergence check.

N relay nodes (`ratchet node`), k verifiers (`ratchet verify`) and a contributor
run as separate processes, each with its own data directory and a node.toml
(127.0.0.1, a fixed port, bootstrap peers). For `--duration` seconds random
processes are SIGKILLed (their whole process group: training and sandbox
children too) and restarted after a short pause. Then the contributor stops,
the verifiers drain their queues, and the soak measures how long every node
takes to hold the same objects and the same head. Finally every process is
stopped, `ratchet status --json` is read for each home, and every store is
re-validated in full (chain.audit) and compared: same inventory, same head,
nothing lost (the union of all stores equals each store).

Checks: `--checks real` runs the real sandboxed check on a reduced `tiny`
budget and a real contributor (`ratchet contribute --offline`, built-in search,
beside a `ratchet node` on the same data directory that gossips what it writes);
`--checks scripted` uses `node.roles.fakecheck:scripted` (no training: the
verdict is written in the script) and proposals made by this script with
`ratchet propose`, for a soak of the network alone on a busy machine.

    python scripts/soak.py                                   # 20 nodes, 10 minutes, real checks
    python scripts/soak.py --nodes 8 --duration 120 --checks scripted
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RATCHET = [str(Path(sys.executable).with_name("ratchet"))]  # the console script beside this interpreter
COUNTERS = ("published", "gossip_stored", "pulled", "blobs_fetched", "sync_rounds", "sync_failures", "bans")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(home: Path, *args: str, timeout: float = 120) -> str:
    done = subprocess.run([*RATCHET, "--home", str(home), *args], capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"ratchet {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


@dataclass
class Proc:
    """One role process and its data directory, across restarts."""

    name: str
    role: str  # node | verify | contribute
    home: Path
    port: int
    args: list[str]
    popen: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    peak_rss_kb: int = 0
    totals: dict[str, int] = field(default_factory=dict)
    last: dict[str, int] = field(default_factory=dict)
    down_until: float = 0.0

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> None:
        log = open(self.home / "soak.log", "ab")  # noqa: SIM115 - handed to the child
        self.popen = subprocess.Popen([*RATCHET, "--home", str(self.home), *self.args], stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=30)
        self._bank()

    def stop(self, timeout: float = 20) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=30)
        self._bank()

    def _bank(self) -> None:
        """Counters reset with each incarnation: add the last seen values to the totals."""
        for k, v in self.last.items():
            self.totals[k] = self.totals.get(k, 0) + v
        self.last = {}

    def status(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.home / "p2p" / "status.json").read_text())
        except (OSError, ValueError):
            return None

    def sample(self) -> None:
        if not self.alive:
            return
        assert self.popen is not None
        try:
            for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss_kb = max(self.peak_rss_kb, int(line.split()[1]))
        except OSError:
            pass
        st = self.status()
        if st is not None and st.get("pid") == self.popen.pid:
            self.last = {k: int(st.get("counters", {}).get(k, 0)) for k in COUNTERS}

    def total(self, key: str) -> int:
        return self.totals.get(key, 0) + self.last.get(key, 0)


def write_config(home: Path, port: int, bootstrap: list[str]) -> None:
    boot = ", ".join(json.dumps(b) for b in bootstrap)
    (home / "node.toml").write_text(f'[network]\nlisten = "127.0.0.1"\nport = {port}\nbootstrap = [{boot}]\n')


def wait_for_status(p: Proc, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = p.status()
        if st is not None and p.popen is not None and st.get("pid") == p.popen.pid:
            return st
        if not p.alive:
            raise RuntimeError(f"{p.name} exited: see {p.home / 'soak.log'}")
        time.sleep(0.2)
    raise RuntimeError(f"{p.name} did not start within {timeout}s: see {p.home / 'soak.log'}")


def setup(root: Path, args: argparse.Namespace,
          rng: random.Random) -> tuple[list[Proc], Proc, list[Proc], Proc | None, bytes]:
    """Homes, keys, the arena (in the contributor's home) and the process list."""
    sync = ["--sync-interval", str(args.sync_interval)]
    check = ["--check-with", "node.roles.fakecheck:scripted"] if args.checks == "scripted" else ["--threads", "1"]
    nodes = [Proc(f"node{i:02d}", "node", root / f"node{i:02d}", free_port(), ["node", *sync])
             for i in range(args.nodes)]
    verifiers = [Proc(f"verifier{i}", "verify", root / f"verifier{i}", free_port(), ["verify", *sync, *check])
                 for i in range(args.verifiers)]
    contributor = Proc("contributor", "node", root / "contributor", free_port(), ["node", *sync])
    searcher = None
    if args.checks == "real":  # the search loop, writing into the contributor node's store
        searcher = Proc("search", "contribute", contributor.home, 0,
                        ["contribute", "--offline", "--threads", "1", "--max-pending", "2", "--no-claims",
                         "--search-seed", str(rng.randrange(2**31))])
    pubs = []
    for p in [*verifiers, contributor]:
        p.home.mkdir(parents=True)
        cli(p.home, "keys", "new")
        pubs.append(json.loads(cli(p.home, "--json", "keys", "show"))["public_key"])
    for p in nodes:
        p.home.mkdir(parents=True)
    flags = [f"--verifier={k}" for k in pubs[: args.verifiers]]
    out = json.loads(cli(contributor.home, "--json", "arena", "init", "tiny", *flags, "--quorum", str(args.quorum),
                         "--set", f"budget_value={args.budget}", "--set", f"seeds={args.seeds}",
                         "--set", "wall_cap_s=120"))
    arena_id = bytes.fromhex(out.get("id") or out["arena"]["id"])
    return nodes, contributor, verifiers, searcher, arena_id


def start_all(nodes: list[Proc], others: list[Proc], rng: random.Random) -> None:
    """Node 0 first; every other process bootstraps to node 0 and one random earlier node."""
    addrs: list[str] = []
    for i, p in enumerate([*nodes, *others]):
        boot = addrs[:1] + ([rng.choice(addrs)] if len(addrs) > 1 else [])
        write_config(p.home, p.port, sorted(set(boot)))
        p.start()
        if i < len(nodes):
            st = wait_for_status(p)
            addrs.append(f"/ip4/127.0.0.1/tcp/{p.port}/p2p/{st['peer_id']}")
    for p in others:
        wait_for_status(p)


def start_propose(contributor: Proc, rng: random.Random, n: int, real: bool) -> subprocess.Popen[bytes]:
    """One hand-made proposal through the contributor's running node.

    Scripted checks: the verdict is written in the script. Real checks: the tiny
    reference script with another learning rate (some help, most do not).
    """
    script = contributor.home / f"candidate{n}.py"
    if real:
        from model.arenas import reference_script

        lr = rng.choice(["2e-3", "4e-3", "5e-3", "6e-3", "8e-3", "1.2e-2"])
        text = reference_script("tiny").decode().replace("LR = 3e-3", f"LR = {lr}", 1)
        message = f"soak {n}: LR {lr}"
        script.write_text(f"# soak candidate {n}\n{text}")
    else:
        verdict = "improves" if rng.random() < 0.7 else rng.choice(["no_gain", "invalid:syntax_error"])
        message = f"soak {n}: {verdict}"
        script.write_text(f"# soak candidate {n}\n# verdict: {verdict}\nLR = {rng.random():.6f}\n")
    return subprocess.Popen([*RATCHET, "--home", str(contributor.home), "propose", str(script), "-m",
                             message, "--wait", "10"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def store_view(home: Path, arena_id: bytes) -> tuple[frozenset[bytes], bytes] | None:
    from chain.consensus import state_for
    from chain.errors import ChainError
    from chain.store import Store

    try:
        with Store.open(home) as s:
            if not s.has(arena_id):
                return None
            return frozenset(s.inventory(arena_id)), state_for(s, arena_id).head
    except ChainError:
        return None


def converged(procs: list[Proc], arena_id: bytes, verbose: bool = False) -> tuple[bool, int]:
    views = [store_view(p.home, arena_id) for p in procs]
    union = frozenset().union(*(v[0] for v in views if v is not None))
    behind = [f"{p.name}-{len(union - v[0]) if v else 'all'}" for p, v in zip(procs, views, strict=True)
              if v is None or v[0] != union]
    heads = {v[1] for v in views if v is not None}
    if verbose:
        print(f"    {len(union)} objects; behind: {' '.join(behind) or 'none'}; {len(heads)} head(s)", flush=True)
    return not behind and len(heads) == 1, len(union)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=20)
    ap.add_argument("--verifiers", type=int, default=3)
    ap.add_argument("--quorum", type=int, default=2)
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of random kills")
    ap.add_argument("--checks", choices=["real", "scripted"], default="real")
    ap.add_argument("--budget", type=int, default=30_000, help="training tokens per run (real checks)")
    ap.add_argument("--seeds", type=int, default=2, help="seeds per check")
    ap.add_argument("--kill-every", type=float, default=10.0, help="mean seconds between kills")
    ap.add_argument("--propose-every", type=float, default=None,
                    help="mean seconds between hand-made proposals (default: 8 scripted, 60 real)")
    ap.add_argument("--sync-interval", type=float, default=3.0)
    ap.add_argument("--drain", type=float, default=240.0, help="max seconds for verifiers to finish after the chaos")
    ap.add_argument("--converge-timeout", type=float, default=300.0)
    ap.add_argument("--dir", type=Path, default=None, help="keep everything here (default: a temp dir, removed)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    if args.propose_every is None:
        args.propose_every = 8.0 if args.checks == "scripted" else 60.0
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    root = args.dir or Path(tempfile.mkdtemp(prefix="ratchet-soak-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"soak: seed {seed}, {args.nodes} nodes, {args.verifiers} verifiers (quorum {args.quorum}), "
          f"{args.checks} checks, {args.duration:.0f}s of kills, in {root}", flush=True)
    t_start = time.monotonic()
    nodes, contributor, verifiers, searcher, arena_id = setup(root, args, rng)
    everyone = [*nodes, *verifiers, contributor, *([searcher] if searcher else [])]
    result: dict[str, Any] = {"seed": seed, "nodes": args.nodes, "verifiers": args.verifiers,
                              "checks": args.checks, "duration_s": args.duration}
    try:
        start_all(nodes, [*verifiers, contributor], rng)
        if searcher is not None:
            searcher.start()
        print(f"  started {len(everyone)} processes, {time.monotonic() - t_start:.0f}s after the start", flush=True)
        chaos(everyone, contributor, args, rng)
        for p in everyone:  # bring back whatever is down
            if not p.alive:
                p.start()
                p.restarts += 1
        if searcher is not None:
            searcher.stop(timeout=5)
        t_drain = time.monotonic()
        first = drain(verifiers, args.drain, [p for p in everyone if p.role != "contribute"], arena_id)
        result["first_convergence_s"] = None if first is None else first - t_drain
        result["drain_s"] = time.monotonic() - t_drain
        print(f"  chaos over, verifiers drained in {result['drain_s']:.0f}s "
              f"({time.monotonic() - t_start:.0f}s after the start)", flush=True)
        # The verifiers stop checking (a check still running may sign as it stops) and come back
        # as plain relays on the same data directories, so whatever they signed last can spread
        # and nothing new appears while convergence is measured.
        for v in verifiers:
            v.stop(timeout=60)
            v.args = ["node", "--sync-interval", str(args.sync_interval)]
            v.start()
        for v in verifiers:
            wait_for_status(v)
        running = [p for p in everyone if p.role != "contribute"]
        t_conv = time.monotonic()
        ok, n_objects, polls = False, 0, 0
        while time.monotonic() - t_conv < args.converge_timeout:
            for p in running:
                p.sample()
            ok, n_objects = converged(running, arena_id, verbose=polls % 5 == 0)
            polls += 1
            if ok:
                break
            time.sleep(1.0)
        result["converged"] = ok
        result["convergence_s"] = time.monotonic() - t_conv
        for p in everyone:
            p.sample()
    finally:
        for p in everyone:
            p.stop()
    t_final = time.monotonic()
    result.update(final_check(everyone, arena_id))
    result["final_check_s"] = time.monotonic() - t_final
    result["objects"] = n_objects
    result["ban_reasons"] = ban_reasons(everyone)
    result["wall_s"] = time.monotonic() - t_start
    print_table(everyone, result)
    if args.json:
        result["processes"] = [{"name": p.name, "role": p.role, "restarts": p.restarts,
                                "peak_rss_mb": p.peak_rss_kb / 1024, **{k: p.total(k) for k in COUNTERS}}
                               for p in everyone]
        args.json.write_text(json.dumps(result, indent=2))
    if args.dir is None and result["converged"] and result["consistent"]:
        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"data kept in {root}")
    return 0 if result["converged"] and result["consistent"] else 1


def chaos(everyone: list[Proc], contributor: Proc, args: argparse.Namespace, rng: random.Random) -> None:
    """Random SIGKILLs and restarts for args.duration seconds; proposals in scripted mode."""
    end = time.monotonic() + args.duration
    next_kill = time.monotonic() + rng.expovariate(1 / args.kill_every)
    next_propose = time.monotonic() + 2.0
    proposals = failed = 0
    proposer: subprocess.Popen[bytes] | None = None
    while time.monotonic() < end:
        now = time.monotonic()
        for p in everyone:
            p.sample()
            if not p.alive and p.down_until and now >= p.down_until:
                p.start()
                p.restarts += 1
                p.down_until = 0.0
        if now >= next_kill:
            victims = [p for p in everyone if p.alive]
            weights = [1.0 if p.role == "node" and p is not contributor else 0.5 for p in victims]
            victim = rng.choices(victims, weights)[0]
            victim.kill()
            victim.down_until = now + rng.uniform(1.0, 6.0)
            print(f"  {now - end + args.duration:6.0f}s kill {victim.name} (restart in "
                  f"{victim.down_until - now:.1f}s)", flush=True)
            next_kill = now + rng.expovariate(1 / args.kill_every)
        if proposer is not None and proposer.poll() is not None:
            failed += proposer.returncode != 0
            proposer = None
        if proposer is None and now >= next_propose and contributor.alive:
            proposer = start_propose(contributor, rng, proposals, args.checks == "real")
            proposals += 1
            next_propose = now + rng.expovariate(1 / args.propose_every)
        time.sleep(0.5)
    if proposer is not None:
        proposer.wait(timeout=60)
    if proposals:
        print(f"  {proposals} hand-made proposals sent ({failed} propose commands failed)", flush=True)


def drain(verifiers: list[Proc], limit: float, running: list[Proc], arena_id: bytes) -> float | None:
    """Until every verifier reports an empty queue and nothing in flight twice in a row (or `limit`).

    Returns when all stores first held the same objects and head after the chaos (None if never).
    """
    deadline = time.monotonic() + limit
    quiet = 0
    first: float | None = None
    while time.monotonic() < deadline and (quiet < 2 or first is None):
        if first is None and converged(running, arena_id)[0]:
            first = time.monotonic()
        busy = False
        for p in verifiers:
            p.sample()
            v = (p.status() or {}).get("verifier") or {}
            busy = busy or bool(v.get("queue")) or bool(v.get("in_flight"))
        quiet = 0 if busy else quiet + 1
        time.sleep(1.0)
    return first


def final_check(everyone: list[Proc], arena_id: bytes) -> dict[str, Any]:
    """With every process stopped: `ratchet status --json`, full re-validation, identical stores."""
    from chain.audit import validate_store
    from chain.consensus import state_for
    from chain.store import Store

    inventories, heads, problems = {}, {}, []
    statuses = {}
    for p in everyone:
        if p.role == "contribute":  # shares the contributor node's data directory
            continue
        try:
            statuses[p.name] = json.loads(cli(p.home, "--json", "status"))
        except (RuntimeError, ValueError) as e:
            problems.append(f"{p.name}: status: {e}")
        with Store.open(p.home) as s:
            try:
                validate_store(s, workers=0)
            except Exception as e:  # noqa: BLE001 - reported, not raised: the soak lists every problem
                problems.append(f"{p.name}: validate_store: {type(e).__name__}: {e}")
            if s.has(arena_id):
                inventories[p.name] = frozenset(s.inventory(arena_id))
                heads[p.name] = state_for(s, arena_id).head
                state = state_for(s, arena_id)
            else:
                problems.append(f"{p.name}: no arena")
    union = frozenset().union(*inventories.values()) if inventories else frozenset()
    for name, inv in inventories.items():
        if inv != union:
            problems.append(f"{name}: {len(union - inv)} of {len(union)} objects missing")
    if len(set(heads.values())) > 1:
        problems.append(f"heads differ: {sorted({h.hex()[:12] for h in heads.values()})}")
    counts = {"accepted": 0, "pending": 0, "rejected": 0, "orphaned": 0}
    if inventories:
        for c in state.commits.values():
            counts[c.status] += 1
    status_heads = {st["arenas"][0]["head"] for st in statuses.values() if st.get("arenas")}
    if len(status_heads) > 1:
        problems.append(f"`ratchet status` heads differ: {sorted(h[:12] for h in status_heads)}")
    return {"consistent": not problems, "problems": problems[:20], "commits": counts,
            "head": next(iter(heads.values())).hex() if heads else None}


def ban_reasons(everyone: list[Proc]) -> dict[str, int]:
    """Why peers were banned, from the processes' logs ("banning peer <id>: <reason>")."""
    out: dict[str, int] = {}
    for home in sorted({p.home for p in everyone}):
        try:
            lines = (home / "soak.log").read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            if "banning peer" in line:
                why = line.split(": ", 2)[-1].strip()[:80] if line.count(": ") >= 2 else line[-80:]
                out[why] = out.get(why, 0) + 1
    return out


def _s(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.1f}s"


def print_table(everyone: list[Proc], r: dict[str, Any]) -> None:
    print(f"\n{'process':<13}{'role':<11}{'restarts':>9}{'peak RSS MB':>12}{'published':>10}{'gossip in':>10}"
          f"{'pulled':>8}{'blobs':>7}{'syncs':>7}{'fails':>7}{'bans':>6}")
    for p in everyone:
        print(f"{p.name:<13}{p.role:<11}{p.restarts:>9}{p.peak_rss_kb / 1024:>12.0f}{p.total('published'):>10}"
              f"{p.total('gossip_stored'):>10}{p.total('pulled'):>8}{p.total('blobs_fetched'):>7}"
              f"{p.total('sync_rounds'):>7}{p.total('sync_failures'):>7}{p.total('bans'):>6}")
    messages = sum(p.total(k) for p in everyone for k in ("published", "gossip_stored", "pulled", "blobs_fetched"))
    rss = sorted(p.peak_rss_kb / 1024 for p in everyone if p.role == "node")
    print(f"\nmessages (published + gossip stored + pulled + blobs): {messages:,}")
    reasons = r.get("ban_reasons", {})
    if reasons:
        print(f"peers banned: {sum(reasons.values())} ("
              + "; ".join(f"{n}x {why}" for why, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:4]) + ")")
    print(f"objects per node at the end: {r.get('objects')}; commits {r.get('commits')}")
    print(f"restarts: {sum(p.restarts for p in everyone)}; convergence after the chaos: "
          f"first {_s(r.get('first_convergence_s'))} after the chaos ended, again {_s(r.get('convergence_s'))} "
          f"after the verifiers' drain (converged: {r.get('converged')}); "
          f"verifier drain {r.get('drain_s', float('nan')):.0f}s")
    if rss:
        print(f"peak RSS per relay node: median {rss[len(rss) // 2]:.0f} MB, max {rss[-1]:.0f} MB")
    print(f"final check (status --json, validate_store, identical stores and heads): "
          f"{'PASS' if r['consistent'] else 'FAIL'}")
    for line in r["problems"]:
        print(f"  {line}")


if __name__ == "__main__":
    sys.exit(main())
