#!/usr/bin/env python3
"""Worker runs per proposal against the number of counted verifiers, under sortition (chain.sortition).

Simulated (real keys, real seed proofs and tickets; no training, no network): for each
set size n, P proposals; every counted key computes its ticket for each proposal from
its own signature over the proposal id. At age 0 the keys under (quorum + 1) / n check;
while fewer keys have checked than the proposal needs to be decided (quorum for a good
one, the rejection threshold r for a bad one; the genesis names 3 founding keys and
the others were admitted, so r = 2 for the 2-of-3 arenas however large n is) the threshold doubles (escalation), and
the newly chosen keys check too. A key that checked once never checks again. Reported
per n: mean and p95 worker runs per proposal, how many proposals escalated, and the
baseline of every counted key checking (n runs: what the chain did before sortition).

    python scripts/bench_sortition.py                 # n = 3, 10, 30; 2,000 proposals each
    python scripts/bench_sortition.py --sizes 3 10 30 100 --proposals 500 --json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chain.keys import SigningKey  # noqa: E402
from chain.seeds import seed_proof  # noqa: E402
from chain.sortition import SPARE, counted_threshold, ticket  # noqa: E402
from chain.verifiers import Roster  # noqa: E402


def runs_for(tickets: list[int], quorum: int, needed: int) -> tuple[int, int]:
    """(worker runs, escalations) for one proposal whose keys hold `tickets`."""
    n = len(tickets)
    for doublings in range(65):
        threshold = counted_threshold(quorum, n, age_s=doublings, escalate_after_s=1.0)
        chosen = sum(1 for t in tickets if t < threshold)
        if chosen >= min(needed, n):
            return chosen, doublings
    return n, 64


def bench(n: int, proposals: int, quorum: int, bad_every: int, founders: int) -> dict[str, float]:
    keys = [SigningKey.from_seed(hashlib.sha256(b"bench-sortition-%d" % i).digest()) for i in range(n)]
    # The genesis names `founders` keys; the rest were admitted (the rejection threshold stays constant).
    reject_at = Roster.genesis([k.public for k in keys[:founders]], quorum).rejection_threshold(n)
    runs, escalated = [], 0
    for i in range(proposals):
        pid = hashlib.sha256(b"proposal-%d" % i).digest()
        tickets = [ticket(seed_proof(k, pid)) for k in keys]
        needed = reject_at if i % bad_every == 0 else quorum
        r, doublings = runs_for(tickets, quorum, needed)
        runs.append(r)
        escalated += doublings > 0
    runs.sort()
    return {"n": n, "quorum": quorum, "r": reject_at, "expected": min(n, quorum + SPARE),
            "mean_runs": statistics.fmean(runs), "p95_runs": runs[int(0.95 * (len(runs) - 1))],
            "max_runs": runs[-1], "escalated_pct": 100 * escalated / proposals, "baseline_runs": n}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[3, 10, 30])
    ap.add_argument("--proposals", type=int, default=2000)
    ap.add_argument("--quorum", type=int, default=2)
    ap.add_argument("--bad-every", type=int, default=4, help="one proposal in this many is bad (needs r)")
    ap.add_argument("--founders", type=int, default=3, help="keys named by the genesis; the rest admitted")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = [bench(n, args.proposals, args.quorum, args.bad_every, min(n, args.founders)) for n in args.sizes]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"sortition: worker runs per proposal, quorum {args.quorum}, {args.proposals} proposals per size, "
          f"1 in {args.bad_every} bad")
    print(f"{'counted n':>10} {'r':>3} {'expected':>9} {'mean':>6} {'p95':>4} {'max':>4} {'escalated':>10} "
          f"{'every key (before)':>19}")
    for r in rows:
        print(f"{r['n']:>10} {r['r']:>3} {r['expected']:>9} {r['mean_runs']:>6.2f} {r['p95_runs']:>4} "
              f"{r['max_runs']:>4} {r['escalated_pct']:>9.1f}% {r['baseline_runs']:>19}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
