"""Benchmark the verifier: its overhead, its false-accept rate, seed grinding, and the hostile suite.

1. Overhead. Per repeat, the reference tiny script trained bare (in this
   process, an in-process feed, no sandbox, no scorer) and a full
   verification of it (run_check: sandbox, worker, feed, evaluation probes,
   scorer; parent and candidate on one seed). Reported: median wall time of
   the check, the training time it contains, their difference as a share of
   the check ("overhead", target <= 5%), the share in which neither run of
   the side-by-side pair trains (the pair waits for the longer one), the
   start and evaluation seconds per run, and harness training time against
   bare training time.
2. False accepts. V neutral perturbations (verify.calibrate) checked against
   the reference on S shared seeds with the arena's margin: the share judged
   `improves`, and the spread of their paired gains (`--workers N`: N checks
   at once once the parent's runs are cached). On a `compute` arena the
   class comes from the first `--class-seeds` seeds (default 1), run paired
   afresh; the rest reuse the parent's cached score (the training is the
   same bitwise). One seed classes more noisily than a verifier's median of
   all (`--class-seeds 0`, twice the CPU), so class flips are overcounted.
3. Seed grinding. The author picks the variant with the best mean gain on
   those seeds (seeds it chose); a verifier checks it on its own seeds.
4. Hostile suite. Each script of tests/verify/hostile under the sandbox, one
   seed: detected = not `improves`, and the verdict expected for it.
5. Compute fairness (the `compute` budget, verify.compute). Candidates that
   spend 1.5x, 2x and 4x the reference's compute on the same tokens, and one
   twice as wide, each checked against the reference on fresh seeds (target:
   never `improves`); a parent that wastes two forward passes per step
   against the same script without the waste (target: `improves` in >= 90%
   of checks). Sections 1-3 run on the arena's own budget kind, so on `tiny`
   they measure the compute rule too (overhead includes the concurrent pair;
   neutral false accepts include class flips from timing noise).

    python scripts/bench_verify.py --quick
    python scripts/bench_verify.py --budget 500000 --variants 20
    python scripts/bench_verify.py --skip overhead,neutral,hostile --waste-checks 10   # compute only
    python scripts/bench_verify.py --skip overhead,neutral,hostile --bought none --waste-checks 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from chain.keys import SigningKey
from chain.seeds import derive_seeds
from model.arenas import build_arena, harness_config, reference_script
from model.harness.bare import BareFeed, bare_train
from verify.calibrate import bought_compute, neutral_variants, with_extra_forwards
from verify.check import run_check
from verify.sandbox import BubblewrapLauncher, Limits

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ROOT / "tests" / "verify" / "hostile"
HOSTILE_EXPECTED = {
    "syntax_error.txt": "invalid:syntax_error", "peeks_future.py": "cheat:peeks_future",
    "mixes_rows.py": "cheat:batch_mixing", "stateful_eval.py": "cheat:stateful_eval",
    "nan_divergence.py": "invalid:nonfinite_logits", "memory_hog.py": "invalid:out_of_memory",
    "read_validation.py": "invalid:script_error", "huge_file.py": "invalid:script_error",
    "read_node_home.py": "invalid:script_error", "network.py": "invalid:script_error",
    "fork_bomb.py": "invalid:script_error", "past_cap.py": "invalid:timeout",
    "sleep_forever.py": "invalid:timeout", "fake_metric.py": "no_gain",
    "monkeypatch_harness.py": "no_gain", "carried_data.py": "invalid:diverged",
    "rebuild_generator.py": "invalid:diverged",
}
SMALL_EVAL = {"train_bytes": "131072", "words": "128", "topics": "3", "eval_seq_len": "64",
              "eval_batch": "16", "eval_rows": "80", "probe_cuts": "1"}


def bare_train_s(script: bytes, config, seed: int, threads: int) -> float:
    return bare_train(script, BareFeed.for_config(config, seed), threads)[1]


def table(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    print(f"\n{title}")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")


def overhead(ref: bytes, arena, launcher, repeats: int, threads: int) -> list[tuple[str, str]]:
    config = harness_config(arena)
    bare_train_s(ref, config, 1, threads)  # warm torch up once
    walls, trains, paths, starts, evals, bares = [], [], [], [], [], []
    noop = ref + b"\n# bench\n"
    concurrent = arena.budget_kind == "compute"  # the pair trains side by side: one run's training is the floor
    runs = 1 if concurrent else 2  # runs on the check's critical path
    for i in range(repeats):
        bares.append(bare_train_s(ref, config, 100 + i, threads))
        r = run_check(ref, noop, arena, [100 + i], threads=2 * threads if concurrent else threads, launcher=launcher)
        walls.append(r.wall_ms / 1000)
        trains.append(r.train_s / 2 if concurrent else r.train_s)
        paths.append(r.train_path_s)
        starts.append(r.startup_s / 2)
        evals.append(r.eval_s / 2)
        print(f"  repeat {i + 1}/{repeats}: check {walls[-1]:.1f} s containing {trains[-1]:.1f} s of training "
              f"(2 runs; {paths[-1]:.1f} s with one training), start {starts[-1]:.1f} s, evaluation "
              f"{evals[-1]:.1f} s; bare training {bares[-1]:.1f} s", flush=True)
    w, t, b = statistics.median(walls), statistics.median(trains), statistics.median(bares)
    tp = statistics.median(paths)
    return [("check wall time (median)", f"{w:.1f} s"),
            ("training inside it", f"{t:.1f} s ({'2 runs side by side, mean' if concurrent else '2 runs'})"),
            ("overhead share of the check", f"{(w - t) / w:.1%}"),
            ("overhead / training", f"{(w - t) / t:.1%}"),
            ("time any run trains (longer of the pair)", f"{tp:.1f} s"),
            ("share with no run training", f"{(w - tp) / w:.1%}"),
            ("of it: start to script imported", f"{statistics.median(starts):.1f} s (per run, mean)"),
            ("of it: evaluation and probes", f"{statistics.median(evals):.1f} s (per run, mean)"),
            ("bare training, one run (median)", f"{b:.1f} s"),
            ("harness training per run / bare", f"{t / runs / b:.3f}")]


def compute_fairness(ref: bytes, arena, launcher, seeds: int, waste_checks: int, threads: int,
                     only: list[str] | None = None) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    bought = dict(bought_compute(ref))
    for name in list(bought) if only is None else only:
        script = bought[name]
        s = derive_seeds(f"bench-compute-{name}".encode(), seeds)
        r = run_check(ref, script, arena, s, threads=2 * threads, launcher=launcher)
        ratio = r.compute_ratio
        gain = f"{r.decision.mean_gain:+.0f} ubpb" if r.decision else "-"
        print(f"  {name:<12} {r.verdict:<22} class {r.position.klass:+d}  CPU ratio "
              f"{ratio if ratio is None else round(ratio, 3)}  gain {gain}", flush=True)
        rows.append((f"{name} candidate", f"{r.verdict} (class {r.position.klass:+d}, gain {gain}, "
                                          f"CPU candidate/parent {ratio:.2f})" if ratio else r.verdict))
    wasteful = with_extra_forwards(ref, 2)
    wins = 0
    classes = []
    for i in range(waste_checks):
        s = derive_seeds(f"bench-waste-{i}".encode(), seeds)
        r = run_check(wasteful, ref, arena, s, threads=2 * threads, launcher=launcher)
        wins += r.verdict == "improves"
        classes.append(r.position.klass)
        gain = f"{r.decision.mean_gain:+.0f}" if r.decision else "-"
        ratio = r.compute_ratio
        print(f"  waste removed, check {i + 1}/{waste_checks}: {r.verdict} class {r.position.klass:+d} "
              f"gain {gain} ubpb, CPU candidate/parent {ratio if ratio is None else round(ratio, 3)}", flush=True)
    rows.append(("waste removed (parent: 2 extra forwards/step)",
                 f"improves in {wins}/{waste_checks} ({wins / max(waste_checks, 1):.0%}); classes {classes}"))
    return rows


def false_accepts(ref: bytes, arena, launcher, variants: int, seeds: list[int], threads: int, workers: int = 1,
                  class_seeds: int | None = 1):
    """Each neutral variant checked against the reference on the same seeds (the parent's runs cached).

    The first check runs alone and fills the cache; the rest run `workers` at a time.
    """
    cache: dict = {}
    todo = neutral_variants(ref, variants)
    lock = threading.Lock()

    def one(item: tuple[str, bytes]):
        name, script = item
        r = run_check(ref, script, arena, seeds, threads=threads, parent_cache=cache, launcher=launcher,
                      class_seeds=class_seeds)
        gains = [p - c for p, c in zip(r.parent_ubpb, r.candidate_ubpb, strict=True)]
        mean = statistics.mean(gains) if gains else float("nan")
        cpu = " ".join(f"{q.parent.cpu_ms / 1000:.1f}/{q.candidate.cpu_ms / 1000:.1f}" for q in r.pairs)
        with lock:
            print(f"  {name:<22} {r.verdict:<10} class {r.position.klass:+d} gains {gains} mean {mean:+.0f} "
                  f"CPU s parent/candidate {cpu}", flush=True)
        return name, script, r.verdict, gains, r.position.klass

    results = [one(todo[0])] if todo else []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results += list(pool.map(one, todo[1:]))
    return results, cache


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small budget, 4 variants, 1 repeat")
    ap.add_argument("--budget", type=int, default=None, help="training tokens per run (default: the arena's)")
    ap.add_argument("--variants", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=3, help="seeds per check")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads per run (1: OpenMP spinning on a loaded machine distorts timings)")
    ap.add_argument("--small-eval", action="store_true", help="the test suite's small data/eval settings")
    ap.add_argument("--skip", default="", help="comma list of sections to skip: overhead,neutral,hostile,compute")
    ap.add_argument("--workers", type=int, default=1, help="neutral checks run at once (each one run at a time)")
    ap.add_argument("--class-seeds", type=int, default=1,
                    help="neutral checks: seeds that class the candidate, paired afresh (0: all, as a verifier)")
    ap.add_argument("--waste-checks", type=int, default=10, help="checks of the waste-removed candidate")
    ap.add_argument("--bought", default="", help="comma list of the section-5 candidates to check, in this order "
                    "(default: all; 'none': only the waste-removed checks): "
                    "'1.5x steps,2x steps,4x steps,2x width'")
    args = ap.parse_args()
    if args.class_seeds < 0:
        ap.error(f"--class-seeds must be 0 (every seed) or more, not {args.class_seeds}")
    if args.quick:
        args.budget, args.variants, args.repeats, args.small_eval = args.budget or 60000, 4, 1, True
    skip = set(filter(None, args.skip.split(",")))
    key = SigningKey.generate()
    overrides = {"wall_cap_s": "600"}
    if args.budget:
        overrides["budget_value"] = str(args.budget)
    if args.small_eval:
        overrides.update(SMALL_EVAL)
    arena, blob = build_arena("tiny", key, [key.public], 1, overrides=overrides)
    ref = reference_script("tiny")
    launcher = BubblewrapLauncher(Limits(memory_bytes=4 << 30))
    print(f"tiny arena: budget {arena.budget_value} tokens, margin {arena.margin_ubpb} ubpb, "
          f"{args.seeds} seeds, threads {args.threads}", flush=True)
    if "overhead" not in skip:
        print("\n[1] overhead", flush=True)
        table("overhead of a verification (one seed, parent + candidate)",
              overhead(ref, arena, launcher, args.repeats, args.threads))
    if "neutral" not in skip:
        print(f"\n[2] {args.variants} neutral perturbations", flush=True)
        author_seeds = derive_seeds(b"bench-author-seeds", args.seeds)
        results, _ = false_accepts(ref, arena, launcher, args.variants, author_seeds, args.threads, args.workers,
                                   args.class_seeds or None)
        measured = [r for r in results if r[3]]
        at_class = [r for r in measured if r[4] == 0]  # trained on the parent's tokens (class +0)
        means = [statistics.mean(r[3]) for r in at_class]
        accepted = sum(1 for r in results if r[2] == "improves")
        all_gains = [g for r in at_class for g in r[3]]
        table("false accepts (neutral perturbations, paired on shared seeds)", [
            ("variants checked", str(len(results))),
            ("judged improves", f"{accepted} ({accepted / max(len(results), 1):.0%})"),
            ("classed off the parent's class (timing, not training)", str(len(measured) - len(at_class))),
            ("paired gain per seed at the parent's class: sd", f"{statistics.pstdev(all_gains):.0f} ubpb" if all_gains else "-"),
            ("mean gain: median / max", f"{statistics.median(means):+.0f} / {max(means):+.0f} ubpb" if means else "-"),
            ("margin", f"{arena.margin_ubpb} ubpb"),
        ])
        print("\n[3] seed grinding", flush=True)
        best = max(measured, key=lambda r: statistics.mean(r[3]))
        verifier_seeds = derive_seeds(SigningKey.generate().sign("seed", b"bench"), args.seeds)
        r = run_check(ref, best[1], arena, verifier_seeds, threads=args.threads, launcher=launcher)
        table("seed grinding (best of the variants on the author's seeds, re-checked on a verifier's)", [
            ("best variant", best[0]),
            ("author's mean gain on its own seeds", f"{statistics.mean(best[3]):+.0f} ubpb ({best[2]})"),
            ("verifier's verdict", r.verdict),
            ("verifier's mean gain", f"{r.decision.mean_gain:+.0f} ubpb" if r.decision else "-"),
        ])
    if "compute" not in skip and arena.budget_kind == "compute":
        print("\n[5] compute fairness", flush=True)
        table(f"compute fairness ({args.seeds} seeds per check, {arena.budget_value} tokens at class 0)",
              compute_fairness(ref, arena, launcher, args.seeds, args.waste_checks, args.threads,
                               [] if args.bought == "none" else
                               [b.strip() for b in args.bought.split(",") if b.strip()] or None))
    if "hostile" not in skip:
        print("\n[4] hostile suite", flush=True)
        def hostile_arena(cap: int):
            return build_arena("tiny", key, [key.public], 1, overrides={
                **SMALL_EVAL, "budget_value": "60000", "wall_cap_s": str(cap)})[0]

        capped, roomy = hostile_arena(60), hostile_arena(600)
        small_launcher = BubblewrapLauncher(Limits(memory_bytes=2 << 30, tmpfs_bytes=256 << 20,
                                                   max_file_bytes=128 << 20))
        detected = expected = 0
        for name, want in HOSTILE_EXPECTED.items():
            script = (HOSTILE / name).read_text().replace("__PORT__", "9").replace("__TOKEN__", "bench")
            script = script.replace("__CANARY_FILE__", "/root/.ratchet/keys/identity.pem")
            script = script.replace("__CANARY_DIR__", "/root/.ratchet")
            arena_h = capped if want == "invalid:timeout" else roomy
            r = run_check(ref, script.encode(), arena_h, [7_654_321], threads=1,
                          launcher=small_launcher)
            detected += r.verdict != "improves"
            expected += r.verdict == want
            print(f"  {name:<24} {r.verdict:<26} expected {want}", flush=True)
        n = len(HOSTILE_EXPECTED)
        table("hostile suite", [("scripts", str(n)), ("not accepted", f"{detected}/{n}"),
                                ("expected verdict", f"{expected}/{n}")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
