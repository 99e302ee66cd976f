"""How noisy is the compute measurement? Identical scripts paired, idle and under a competing CPU load.

Runs the `tiny` reference script against itself through the real paired
check (verify.check.run_check, the bubblewrap sandbox, concurrent runs of one
thread each, alternating start order), first on the machine as it is, then
with LOAD busy processes competing for the same cores. For every pair it
prints rel = log(parent rate / candidate rate) / log(STEP) (verify.compute:
0 for identical scripts; the class changes once |rel| crosses SLACK) and the
CPU time per run, so the allowance SLACK can be chosen from the spread.
In each phase it also runs two verdicts that must not flip under load: a
parent wasting two forward passes per step against the same script without
the waste (`improves`), and the reference against four optimizer steps per
batch (never `improves`).

    python scripts/bench_compute.py [--tokens 400000] [--pairs 8] [--load 2] [--json]
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import statistics
import time

import click

from chain.keys import SigningKey
from model.arenas import build_arena, reference_script
from verify import compute
from verify.calibrate import with_extra_forwards, with_extra_steps
from verify.check import run_check


def _burn(stop_at: float) -> None:
    x = 0
    while time.time() < stop_at:
        x = (x * 31 + 7) % 1000003


def _arena(tokens: int, seeds: int):  # noqa: ANN202 - an Arena
    key = SigningKey.generate()
    return build_arena("tiny", key, [key.public], 1, overrides={"budget_value": str(tokens), "seeds": str(seeds)})[0]


def verdicts(tokens: int, seed0: int) -> dict[str, str]:
    """The two verdicts that must hold under any load (3 seeds each)."""
    arena, ref = _arena(tokens, 3), reference_script("tiny")
    seeds = [seed0 + 10, seed0 + 11, seed0 + 12]
    waste = run_check(with_extra_forwards(ref, 2), ref, arena, seeds, threads=2)
    bought = run_check(ref, with_extra_steps(ref, 4), arena, seeds, threads=2)
    return {"waste_removed": f"{waste.verdict} (class {waste.position.klass:+d})",
            "4x_steps": f"{bought.verdict} (class {bought.position.klass:+d})"}


def measure(tokens: int, pairs: int, seed0: int) -> list[dict[str, float]]:
    arena = _arena(tokens, pairs)
    ref = reference_script("tiny")
    r = run_check(ref, ref, arena, [seed0 + i for i in range(pairs)], threads=2)
    out = []
    for q in r.pairs:
        rel = compute.relative(q.parent.cpu_ms / 1000, q.parent.tokens, q.candidate.cpu_ms / 1000,
                               q.candidate.tokens)
        out.append({"rel": rel, "parent_cpu_s": q.parent.cpu_ms / 1000, "candidate_cpu_s": q.candidate.cpu_ms / 1000,
                    "same_bpb": float(q.parent.ubpb == q.candidate.ubpb)})
    if len(out) < pairs:
        raise SystemExit(f"the check ended early: {r.verdict} {r.detail[:300]}")
    return out


def summary(rows: list[dict[str, float]]) -> dict[str, float]:
    rels = [r["rel"] for r in rows]
    cpu = [r["parent_cpu_s"] for r in rows] + [r["candidate_cpu_s"] for r in rows]
    flips = sum(1 for x in rels if math.floor(x + compute.SLACK) != 0)
    allowance = compute.noise(statistics.median(r["parent_cpu_s"] for r in rows))
    moved = sum(1 for x in rels if compute.class_for(compute.GENESIS, x, allowance=allowance) != 0)
    return {"pairs": len(rows), "rel_median": statistics.median(rels), "rel_sd": statistics.pstdev(rels),
            "noise": allowance, "class_moves": moved,
            "rel_max_abs": max(abs(x) for x in rels), "ratio_max": compute.STEP ** max(abs(x) for x in rels),
            "cpu_median_s": statistics.median(cpu), "class_flips": flips,
            "bitwise_equal": sum(r["same_bpb"] for r in rows)}


@click.command()
@click.option("--tokens", default=400_000, show_default=True)
@click.option("--pairs", default=8, show_default=True)
@click.option("--load", default=2, show_default=True, help="busy processes in the loaded phase")
@click.option("--json", "as_json", is_flag=True)
def main(tokens: int, pairs: int, load: int, as_json: bool) -> None:
    idle = measure(tokens, pairs, 1000)
    idle_verdicts = verdicts(tokens, 1000)
    procs = []
    stop_at = time.time() + 3600
    for _ in range(load):
        p = mp.Process(target=_burn, args=(stop_at,), daemon=True)
        p.start()
        procs.append(p)
    try:
        loaded = measure(tokens, pairs, 2000)
        loaded_verdicts = verdicts(tokens, 2000)
    finally:
        for p in procs:
            p.terminate()
            p.join(5)
    res = {"tokens": tokens, "step": compute.STEP, "slack": compute.SLACK,
           "idle": summary(idle), "loaded": summary(loaded), "idle_rows": idle, "loaded_rows": loaded,
           "idle_verdicts": idle_verdicts, "loaded_verdicts": loaded_verdicts}
    res["load_cpu_ratio"] = res["loaded"]["cpu_median_s"] / res["idle"]["cpu_median_s"]
    if as_json:
        print(json.dumps(res, indent=1))
        return
    print(f"identical tiny scripts, {tokens:,} tokens, paired concurrently, 1 thread each; "
          f"STEP {compute.STEP}, SLACK {compute.SLACK} (class flips once |rel| crosses it)")
    print(f"{'phase':<8}{'pairs':>6}{'rel median':>12}{'rel sd':>9}{'max |rel|':>11}{'max ratio':>11}"
          f"{'CPU s/run':>11}{'flips':>7}{'noise':>7}{'moves':>7}{'bitwise':>9}")
    for name in ("idle", "loaded"):
        s = res[name]
        print(f"{name:<8}{s['pairs']:>6}{s['rel_median']:>12.3f}{s['rel_sd']:>9.3f}{s['rel_max_abs']:>11.3f}"
              f"{s['ratio_max']:>11.3f}{s['cpu_median_s']:>11.2f}{s['class_flips']:>7}{s['noise']:>7.3f}"
              f"{s['class_moves']:>7}{int(s['bitwise_equal']):>9}")
    print("flips: pairs whose rel alone crosses SLACK; noise: the rule's allowance at the parent's CPU per run "
          "(verify.compute.noise); moves: pairs the rule, allowance included, puts in another class")
    print(f"loaded / idle CPU per run: {res['load_cpu_ratio']:.3f}x (load: {load} busy processes)")
    for name in ("idle", "loaded"):
        v = res[f"{name}_verdicts"]
        print(f"{name:<8} waste removed: {v['waste_removed']}; 4x steps per batch: {v['4x_steps']}")


if __name__ == "__main__":
    main()
