"""The paired check: parent and candidate on the same seeds, in the sandbox, with a verdict.

This is the one routine both a verifier (verify.attest) and a contributor's
local check (node.research.localcheck) run, under model.harness.run_script
(which owns the data, the budget, the evaluation and the metric).

On a `compute` arena (verify.compute) parent and candidate of each seed run
*concurrently* on this machine, one thread each (half the threads each on a
bigger machine), started in alternating order, and each waits for the other
before evaluating; the CPU time each run's process tree used, over all seeds
run at the parent's class, decides the candidate's compute class; if that
differs from the parent's, the candidate runs again on every seed at its
class and must keep it (else `invalid:over_compute`). On other arenas (`tokens`,
`seconds`: one GPU) the candidate runs first, then the parent, back to back.

A candidate that fails or cheats on any seed ends the check at once with
`invalid:<reason>` / `cheat:<reason>` (a concurrent parent run is cancelled).
When every seed is measured, verify.stats.decide gives `improves` or
`no_gain`. A parent result is reused only from `parent_cache`, keyed by
(parent script digest, arena id, seed, tokens); a failed parent run is never
cached. On a `compute` arena a cached parent is not used for the seeds that
choose the class (all of them, or the first `class_seeds`): a parent's CPU
time measured under other load says nothing about this candidate's (compared
with cached parents, bench_verify's neutral checks at 4M tokens classed 8 of
23 candidates -1 by load alone, BENCHMARKS.md), so those seeds run both
scripts again, paired. The later seeds reuse the cached parent's score (a run
at fixed seed, tokens and threads is bitwise reproducible) and the candidate
trains alone, on the thread count the parent's paired run had. Verifiers pass
no cache; a contributor's screen (class_seeds=1) and the benchmarks do.

`Hooks` let a caller stop a check early without changing what is measured:
`should_abort` (asked before and after every run; a reason raises
CheckAborted with what was measured so far), `stop_early` (asked after every
seed but the last; a reason ends the check as `no_gain`) and `on_pair` (told
each measured seed). A verifier passes none.

Untrusted code runs only in the bubblewrap sandbox, with the device nodes
the arena's device needs (make_launcher). Without a sandbox, run_check
raises NoSandboxError naming what is missing, unless the operator passes
unsafe_no_sandbox, which warns on stderr and adds the flag
`unsafe_no_sandbox` to the result (and so to the attestation).
"""

from __future__ import annotations

import hashlib
import math
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chain.metrics import to_ubpb
from chain.objects import Arena
from verify import compute
from verify.compute import GENESIS, Position
from verify.errors import CheckAborted, HarnessMismatchError, NoSandboxError
from verify.stats import Decision, decide

if TYPE_CHECKING:
    from model.harness import HarnessConfig, Launcher, RunResult

FLAG_UNSAFE = "unsafe_no_sandbox"
FLAG_PARENT_FAILED = "parent_failed"
UNSAFE_WARNING = ("WARNING: --unsafe-no-sandbox: running an untrusted training script WITHOUT a "
                  "sandbox; it can read and change anything this user can")

# (parent script sha256, arena id, seed, tokens) -> a measured parent Run
ParentCache = MutableMapping[tuple[bytes, bytes, int, int], "Run"]
# progress(role, seed_index, done, total): role "parent" | "candidate"; done/total in budget units
Progress = Callable[[str, int, int, int], None]


@dataclass(frozen=True)
class Run:
    """What one measured run gives the check: the metric, and what it consumed."""

    ubpb: int
    floor_ubpb: int | None
    tokens: int
    cpu_ms: int  # CPU time of the trainer's process tree (model.harness.cpuclock)


@dataclass(frozen=True)
class Pair:
    """One seed, measured on both scripts."""

    seed: int
    parent: Run
    candidate: Run

    @property
    def parent_ubpb(self) -> int:
        return self.parent.ubpb

    @property
    def candidate_ubpb(self) -> int:
        return self.candidate.ubpb

    @property
    def floor_ubpb(self) -> int | None:
        return self.candidate.floor_ubpb if self.candidate.floor_ubpb is not None else self.parent.floor_ubpb

    @property
    def gain_ubpb(self) -> int:
        return self.parent.ubpb - self.candidate.ubpb


def _no_reason(*_: object) -> str | None:
    return None


