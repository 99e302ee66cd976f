"""Benchmark the lookahead probes against a family of peeking models: gain when unseen, catch rates.

The attacks are tests/verify/hostile/lookahead.py, one per MODE: a fair
trigram model that reads the next byte at position 0 of every row (first), at
the middle position (middle), at ~2% of positions chosen by a hash of the
three preceding bytes (hashed), the same only in the worker that trained
(trainer), the same only where the true next byte is plausible under its own
trigram (plausible), the same reading the byte two ahead through a skip-gram
(ahead2), and a sparse variant: position 0 of the rows whose first byte is a
multiple of 4 (sparse: a smaller
gain, for the margin's neighbourhood).

What is real and what is shortened. Real: the arena's evaluation shape and
probe_cuts (the tiny preset unless overridden), the validation text of every
seed, `evaluate.schedule`, `evaluate.draw_futures` with the source's Futures,
`evaluate.inputs`, `evaluate.Scorer` (scoring, the probe comparisons and the
verdict), and the script's own train() and model. Shortened: train() runs in
this process on an in-process feed (the harness's batch order) with a small
token budget and 256 KiB of training text (the validation text does not
depend on it); the trainer and the fresh evaluator are the same process
(for `trainer`, the module's TRAINED flag is set for the scored calls and
cleared for the probes, as a fresh worker would see it). Every run is its own
seed: its own language, validation text, schedule and futures. `--full N`
also runs N seeds of every attack through run_script (worker processes, pipes)
at the same shape to confirm the verdicts.

Per attack it prints the mean gain when undetected (scored val_bpb of the same
weights with peeking off minus with it on, in ubpb), the per-run catch rate,
the per-three-seed catch rate (runs grouped in threes, beside 1-(1-p)^3), and
the analytic catch rate of the same runs: for a lookahead row cut where the
model reads the future, P(miss) is the probability that the drawn future
leaves what it reads unchanged, computed from the exact next-byte law of the
source (tinylang); for ahead2 only cuts one byte before the byte it reads are
counted, so that figure is a lower bound.

    python scripts/bench_attacks.py --runs 102
    python scripts/bench_attacks.py --runs 30 --json
    python scripts/bench_attacks.py --text FILE --runs 30 --full 0   # the text arena on a local file

With --text, every run reads the same file (the seed changes the schedule and the
futures only: the validation text of a file is fixed), and there is no analytic figure
(nobody knows the law of English).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import statistics
import sys
import tempfile
import time
import types
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from chain.keys import SigningKey
from model.arenas import build_arena, harness_config
from model.harness import DirectLauncher, HarnessConfig, run_script
from model.harness.bare import BareFeed
from model.harness.evaluate import SLUGS, CallSpec, Scorer, draw_futures, inputs, schedule
from model.sources import Data, draw

SCRIPT = Path(__file__).resolve().parent.parent / "tests" / "verify" / "hostile" / "lookahead.py"
MODES = ("first", "middle", "hashed", "trainer", "plausible", "ahead2", "sparse")
SPARSE = '''
def _sparse(self, x):  # position 0 of the rows whose first byte is a multiple of 4 (space, d, h, l, p, t)
    m = torch.zeros(x.shape, dtype=torch.bool)
    m[:, 0] = x[:, 0] % 4 == 0
    return m


Lookahead.chosen = _sparse
'''


def script_text(mode: str) -> str:
    text = SCRIPT.read_text().replace("__MODE__", "hashed" if mode == "sparse" else mode)
    return text + SPARSE if mode == "sparse" else text


def load(mode: str) -> types.ModuleType:
    module = types.ModuleType(f"lookahead_{mode}")
    exec(compile(script_text(mode), str(SCRIPT), "exec"), module.__dict__)  # noqa: S102 - our own test script
    return module


@dataclass
class Tally:
    gains: list[float] = field(default_factory=list)
    caught: list[bool] = field(default_factory=list)
    slugs: list[str] = field(default_factory=list)
    miss_bound: list[float] = field(default_factory=list)  # analytic P(miss) of each run
    peek_share: list[float] = field(default_factory=list)


def answer(model: torch.nn.Module, val: np.ndarray, call: CallSpec, seq_len: int,
           futures: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    x = torch.from_numpy(inputs(val, call, seq_len, futures).astype(np.int64))
    with torch.no_grad():
        return model(x).numpy(), x.numpy()


def analytic_miss(mode: str, module: types.ModuleType, model: torch.nn.Module, data: Data,
                  probes: list[CallSpec], seq_len: int) -> float:
    """P(no probe of this run sees a change), from the source's exact next-byte law."""
    rows = sorted({r.src for c in probes for r in c.rows})
    x = torch.from_numpy(np.stack([data.val[r * seq_len:(r + 1) * seq_len] for r in rows]).astype(np.int64))
    at = {r: i for i, r in enumerate(rows)}
    with torch.no_grad():
        chosen = model.chosen(x).numpy()
        a, p = module.context(x)
        base = model.tri[a * module.SYM + p, x % module.SYM].exp().numpy()
    if mode == "trainer":  # any probe position the trainer peeked at differs from the honest evaluator
        hit = any(chosen[at[r.src], :(r.cut + 1 if r.cut >= 0 else seq_len)].any() for c in probes for r in c.rows)
        return 0.0 if hit else 1.0
    miss = 1.0
    for c in probes:
        for r in c.rows:
            if r.cut < 0:
                continue
            i, start = at[r.src], r.src * seq_len
            read = r.cut - 1 if mode == "ahead2" else r.cut  # the position that reads byte cut+1
            if read < 0 or not chosen[i, read]:
                continue
            law = data.futures.next_byte(start + r.cut)  # type: ignore[attr-defined]
            real = int(data.val[start + r.cut + 1])
            q = law[real]
            if mode == "plausible":
                plausible = base[i, read] >= module.PLAUSIBLE
                q = law[real] if plausible[real] else float(law[~plausible].sum())
            miss *= q
    return miss


