"""Benchmark the contributor's built-in search against plain random search on the `tiny` arena.

Both arms run at the same time (one thread each, so the two share the
machine's load alike) for the same wall-clock budget, each in its own process
with its own store, on the same arena (reduced token budget, a verifier set
of one key, quorum 1). Each arm is the real contributor loop (screen on the
head's seeds, confirm on fresh ones, propose only what wins); every proposal
is verified at once by the real verifier (`verify.attest.verify_proposal`:
the verifier's own seeds, the sandbox, the verdict rule) and its attestation
stored, so an `improves` verdict makes it the new head the loop builds on.

Reported per arm: experiments, proposals, accepted commits, the verified
improvement (the head's cumulative gain over the reference, in bpb), the share
of the reference's gap to the floor that it closes, and the ratio of the
search's verified gain to random search's. Repeats use other search seeds;
medians are reported.

    python scripts/bench_research.py --minutes 12 --repeats 1
    python scripts/bench_research.py --quick        # 2 minutes, a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ARMS = ("search", "random")


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
    from node.roles.propose import publish_to_store
    from verify.attest import verify_proposal

    author, verifier = SigningKey.load(author_pem), SigningKey.load(verifier_pem)
    store = Store.open(home)
    (arena,) = store.arenas()
    verdicts: list[str] = []
    refs: list[tuple[int, int]] = []  # (reference val, floor) per seed, from checks against it
    cache: dict[Any, Any] = {}
    verify_s = [0.0]

    def publish(proposal: Any, blob: Any) -> None:
        publish_to_store(store, proposal, blob)
        t0 = time.monotonic()
        att = verify_proposal(verifier, store, proposal, threads=1, unsafe_no_sandbox=unsafe,
                              parent_cache=cache)
        verify_s[0] += time.monotonic() - t0
        store.add(att)
        verdicts.append(att.verdict)
        if proposal.parent == arena.id and att.floor_ubpb:
            refs.extend(zip(att.parent_ubpb, att.floor_ubpb, strict=True))
        print(f"  [{arm}] proposal {proposal.hex[:12]} verified: {att.verdict}", file=sys.stderr, flush=True)

    gate = Gate(pause_file=home / "pause")
    timer = threading.Timer(minutes * 60, gate.stop.set)
    timer.daemon = True
    proposer = BanditSearch(seed=seed) if arm == "search" else RandomSearch(seed=seed)
    started = time.monotonic()
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
    state = state_for(store, arena.id)
    head = state.commits.get(state.head)
    accepted = sum(1 for c in state.commits.values() if c.status == ACCEPTED)
    store.close()
    return {"arm": arm, "seed": seed, "experiments": experiments, "journal": len(entries),
            "proposals": len(state.commits), "accepted": accepted, "verdicts": verdicts,
            "gain_ubpb": head.cumulative_ubpb if head is not None else 0,
            "height": head.height if head is not None else 0, "wall_s": wall, "verify_s": verify_s[0],
            "refs": refs}


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
            print(f"repeat {rep + 1}/{args.repeats}: both arms running for {args.minutes:g} min", flush=True)
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
                      f"{res['accepted']} accepted, verified gain {res['gain_ubpb'] / 1e6:+.4f} bpb", flush=True)
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
    def med(arm: str, field: str) -> float:
        return statistics.median(r[field] for r in results if r["arm"] == arm)

    def share(r: dict[str, Any]) -> float:
        gap = r["ref_ubpb"] - r["floor_ubpb"]
        return r["gain_ubpb"] / gap if gap > 0 else 0.0

    print()
    print(f"tiny arena, {args.budget:,} tokens per run, {args.minutes:g} min per arm (both at once, "
          f"1 thread each), {args.repeats} repeat(s); medians")
    ref = statistics.median(r["ref_ubpb"] for r in results) / 1e6
    floor = statistics.median(r["floor_ubpb"] for r in results) / 1e6
    print(f"reference val_bpb {ref:.4f}, floor {floor:.4f}, gap {ref - floor:.4f} bpb")
    header = ("arm", "experiments", "proposals", "accepted", "verified gain (bpb)", "gap closed",
              "verify time (s)")
    rows = []
    for arm in ARMS:
        shares = statistics.median(share(r) for r in results if r["arm"] == arm)
        rows.append((arm, f"{med(arm, 'experiments'):g}", f"{med(arm, 'proposals'):g}",
                     f"{med(arm, 'accepted'):g}", f"{med(arm, 'gain_ubpb') / 1e6:+.4f}",
                     f"{shares:.1%}", f"{med(arm, 'verify_s'):.0f}"))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))
    search, rnd = med("search", "gain_ubpb"), med("random", "gain_ubpb")
    ratio = f"{search / rnd:.2f}x" if rnd > 0 else ("n/a (random gained nothing)" if search > 0 else "n/a")
    print(f"built-in search vs random search, verified gain: {ratio}")
    if args.json:
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
