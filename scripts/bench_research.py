"""Benchmark the contributor's built-in proposers against plain random search on the `tiny` arena.

Three arms: `tpe` (the default, node/research/tpe.py: Optuna TPE over knob
moves with a sequential early stop), `search` (the older journal-guided
bandit) and `random`. All arms run at the same time (one thread each, so they
share the machine's load alike) for the same wall-clock budget, each in its own process
with its own store, on the same arena (reduced token budget, a verifier set
of one key, quorum 1). Each arm is the real contributor loop (screen on the
head's seeds, confirm on fresh ones, propose only what wins); every proposal
is verified at once by the real verifier (`verify.attest.verify_proposal`:
the verifier's own seeds, the sandbox, the verdict rule) and its attestation
stored, so an `improves` verdict makes it the new head the loop builds on.

Reported per arm: experiments, proposals, accepted commits, the verified
improvement (the head's cumulative gain over the reference, in bpb), the
contributor's CPU time (the arm's process and every run it started, minus the
verifier's checks), the verified gain per CPU-hour and its ratio to random
search's, and the share of the reference's gap to the floor that it closes.
Repeats use fresh worlds and other search seeds; medians are reported with
the lowest and highest value beside them. `--journal-out FILE` writes what the
`tpe` arm tried in the first repeat, and why each experiment ended.

    python scripts/bench_research.py --minutes 20 --repeats 3 --budget 250000 --journal-out journal.md
    python scripts/bench_research.py --quick        # 2 minutes, a smoke test
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
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ARMS = ("tpe", "search", "random")


def make_world(root: Path, budget: int) -> dict[str, str]:
    """Keys and the arena (stored in each arm's home); returns paths for the arms."""
    from chain.keys import SigningKey
    from chain.store import Store
    from model.arenas import build_arena

    creator, author, verifier = (SigningKey.generate() for _ in range(3))
    arena, blob = build_arena("tiny", creator, [verifier.public], 1,
                              overrides={"budget_value": str(budget)})
    for arm in ARMS:
        with Store.open(root / arm) as store:
            store.add(blob)
            store.add(arena)
    author.save(root / "author.pem")
    verifier.save(root / "verifier.pem")
    return {"author": str(root / "author.pem"), "verifier": str(root / "verifier.pem"),
            "arena": arena.hex}


def run_arm(home: Path, arm: str, author_pem: Path, verifier_pem: Path, minutes: float,
            seed: int, unsafe: bool) -> dict[str, Any]:
    """One arm, in this process: the contributor loop with verification on publish."""
    from chain.consensus import ACCEPTED, state_for
    from chain.keys import SigningKey
    from chain.store import Store
    from node.research.journal import Journal
    from node.research.limits import Gate
    from node.research.loop import ContributorLoop, LoopConfig
    from node.research.search import BanditSearch, RandomSearch
    from node.research.tpe import TpeSearch
    from node.roles.propose import publish_to_store
    from verify.attest import verify_proposal

    author, verifier = SigningKey.load(author_pem), SigningKey.load(verifier_pem)
    store = Store.open(home)
    (arena,) = store.arenas()
    verdicts: list[str] = []
    refs: list[tuple[int, int]] = []  # (reference val, floor) per seed, from checks against it
    cache: dict[Any, Any] = {}
    verify_s, verify_cpu = [0.0], [0.0]
    meter = CpuMeter()

    def publish(proposal: Any, blob: Any) -> None:
        publish_to_store(store, proposal, blob)
        t0, c0 = time.monotonic(), meter.read()
        att = verify_proposal(verifier, store, proposal, threads=1, unsafe_no_sandbox=unsafe,
                              parent_cache=cache)
        verify_s[0] += time.monotonic() - t0
        verify_cpu[0] += meter.read() - c0
        store.add(att)
        verdicts.append(att.verdict)
        if proposal.parent == arena.id and att.floor_ubpb:
            refs.extend(zip(att.parent_ubpb, att.floor_ubpb, strict=True))
        print(f"  [{arm}] proposal {proposal.hex[:12]} verified: {att.verdict}", file=sys.stderr, flush=True)

    gate = Gate(pause_file=home / "pause")
    timer = threading.Timer(minutes * 60, gate.stop.set)
    timer.daemon = True
    if arm == "tpe":
        proposer: Any = TpeSearch(home=home, arena=arena.id, seed=seed, seeds_per_stage=arena.seeds)
    else:
        proposer = BanditSearch(seed=seed) if arm == "search" else RandomSearch(seed=seed)
    started, cpu0 = time.monotonic(), meter.read()
    with Journal.open(home) as journal:
        loop = ContributorLoop(store, arena, author, journal, proposer,
                               LoopConfig(threads=1, max_pending=1, claims=False, unsafe_no_sandbox=unsafe),
                               publisher=publish, gate=gate,
                               on_event=lambda kind, text: print(f"  [{arm}] {text}", file=sys.stderr, flush=True)
                               if kind in ("experiment", "result", "proposed", "head") else None)
        timer.start()
        experiments = loop.run()
        timer.cancel()
        entries = journal.entries(arena.id)
    wall = time.monotonic() - started
    research_cpu = meter.read() - cpu0 - verify_cpu[0]
    meter.stop.set()
    state = state_for(store, arena.id)
    head = state.commits.get(state.head)
    accepted = sum(1 for c in state.commits.values() if c.status == ACCEPTED)
    store.close()
    return {"arm": arm, "seed": seed, "experiments": experiments, "journal_entries": len(entries),
            "proposals": len(state.commits), "accepted": accepted, "verdicts": verdicts,
            "gain_ubpb": head.cumulative_ubpb if head is not None else 0,
            "height": head.height if head is not None else 0, "wall_s": wall, "verify_s": verify_s[0],
            "cpu_s": research_cpu, "verify_cpu_s": verify_cpu[0], "refs": refs,
            "journal": [journal_line(e) for e in entries]}


class CpuMeter:
    """CPU seconds of this process and of every process it started, sampled from /proc.

    getrusage's children counts lose the sandboxed runs (the harness kills a
    worker's bwrap once it has answered, so bwrap never reaps its child): each
    direct child's whole tree (model.harness.cpuclock) is sampled every
    `every` seconds and its largest reading kept, so at most the last
    interval of each run goes uncounted.
    """

    def __init__(self, every: float = 0.25) -> None:
        self.every = every
        self.seen: dict[tuple[int, str], float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop.wait(self.every):
            self.sample()

    def sample(self) -> None:
        from model.harness.cpuclock import children, tree_cpu_s

        for pid in children(os.getpid()):
            try:
                born = (Path("/proc") / str(pid) / "stat").read_bytes().rsplit(b")", 1)[1].split()[19].decode()
            except (OSError, IndexError):
                continue
            key = (pid, born)
            self.seen[key] = max(self.seen.get(key, 0.0), tree_cpu_s(pid))

    def read(self) -> float:
        self.sample()
        me = resource.getrusage(resource.RUSAGE_SELF)
        return me.ru_utime + me.ru_stime + sum(self.seen.values())


def journal_line(e: Any) -> dict[str, Any]:
    return {"seq": e.seq, "summary": e.summary, "decision": e.decision, "reason": e.reason,
            "stages": [{"name": s.name, "gains": [p - c for p, c in zip(s.parent_ubpb, s.candidate_ubpb,
                                                                         strict=False)]} for s in e.stages],
            "wall_ms": e.wall_ms}


def reference_gap(arena_home: Path, seeds: int, unsafe: bool) -> tuple[int, int]:
    """Mean reference val_bpb and floor over `seeds` fresh seeds (when no check measured them)."""
    from chain.store import Store
    from node.research.localcheck import LocalChecker, new_seeds

    with Store.open(arena_home) as store:
        (arena,) = store.arenas()
        script = store.blob_data(arena.script)
    checker = LocalChecker(arena, threads=2, unsafe_no_sandbox=unsafe)
    vals, floors = [], []
    for seed in new_seeds(seeds):
        m = checker.run(script, seed)
        if m.ok and m.ubpb is not None and m.floor_ubpb is not None:
            vals.append(m.ubpb)
            floors.append(m.floor_ubpb)
    if not vals:
        raise SystemExit("the reference script failed under the harness; nothing to compare")
    return int(statistics.mean(vals)), int(statistics.mean(floors))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=12.0, help="wall-clock budget per arm (both at once)")
    ap.add_argument("--budget", type=int, default=60_000, help="training tokens per run (the demo's)")
    ap.add_argument("--repeats", type=int, default=1, help="pairs of arms, run one pair after another")
    ap.add_argument("--quick", action="store_true", help="2 minutes, one repeat: a smoke test")
    ap.add_argument("--unsafe-no-sandbox", action="store_true")
    ap.add_argument("--json", action="store_true", help="print the results as JSON too")
    ap.add_argument("--journal-out", type=Path, help="write the tpe arm's journal of the first repeat here")
    ap.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)  # internal: run one arm
    ap.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--keys", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.arm:
        out = run_arm(args.home, args.arm, args.keys / "author.pem", args.keys / "verifier.pem",
                      args.minutes, args.seed, args.unsafe_no_sandbox)
        print("RESULT " + json.dumps(out), flush=True)
        return
    if args.quick:
        args.minutes, args.repeats = 2.0, 1
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-research-") as tmp:
        for rep in range(args.repeats):
            root = Path(tmp) / f"rep{rep}"
            make_world(root, args.budget)
            procs = {}
            for arm in ARMS:
                argv = [sys.executable, __file__, "--arm", arm, "--home", str(root / arm),
                        "--keys", str(root), "--minutes", str(args.minutes), "--seed", str(1000 + rep)]
                argv += ["--unsafe-no-sandbox"] if args.unsafe_no_sandbox else []
                procs[arm] = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                                              env={**os.environ, "PYTHONPATH": str(ROOT)})
            print(f"repeat {rep + 1}/{args.repeats}: {len(ARMS)} arms running for {args.minutes:g} min", flush=True)
            timeout = args.minutes * 60 + 900  # the run in flight at the deadline, then its verification
            for arm, proc in procs.items():
                try:
                    text, _ = proc.communicate(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    text, _ = proc.communicate()
                lines = [ln for ln in text.splitlines() if ln.startswith("RESULT ")]
                if proc.returncode != 0 or not lines:
                    raise SystemExit(f"arm {arm} failed (status {proc.returncode}):\n{text[-3000:]}")
                res = json.loads(lines[-1][7:])
                res["repeat"] = rep
                results.append(res)
                print(f"  {arm}: {res['experiments']} experiments, {res['proposals']} proposals, "
                      f"{res['accepted']} accepted, verified gain {res['gain_ubpb'] / 1e6:+.4f} bpb, "
                      f"research CPU {res['cpu_s'] / 60:.1f} min", flush=True)
            refs = [r for res in results if res["repeat"] == rep for r in res["refs"]]
            if refs:
                ref_val, floor = (int(statistics.mean(x)) for x in zip(*refs, strict=True))
            else:
                ref_val, floor = reference_gap(root / "search", 3, args.unsafe_no_sandbox)
            for res in results:
                if res["repeat"] == rep:
                    res["ref_ubpb"], res["floor_ubpb"] = ref_val, floor
    report(results, args)


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    def of(arm: str, fn: Any) -> list[float]:
        return [fn(r) for r in results if r["arm"] == arm]

    def share(r: dict[str, Any]) -> float:
        gap = r["ref_ubpb"] - r["floor_ubpb"]
        return r["gain_ubpb"] / gap if gap > 0 else 0.0

    def per_cpu_h(r: dict[str, Any]) -> float:
        return r["gain_ubpb"] / 1e6 / max(r["cpu_s"] / 3600, 1e-9)

    def spread(values: list[float], fmt: str) -> str:
        mid = format(statistics.median(values), fmt)
        return mid if len(values) < 2 else f"{mid} ({format(min(values), fmt)} .. {format(max(values), fmt)})"

    print()
    print(f"tiny arena, {args.budget:,} tokens per run, {args.minutes:g} min per arm ({len(ARMS)} arms at once, "
          f"1 thread each), {args.repeats} repeat(s); medians (lowest .. highest)")
    ref = statistics.median(r["ref_ubpb"] for r in results) / 1e6
    floor = statistics.median(r["floor_ubpb"] for r in results) / 1e6
    print(f"reference val_bpb {ref:.4f}, floor {floor:.4f}, gap {ref - floor:.4f} bpb")
    header = ("arm", "experiments", "proposals", "accepted", "verified gain (bpb)", "research CPU (h)",
              "gain per CPU-hour (bpb)", "gap closed", "verify time (s)")
    rows = []
    for arm in ARMS:
        rows.append((arm, spread(of(arm, lambda r: r["experiments"]), "g"),
                     spread(of(arm, lambda r: r["proposals"]), "g"), spread(of(arm, lambda r: r["accepted"]), "g"),
                     spread(of(arm, lambda r: r["gain_ubpb"] / 1e6), "+.4f"),
                     spread(of(arm, lambda r: r["cpu_s"] / 3600), ".3f"),
                     spread(of(arm, per_cpu_h), "+.3f"), spread(of(arm, share), ".1%"),
                     f"{statistics.median(of(arm, lambda r: r['verify_s'])):.0f}"))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))
    base = statistics.median(of("random", per_cpu_h))
    for arm in ARMS:
        if arm == "random":
            continue
        mine = statistics.median(of(arm, per_cpu_h))
        ratio = f"{mine / base:.2f}x" if base > 0 else ("n/a (random gained nothing)" if mine > 0 else "n/a")
        per_rep = []
        for rep in range(args.repeats):
            a = [per_cpu_h(r) for r in results if r["arm"] == arm and r["repeat"] == rep]
            b = [per_cpu_h(r) for r in results if r["arm"] == "random" and r["repeat"] == rep]
            if a and b and b[0] > 0:
                per_rep.append(f"{a[0] / b[0]:.2f}x")
        print(f"{arm} vs random, verified gain per CPU-hour: {ratio} (median of each arm; per repeat: "
              f"{', '.join(per_rep) or 'n/a'})")
    def pooled(arm: str) -> tuple[float, float]:
        """(verified bpb, research CPU-hours) summed over the repeats."""
        return sum(of(arm, lambda r: r["gain_ubpb"])) / 1e6, sum(of(arm, lambda r: r["cpu_s"])) / 3600

    rnd_gain, rnd_hours = pooled("random")
    rnd = rnd_gain / max(rnd_hours, 1e-9)
    for arm in ARMS:  # with 0-2 commits a repeat the medians are coarse; all repeats together as well
        gain, hours = pooled(arm)
        mine = gain / max(hours, 1e-9)
        vs = "" if arm == "random" else (f", {mine / rnd:.2f}x random's" if rnd > 0 else ", random gained nothing")
        print(f"{arm}, all repeats pooled: {gain:+.4f} bpb in {hours:.3f} CPU-hours = {mine:+.3f} bpb per "
              f"CPU-hour{vs}")
    if args.journal_out:
        first = next((r for r in results if r["arm"] == "tpe" and r["repeat"] == 0), None)
        if first is not None:
            args.journal_out.write_text(journal_markdown(first))
            print(f"journal of the tpe arm (repeat 1) written to {args.journal_out}")
    if args.json:
        print(json.dumps(results, indent=1))


def journal_markdown(r: dict[str, Any]) -> str:
    lines = [f"# tpe arm, repeat 1: {r['experiments']} experiments, {r['accepted']} accepted, verified gain "
             f"{r['gain_ubpb'] / 1e6:+.4f} bpb", "",
             "| # | change | stages: per-seed paired gains (ubpb) | outcome |", "|---|---|---|---|"]
    for e in r["journal"]:
        stages = "; ".join(f"{s['name']} {s['gains']}" for s in e["stages"]) or "-"
        outcome = f"{e['decision']}: {e['reason']}" if e["decision"] else "unfinished at the deadline"
        lines.append(f"| {e['seq']} | {e['summary']} | {stages} | {outcome} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