@dataclass(frozen=True)
class Hooks:
    """A caller's say in when a check stops (see the module docstring); the defaults never stop it."""

    should_abort: Callable[[], str | None] = _no_reason
    stop_early: Callable[[list[int]], str | None] = _no_reason  # paired gains so far -> why stop
    on_pair: Callable[[int, Pair], None] = _no_reason  # (seed index, the pair)


@dataclass(frozen=True)
class CheckResult:
    verdict: str  # improves | no_gain | invalid:<reason> | cheat:<reason>
    seeds: list[int]
    parent_ubpb: list[int]  # per seed, as measured; empty unless every seed was measured
    candidate_ubpb: list[int]
    floor_ubpb: list[int]  # per seed where the data source has an exact floor, else empty
    wall_ms: int
    flags: list[str]
    detail: str  # human text: why invalid/cheat (the run's detail), or a summary
    decision: Decision | None = None  # the statistics, when every seed was measured
    train_s: float = 0.0  # seconds of training contained in the check (both scripts)
    runs: int = 0  # worker runs actually started (parent cache hits excluded)
    pairs: tuple[Pair, ...] = ()  # every seed measured on both scripts, also when the check ended early
    position: Position = GENESIS  # the candidate's compute class and drift (verify.compute)
    parent_class: int = 0  # the class the parent ran at
    # seconds of the check's wall time in which some run trained: runs side by side count once, for
    # the longer of the two (the other waits for it), runs one after another each
    train_path_s: float = 0.0
    startup_s: float = 0.0  # summed over the runs: worker start to the script imported (RunResult.startup_s)
    eval_s: float = 0.0  # summed over the runs: the evaluation calls and scoring (RunResult.eval_s)

    @property
    def measured(self) -> bool:
        return self.decision is not None

    def spent(self, role: str, what: str) -> list[int]:
        """Per seed, `tokens` or `cpu_ms` of `role` ("parent" | "candidate"); empty unless all measured."""
        if not self.measured:
            return []
        return [getattr(getattr(q, role), what) for q in self.pairs]

    @property
    def compute_ratio(self) -> float | None:
        """Candidate CPU time over parent CPU time, summed over the seeds (None if not measured)."""
        p, c = sum(q.parent.cpu_ms for q in self.pairs), sum(q.candidate.cpu_ms for q in self.pairs)
        return c / p if self.pairs and p > 0 else None


def make_launcher(unsafe_no_sandbox: bool, device: str = "cpu") -> Launcher:
    """The sandbox launcher for `device` (its device nodes), or DirectLauncher with a warning."""
    if unsafe_no_sandbox:
        from model.harness import DirectLauncher

        print(UNSAFE_WARNING, file=sys.stderr, flush=True)
        return DirectLauncher()
    from verify.sandbox import launcher_for_device, sandbox_available

    missing = sandbox_available()
    if missing is not None:
        raise NoSandboxError(missing)
    return launcher_for_device(device)


def run_check(parent_script: bytes, candidate_script: bytes, arena: Arena, seeds: list[int], *,
              unsafe_no_sandbox: bool = False, threads: int = 2, progress: Progress | None = None,
              parent_cache: ParentCache | None = None, launcher: Launcher | None = None,
              hooks: Hooks | None = None, parent_position: Position = GENESIS,
              class_seeds: int | None = None) -> CheckResult:
    """Check `candidate_script` against `parent_script` on `seeds` under `arena` (see module doc).

    `parent_position` is the parent commit's compute class and drift (the
    chain's record; the genesis for the arena's own script). `launcher`
    replaces the default sandbox (tests pass one with tighter limits).
    `class_seeds` (a contributor's cheaper local prediction; verifiers pass
    None) classes the candidate after that many seeds, reruns those at its
    class and runs the rest at the class directly, so `stop_early` can end a
    class-changing candidate after its first seeds too.
    Raises NoSandboxError / HarnessMismatchError when this machine cannot check
    at all, CheckAborted when hooks.should_abort says so; every fault of the
    candidate is a verdict instead.
    """
    from model.arenas import harness_config
    from model.harness import HARNESS_VERSION

    start = time.monotonic()
    seeds = [int(s) for s in seeds]
    if arena.harness != HARNESS_VERSION:
        raise HarnessMismatchError(arena.harness, HARNESS_VERSION)
    config = harness_config(arena)
    if launcher is None:
        launcher = make_launcher(unsafe_no_sandbox, config.device)
    check = _Check(arena, config, launcher, seeds, threads, progress, hooks or Hooks(),
                   parent_cache if parent_cache is not None else {}, parent_position,
                   [FLAG_UNSAFE] if unsafe_no_sandbox else [], start, class_seeds=class_seeds)
    if len(candidate_script) > arena.max_script_bytes:
        return check.fail("invalid:script_too_large",
                          f"script of {len(candidate_script)} bytes; the arena allows {arena.max_script_bytes}")
    return check.execute(parent_script, candidate_script)