def one_seed(config: HarnessConfig, seed: int, budget: int, modes: tuple[str, ...], tallies: dict[str, Tally],
             analytic: bool, cost_ms: list[float]) -> None:
    data = draw(config, seed)
    T = config.eval_seq_len
    t0 = time.perf_counter()
    scored, probes = schedule(config.eval_rows, config.eval_batch, T, data.key, probe_cuts=config.probe_cuts)
    futures = draw_futures(probes, T, data.futures, data.key)
    cost_ms.append(1000 * (time.perf_counter() - t0))
    for mode in modes:
        module = load(mode)
        torch.manual_seed(0)
        with contextlib.redirect_stdout(io.StringIO()):
            model = module.train(BareFeed(data, budget, T))
        model.eval()
        scorer = Scorer.for_probes(data.val, T, config.tolerance, probes)
        model.peek = False
        honest = Scorer.for_probes(data.val, T, config.tolerance, [])
        peeked = 0
        for call in scored:
            honest.add(call, answer(model, data.val, call, T, futures)[0])
        model.peek = True
        for call in scored:
            logits, x = answer(model, data.val, call, T, futures)
            scorer.add(call, logits)
            with torch.no_grad():
                peeked += int(model.chosen(torch.from_numpy(x)).sum())
        module.TRAINED = False  # the fresh evaluator never ran train()
        for call in probes:
            scorer.add(call, answer(model, data.val, call, T, futures)[0])
        tally = tallies[mode]
        tally.gains.append(1e6 * (honest.bpb() - scorer.bpb()))
        slug = next((s for s in SLUGS if s in scorer.found), "")
        tally.caught.append(bool(slug))
        tally.slugs.append(slug)
        tally.peek_share.append(peeked / (config.eval_rows * T))
        if analytic and hasattr(data.futures, "next_byte"):
            tally.miss_bound.append(analytic_miss(mode, module, model, data, probes, T))


def summary(mode: str, t: Tally) -> dict[str, object]:
    n = len(t.caught) - len(t.caught) % 3
    p = sum(t.caught) / len(t.caught)
    groups = [any(t.caught[i:i + 3]) for i in range(0, n, 3)]
    out: dict[str, object] = {
        "attack": mode, "runs": len(t.caught), "peek_share": statistics.mean(t.peek_share),
        "gain_ubpb": statistics.mean(t.gains), "catch_run": p,
        "catch_3seed": sum(groups) / len(groups) if groups else math.nan, "catch_3seed_from_run": 1 - (1 - p) ** 3,
        "verdicts": {s or "undetected": t.slugs.count(s) for s in sorted(set(t.slugs))},
    }
    if t.miss_bound:
        miss = t.miss_bound[:n]
        out["analytic_run"] = 1 - statistics.mean(t.miss_bound)
        out["analytic_3seed"] = 1 - statistics.mean(math.prod(miss[i:i + 3]) for i in range(0, n, 3))
    return out


