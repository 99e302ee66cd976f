"""Benchmark the tiny arena: the harness's cost and where the reference script lands against the floor.

For each repeat, the reference tiny script trains once under the harness
(worker process, pipe feed, evaluation probes) and once in a bare loop in
this process (the same train(), fed from an in-process feed with the same
data), interleaved so that load on the machine hits both alike. Reports the
median training tokens/s of each and their ratio, the harness's fixed cost
(wall minus training time: worker start, data draw, evaluation), and, unless
--quick, one run at the arena's full budget: val_bpb against the floor.

    python scripts/bench_arena.py --quick
    python scripts/bench_arena.py --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace

from chain.keys import SigningKey
from model.arenas import build_arena, harness_config, reference_script
from model.harness import DirectLauncher, HarnessConfig, run_script
from model.harness.bare import BareFeed, bare_train


def bare_run(source: bytes, config: HarnessConfig, seed: int, threads: int) -> float:
    """Training tokens/s of the script's train() in this process."""
    feed = BareFeed.for_config(config, seed)
    elapsed = bare_train(source, feed, threads)[1]
    return feed.tokens_seen / elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short budget, 2 repeats, no full-budget run")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--budget", type=int, default=None, help="training tokens per paired repeat")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    repeats = args.repeats or (2 if args.quick else 3)
    budget = args.budget or (100_000 if args.quick else 1_000_000)

    key = SigningKey.from_seed(b"\x01" * 32)
    arena, _ = build_arena("tiny", key, [key.public], 1, created_at_ms=0)
    full = harness_config(arena)
    config = replace(full, budget_value=budget)
    source = reference_script("tiny")
    bare_run(source, replace(config, budget_value=8 * 2048), args.seed, args.threads)  # one-time torch warm-up
    harness_tps: list[float] = []
    bare_tps: list[float] = []
    fixed: list[float] = []
    startup: list[float] = []
    evals: list[float] = []
    for i in range(repeats):
        r = run_script(source, config, args.seed, launcher=DirectLauncher(), threads=args.threads)
        if not r.ok:
            print(f"harness run failed: {r.reason}\n{r.detail}", file=sys.stderr)
            return 1
        harness_tps.append(r.tokens_per_s)
        fixed.append(r.wall_s - r.train_s)
        startup.append(r.startup_s)
        evals.append(r.eval_s)
        bare_tps.append(bare_run(source, config, args.seed, args.threads))
        print(f"repeat {i + 1}/{repeats}: harness {harness_tps[-1]:,.0f} tok/s, bare {bare_tps[-1]:,.0f} tok/s, "
              f"fixed cost {fixed[-1]:.2f} s", file=sys.stderr, flush=True)
    h, b = statistics.median(harness_tps), statistics.median(bare_tps)
    rows = [
        ("budget per repeat (tokens)", f"{budget:,}"),
        ("threads", str(args.threads)),
        ("repeats", str(repeats)),
        ("harness tokens/s (median)", f"{h:,.0f}"),
        ("bare loop tokens/s (median)", f"{b:,.0f}"),
        ("harness / bare", f"{h / b:.3f}"),
        ("fixed cost per run, s (median)", f"{statistics.median(fixed):.2f}"),
        ("  of which startup, s (median)", f"{statistics.median(startup):.2f}"),
        ("  of which evaluation, s (median)", f"{statistics.median(evals):.2f}"),
    ]
    if not args.quick:
        r = run_script(source, full, args.seed, launcher=DirectLauncher(), threads=args.threads)
        if not r.ok:
            print(f"full-budget run failed: {r.reason}\n{r.detail}", file=sys.stderr)
            return 1
        assert r.val_bpb is not None and r.floor_bpb is not None
        rows += [
            ("full budget (tokens)", f"{full.budget_value:,}"),
            ("full: val_bpb", f"{r.val_bpb:.4f}"),
            ("full: floor_bpb", f"{r.floor_bpb:.4f}"),
            ("full: excess", f"{r.val_bpb - r.floor_bpb:.4f}"),
            ("full: train s / wall s", f"{r.train_s:.1f} / {r.wall_s:.1f}"),
            ("full: startup s / eval s", f"{r.startup_s:.1f} / {r.eval_s:.1f}"),
            ("full: tokens/s", f"{r.tokens_per_s:,.0f}"),
        ]
    width = max(len(k) for k, _ in rows)
    print(f"{'metric':<{width}}  value")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