def _measured(r: RunResult) -> bool:
    return r.ok and r.val_bpb is not None and math.isfinite(r.val_bpb)


def _as_run(r: RunResult) -> Run:
    return Run(to_ubpb(r.val_bpb), to_ubpb(r.floor_bpb) if r.floor_bpb is not None else None,  # type: ignore[arg-type]
               r.tokens, int(r.cpu_s * 1000))


class _Verdict(Exception):  # noqa: N818 - internal control flow: the check ends with this result
    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.verdict)
        self.result = result


class _Rendezvous:
    """Two runs meet after training: neither evaluates (uncharged) while the other still trains."""

    def __init__(self, limit_s: float) -> None:
        self.cond = threading.Condition()
        self.arrived = 0
        self.limit_s = limit_s

    def arrive(self) -> None:
        with self.cond:
            self.arrived += 1
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.arrived >= 2, timeout=self.limit_s)

    def leave(self) -> None:
        with self.cond:
            self.arrived = max(self.arrived, 2)
            self.cond.notify_all()


@dataclass
class _Check:
    arena: Arena
    config: HarnessConfig
    launcher: Launcher
    seeds: list[int]
    threads: int
    progress: Progress | None
    hooks: Hooks
    cache: ParentCache
    parent_pos: Position
    flags: list[str]
    start: float
    pairs: list[Pair] = field(default_factory=list)
    train_s: float = 0.0
    train_path_s: float = 0.0
    startup_s: float = 0.0  # summed over the runs: worker start to the script imported (RunResult.startup_s)
    eval_s: float = 0.0  # summed over the runs: the evaluation calls and scoring (RunResult.eval_s)
    runs: int = 0
    rels: list[float] = field(default_factory=list)  # rel of each pair run at the parent's tokens
    position: Position = GENESIS
    class_seeds: int | None = None  # class from the first n seeds (None: all of them)
    at_class: list[float] = field(default_factory=list)  # rel of each candidate run at its own class

    @property
    def paired(self) -> bool:
        return self.config.budget_kind == "compute"

    # -- results ---------------------------------------------------------------
    def _wall_ms(self) -> int:
        return int((time.monotonic() - self.start) * 1000)

    def fail(self, verdict: str, detail: str) -> CheckResult:
        return CheckResult(verdict, self.seeds, [], [], [], self._wall_ms(), sorted(set(self.flags)),
                           detail, None, self.train_s, self.runs, tuple(self.pairs), self.position,
                           self.parent_pos.klass, self.train_path_s, self.startup_s, self.eval_s)

    def done(self, d: Decision, summary: str) -> CheckResult:
        floors = [q.floor_ubpb for q in self.pairs if q.floor_ubpb is not None]
        return CheckResult(d.verdict, self.seeds, [q.parent_ubpb for q in self.pairs],
                           [q.candidate_ubpb for q in self.pairs],
                           floors if len(floors) == len(self.seeds) else [], self._wall_ms(),  # type: ignore[misc]
                           sorted(set(self.flags)), summary, d, self.train_s, self.runs, tuple(self.pairs),
                           self.position, self.parent_pos.klass, self.train_path_s, self.startup_s, self.eval_s)

    # -- runs ------------------------------------------------------------------
    def _abort_if_asked(self) -> None:
        why = self.hooks.should_abort()
        if why:
            raise CheckAborted(why, self.fail(f"aborted:{why}", ""))

    def _run(self, role: str, index: int, script: bytes, seed: int, tokens: int | None, threads: int,
             after_train: Callable[[], None] | None = None,
             cancel: Callable[[], bool] | None = None) -> RunResult:
        from model.harness import run_script

        progress = self.progress
        cb = (lambda done, total: progress(role, index, done, total)) if progress else None
        r = run_script(script, self.config, seed, launcher=self.launcher, threads=threads, progress=cb,
                       tokens=tokens, after_train=after_train, cancel=cancel)
        self.train_s += r.train_s
        self.startup_s += r.startup_s
        self.eval_s += r.eval_s
        self.runs += 1
        return r

    def _candidate_failed(self, c: RunResult, seed: int) -> _Verdict:
        status = c.status if c.status in ("invalid", "cheat") else "invalid"
        return _Verdict(self.fail(f"{status}:{c.reason or 'unknown'}", f"seed {seed}: {c.detail}"))

    def _parent_run(self, p: RunResult, key: tuple[bytes, bytes, int, int], seed: int) -> Run:
        if not _measured(p):
            self.flags.append(FLAG_PARENT_FAILED)
            raise _Verdict(self.fail(f"invalid:parent_{p.reason or 'failed'}",
                                     f"the parent script fails on this machine, seed {seed}: {p.detail}"))
        run = _as_run(p)
        self.cache[key] = run
        return run

    def _seed(self, index: int, seed: int, parent: bytes, candidate: bytes, key: bytes,
              p_tokens: int | None, c_tokens: int | None, classing: bool) -> tuple[Run, Run]:
        """Parent and candidate of one seed: concurrently on compute arenas, else candidate first.

        While `classing` (a compute arena's seeds that choose the class) a cached parent is not
        used: its CPU time was measured under other load, so the parent runs again, paired.
        """
        ck = (key, self.arena.id, seed, p_tokens or 0)
        cached = None if classing else self.cache.get(ck)
        self._abort_if_asked()
        if cached is not None and self.progress:
            self.progress("parent", index, 1, 1)
        each = max(1, self.threads // 2)
        if not self.paired or cached is not None:
            # A cached parent of a compute arena ran paired, `each` threads: the candidate gets as many.
            c = self._run("candidate", index, candidate, seed, c_tokens, each if self.paired else self.threads)
            self.train_path_s += c.train_s
            self._abort_if_asked()
            if not _measured(c):
                raise self._candidate_failed(c, seed)
            if cached is not None:
                return cached, _as_run(c)
            p = self._run("parent", index, parent, seed, p_tokens, self.threads)
            self.train_path_s += p.train_s
            self._abort_if_asked()
            return self._parent_run(p, ck, seed), _as_run(c)
        meet = _Rendezvous(self.config.wall_cap_s + self.config.startup_timeout_s)
        stop = threading.Event()

        def job(role: str, script: bytes, tokens: int | None) -> RunResult:
            try:
                r = self._run(role, index, script, seed, tokens, each, meet.arrive, stop.is_set)
            finally:
                meet.leave()
            if role == "candidate" and not _measured(r):
                stop.set()  # the parent's run says nothing more: end it
            return r

        jobs = [("parent", parent, p_tokens), ("candidate", candidate, c_tokens)]
        if index % 2:
            jobs.reverse()  # alternate which one starts first
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = {role: pool.submit(job, role, script, tokens) for role, script, tokens in jobs}
            c, p = futures["candidate"].result(), futures["parent"].result()
        self.train_path_s += max(c.train_s, p.train_s)
        self._abort_if_asked()
        if not _measured(c):
            raise self._candidate_failed(c, seed)
        return self._parent_run(p, ck, seed), _as_run(c)

    def _rerun(self, candidate: bytes, tokens: int) -> list[Run]:
        """The candidate again on every seed measured so far at `tokens` (its class), two runs at a time."""
        each = max(1, self.threads // 2)
        out: list[Run] = []
        seeds = [q.seed for q in self.pairs]
        for lo in range(0, len(seeds), 2):
            chunk = list(enumerate(seeds))[lo:lo + 2]
            meet = _Rendezvous(self.config.wall_cap_s + self.config.startup_timeout_s)
            if len(chunk) < 2:
                meet.leave()

            def job(index: int, seed: int, meet: _Rendezvous = meet) -> RunResult:
                try:
                    return self._run("candidate", index, candidate, seed, tokens, each, meet.arrive)
                finally:
                    meet.leave()

            self._abort_if_asked()
            with ThreadPoolExecutor(max_workers=2) as pool:
                results = [pool.submit(job, i, seed) for i, seed in chunk]
                runs = [f.result() for f in results]
            self.train_path_s += max(r.train_s for r in runs)
            self._abort_if_asked()
            for (_, seed), r in zip(chunk, runs, strict=True):
                if not _measured(r):
                    raise self._candidate_failed(r, seed)
                out.append(_as_run(r))
        return out

    def _compute_class(self, candidate: bytes) -> int | None:
        """Class the candidate from the pairs so far; rerun them at its class if that differs (module doc).

        Returns the candidate's token count for the seeds still to run, None if it keeps the parent's.
        """
        rel = _median(self.rels)
        klass = compute.class_for(self.parent_pos, rel, allowance=self._noise())
        if klass < compute.K_MIN:
            raise _Verdict(self.fail("invalid:over_compute", compute.over_detail(rel)))
        self.position = compute.position_after(self.parent_pos, klass, self.rels)
        if klass == self.parent_pos.klass:
            return None
        tokens = compute.tokens_at(self.arena.budget_value, klass)
        reruns = self._rerun(candidate, tokens)
        self.at_class = [_rel(q.parent, c) for q, c in zip(self.pairs, reruns, strict=True)]
        self._keeps_class()
        self.pairs = [Pair(q.seed, q.parent, c) for q, c in zip(self.pairs, reruns, strict=True)]
        return tokens

    def _noise(self) -> float:
        """The rel this check's measurements cannot resolve, from the parent's CPU time per run."""
        return compute.noise(max(_median([q.parent.cpu_ms / 1000 for q in self.pairs]), 0.001))

    def _keeps_class(self) -> None:
        if not compute.keeps_class(self.parent_pos, self.position.klass, _median(self.at_class), self._noise()):
            raise _Verdict(self.fail(
                "invalid:over_compute",
                f"classed {self.position.klass:+d} (parent {self.parent_pos.klass:+d}) at the parent's token "
                f"count, the candidate then used {compute.STEP ** -_median(self.at_class):.2f}x the parent's "
                "CPU time per token at its own"))

    def execute(self, parent: bytes, candidate: bytes) -> CheckResult:
        key = hashlib.sha256(parent).digest()
        p_tokens = compute.tokens_at(self.arena.budget_value, self.parent_pos.klass) if self.paired else None
        c_tokens = p_tokens
        n_class = len(self.seeds) if self.class_seeds is None else max(1, min(self.class_seeds, len(self.seeds)))
        classed = not self.paired
        try:
            for i, seed in enumerate(self.seeds):
                p_run, c_run = self._seed(i, seed, parent, candidate, key, p_tokens, c_tokens, not classed)
                pair = Pair(seed, p_run, c_run)
                self.pairs.append(pair)
                if self.paired:
                    (self.at_class if c_tokens != p_tokens else self.rels).append(_rel(p_run, c_run))
                self.hooks.on_pair(i, pair)
                if not classed and i + 1 == n_class:
                    classed = True
                    c_tokens = self._compute_class(candidate) or p_tokens
                staying = classed or compute.class_for(self.parent_pos, _median(self.rels),
                                                       allowance=self._noise()) == self.parent_pos.klass
                if i + 1 < len(self.seeds) and staying:  # gains at the parent's tokens say something
                    why = self.hooks.stop_early([q.gain_ubpb for q in self.pairs])
                    if why:
                        return self.fail("no_gain", why)
            if self.paired and len(self.at_class) > n_class:
                self._keeps_class()  # the seeds run at the class after it was chosen keep it too
        except _Verdict as v:
            return v.result
        d = decide([q.parent_ubpb for q in self.pairs], [q.candidate_ubpb for q in self.pairs],
                   self.arena.margin_ubpb)
        summary = (f"mean paired gain {d.mean_gain:+.0f} ubpb (stderr {d.stderr:.0f}, 95% lower bound "
                   f"{d.lower_bound:+.0f}) against a margin of {self.arena.margin_ubpb} ubpb over {d.n} seeds")
        if self.paired:
            summary += (f"; compute class {self.position.klass:+d} (parent {self.parent_pos.klass:+d}), "
                        f"candidate/parent CPU per token {compute.STEP ** -_median(self.rels):.3f} (median; "
                        f"differences within {compute.STEP ** self._noise():.3f}x are the measurement's noise)")
        return self.done(d, summary)


def _rel(p: Run, c: Run) -> float:
    return compute.relative(max(p.cpu_ms, 1) / 1000, max(p.tokens, 1), max(c.cpu_ms, 1) / 1000, max(c.tokens, 1))


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return (ordered[(n - 1) // 2] + ordered[n // 2]) / 2 if n else 0.0