def full_runs(config: HarnessConfig, modes: tuple[str, ...], seeds: list[int], budget: int) -> list[dict[str, object]]:
    """Each attack through run_script (worker processes), beside the in-process verdict of the same seed."""
    out = []
    cfg = replace(config, budget_kind="tokens", budget_value=budget)
    for mode in modes:
        for seed in seeds:
            r = run_script(script_text(mode).encode(), cfg, seed, launcher=DirectLauncher(), threads=1)
            t = {mode: Tally()}
            one_seed(cfg, seed, budget, (mode,), t, False, [])
            out.append({"attack": mode, "seed": seed, "verdict": f"{r.status}:{r.reason}" if r.reason else r.status,
                        "in_process": f"cheat:{t[mode].slugs[0]}" if t[mode].slugs[0] else "ok"})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=102, help="seeds per attack (a multiple of 3 groups them fully)")
    ap.add_argument("--budget", type=int, default=300_000, help="training tokens of each attack model")
    ap.add_argument("--probe-cuts", type=int, default=None, help="override the preset's probe_cuts")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--text", default="", help="a local text file: bench the text arena (spliced futures) on it")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--full", type=int, default=3, help="full harness runs (seeds) per attack to confirm")
    ap.add_argument("--no-analytic", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    key = SigningKey.from_seed(b"\x0b" * 32)
    if args.text:  # a text arena from a local file, its copy kept in a throwaway data directory
        os.environ["RATCHET_DATA"] = tempfile.mkdtemp(prefix="bench-attacks-")
        arena, _ = build_arena("text", key, [key.public], 1, created_at_ms=1, text_path=Path(args.text))
    else:
        arena, _ = build_arena(args.preset, key, [key.public], 1, created_at_ms=1)
    config = harness_config(arena)
    if config.source == "tinylang":
        settings = tuple((k, v) for k, v in config.source_settings if k != "train_bytes")
        config = replace(config, source_settings=(*settings, ("train_bytes", "262144")))
    if args.probe_cuts is not None:
        config = replace(config, probe_cuts=args.probe_cuts, eval_rows=max(
            config.eval_rows, -(-(args.probe_cuts * (config.eval_seq_len - 1) + config.eval_batch)
                                // config.eval_batch) * config.eval_batch))
    modes = tuple(m for m in args.modes.split(",") if m)
    tallies = {m: Tally() for m in modes}
    cost_ms: list[float] = []
    started = time.perf_counter()
    for i in range(args.runs):
        one_seed(config, 1000 + i, args.budget, modes, tallies, not args.no_analytic, cost_ms)
        if not args.json:
            print(f"\rrun {i + 1}/{args.runs}", end="", file=sys.stderr, flush=True)
    rows = [summary(m, tallies[m]) for m in modes]
    full = full_runs(config, modes, [7 + i for i in range(args.full)], 60_000) if args.full else []
    report = {"preset": "text" if args.text else args.preset, "probe_cuts": config.probe_cuts, "eval_rows": config.eval_rows,
              "eval_seq_len": config.eval_seq_len, "margin_ubpb": arena.margin_ubpb,
              "draw_ms_median": statistics.median(cost_ms), "draw_ms_max": max(cost_ms),
              "bench_s": round(time.perf_counter() - started, 1), "attacks": rows, "full_runs": full,
              "full_agree": sum(f["verdict"] == f["in_process"] for f in full)}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"\n{report['preset']}: eval_seq_len {config.eval_seq_len}, eval_rows {config.eval_rows}, "
          f"probe_cuts {config.probe_cuts}, margin {arena.margin_ubpb} ubpb; {args.runs} seeds per attack")
    print(f"schedule + futures per run: median {report['draw_ms_median']:.0f} ms, max {report['draw_ms_max']:.0f} ms")
    head = ("attack", "peeks", "gain ubpb", "caught/run", "analytic/run", "caught/3 seeds", "1-(1-p)^3", "analytic/3")
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        def pct(k: str, r: dict[str, object] = r) -> str:
            v = r.get(k)
            return "-" if v is None else f"{100 * float(v):.1f}%"  # type: ignore[arg-type]
        print(f"| {r['attack']} | {100 * float(r['peek_share']):.2f}% | {float(r['gain_ubpb']):,.0f} | "  # type: ignore[arg-type]
              f"{pct('catch_run')} | {pct('analytic_run')} | {pct('catch_3seed')} | {pct('catch_3seed_from_run')} | "
              f"{pct('analytic_3seed')} |")
    for r in rows:
        print(f"  {r['attack']}: {r['verdicts']}")
    agree = sum(f["verdict"] == f["in_process"] for f in full)
    if full:
        print(f"full harness runs: {agree} of {len(full)} verdicts equal the in-process ones")
    for f in full:
        print(f"  {f['attack']} seed {f['seed']}: {f['verdict']} (in process: {f['in_process']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
