"""The paired check: parent and candidate on the same seeds, in the sandbox, with a verdict.

This is the one routine both a verifier (verify.attest) and a contributor's
local check (node.research.localcheck) run. For each seed the candidate runs
first, then the parent, back to back on the same machine, under
model.harness.run_script (which owns the data, the budget, the evaluation and
the metric). A candidate that fails or cheats on any seed ends the check at
once with `invalid:<reason>` / `cheat:<reason>`: no parent run is spent on it.
When every seed is measured, verify.stats.decide gives `improves` or
`no_gain`. A parent result is reused only from `parent_cache`, keyed by
(parent script digest, arena id, seed): the same parent, arena and seed
recur, or it is run again; a failed parent run is never cached.

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
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chain.metrics import to_ubpb
from chain.objects import Arena
from verify.errors import CheckAborted, HarnessMismatchError, NoSandboxError
from verify.stats import Decision, decide

if TYPE_CHECKING:
    from model.harness import Launcher, RunResult

FLAG_UNSAFE = "unsafe_no_sandbox"
FLAG_PARENT_FAILED = "parent_failed"
UNSAFE_WARNING = ("WARNING: --unsafe-no-sandbox: running an untrusted training script WITHOUT a "
                  "sandbox; it can read and change anything this user can")

# (parent script sha256, arena id, seed) -> (val_bpb ubpb, floor ubpb or None)
ParentCache = MutableMapping[tuple[bytes, bytes, int], tuple[int, int | None]]
# progress(role, seed_index, done, total): role "parent" | "candidate"; done/total in budget units
Progress = Callable[[str, int, int, int], None]


@dataclass(frozen=True)
class Pair:
    """One seed, measured on both scripts."""

    seed: int
    parent_ubpb: int
    candidate_ubpb: int
    floor_ubpb: int | None

    @property
    def gain_ubpb(self) -> int:
        return self.parent_ubpb - self.candidate_ubpb


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

    @property
    def measured(self) -> bool:
        return self.decision is not None


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
              hooks: Hooks | None = None) -> CheckResult:
    """Check `candidate_script` against `parent_script` on `seeds` under `arena` (see module doc).

    `launcher` replaces the default sandbox (tests pass one with tighter limits).
    Raises NoSandboxError / HarnessMismatchError when this machine cannot check
    at all, CheckAborted when hooks.should_abort says so; every fault of the
    candidate is a verdict instead.
    """
    from model.arenas import harness_config
    from model.harness import HARNESS_VERSION, run_script

    start = time.monotonic()
    seeds = [int(s) for s in seeds]
    if arena.harness != HARNESS_VERSION:
        raise HarnessMismatchError(arena.harness, HARNESS_VERSION)
    hooks = hooks or Hooks()
    config = harness_config(arena)
    if launcher is None:
        launcher = make_launcher(unsafe_no_sandbox, config.device)
    acc = _Acc(seeds, [FLAG_UNSAFE] if unsafe_no_sandbox else [], start)
    if len(candidate_script) > arena.max_script_bytes:
        return acc.fail("invalid:script_too_large",
                        f"script of {len(candidate_script)} bytes; the arena allows {arena.max_script_bytes}")
    parent_key = hashlib.sha256(parent_script).digest()
    cache: ParentCache = parent_cache if parent_cache is not None else {}

    def run(role: str, index: int, script: bytes, seed: int) -> RunResult:
        why = hooks.should_abort()
        if why:
            raise CheckAborted(why, acc.fail(f"aborted:{why}", ""))
        cb = (lambda done, total: progress(role, index, done, total)) if progress else None
        r = run_script(script, config, seed, launcher=launcher, threads=threads, progress=cb)
        acc.train_s += r.train_s
        acc.runs += 1
        why = hooks.should_abort()  # a run cut short by Ctrl-C or a new head says nothing of the script
        if why:
            raise CheckAborted(why, acc.fail(f"aborted:{why}", ""))
        return r

    for i, seed in enumerate(seeds):
        c = run("candidate", i, candidate_script, seed)
        if not _measured(c):
            status = c.status if c.status in ("invalid", "cheat") else "invalid"
            return acc.fail(f"{status}:{c.reason or 'unknown'}", f"seed {seed}: {c.detail}")
        key = (parent_key, arena.id, seed)
        if key in cache:
            p_ubpb, p_floor = cache[key]
            if progress:
                progress("parent", i, 1, 1)
        else:
            p = run("parent", i, parent_script, seed)
            if not _measured(p):
                acc.flags.append(FLAG_PARENT_FAILED)
                return acc.fail(f"invalid:parent_{p.reason or 'failed'}",
                                f"the parent script fails on this machine, seed {seed}: {p.detail}")
            p_ubpb = to_ubpb(p.val_bpb)  # type: ignore[arg-type] # _measured: not None
            p_floor = to_ubpb(p.floor_bpb) if p.floor_bpb is not None else None
            cache[key] = (p_ubpb, p_floor)
        floor = to_ubpb(c.floor_bpb) if c.floor_bpb is not None else p_floor
        pair = Pair(seed, p_ubpb, to_ubpb(c.val_bpb), floor)  # type: ignore[arg-type]
        acc.pairs.append(pair)
        hooks.on_pair(i, pair)
        if i + 1 < len(seeds):
            why = hooks.stop_early([q.gain_ubpb for q in acc.pairs])
            if why:
                return acc.fail("no_gain", why)
    parent = [q.parent_ubpb for q in acc.pairs]
    d = decide(parent, [q.candidate_ubpb for q in acc.pairs], arena.margin_ubpb)
    summary = (f"mean paired gain {d.mean_gain:+.0f} ubpb (stderr {d.stderr:.0f}, 95% lower bound "
               f"{d.lower_bound:+.0f}) against a margin of {arena.margin_ubpb} ubpb over {d.n} seeds")
    return acc.done(d, summary)


def _measured(r: RunResult) -> bool:
    return r.ok and r.val_bpb is not None and math.isfinite(r.val_bpb)


@dataclass
class _Acc:
    seeds: list[int]
    flags: list[str]
    start: float
    pairs: list[Pair] = field(default_factory=list)
    train_s: float = 0.0
    runs: int = 0

    def _wall_ms(self) -> int:
        return int((time.monotonic() - self.start) * 1000)

    def fail(self, verdict: str, detail: str) -> CheckResult:
        return CheckResult(verdict, self.seeds, [], [], [], self._wall_ms(), sorted(set(self.flags)),
                           detail, None, self.train_s, self.runs, tuple(self.pairs))

    def done(self, d: Decision, summary: str) -> CheckResult:
        floors = [q.floor_ubpb for q in self.pairs if q.floor_ubpb is not None]
        return CheckResult(d.verdict, self.seeds, [q.parent_ubpb for q in self.pairs],
                           [q.candidate_ubpb for q in self.pairs],
                           floors if len(floors) == len(self.seeds) else [], self._wall_ms(),
                           sorted(set(self.flags)), summary, d, self.train_s, self.runs, tuple(self.pairs))
