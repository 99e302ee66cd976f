"""The contributor's local check: the verifier's own paired check (verify.check), with a search policy.

Each candidate is measured in two stages, as `journal.Stage`s:

- **screen**: on a few seeds fixed per head, so the head's own runs are cached
  and a candidate costs only its own runs. Stops early when the candidate is
  clearly not going to clear the margin (most mutations make things worse).
- **confirm**: only for a candidate that passed the screen, parent and
  candidate again on fresh seeds. Searching many candidates on the same
  screen seeds selects for luck on those seeds (the design notes measure
  ~0.04 bpb for the luckiest of 20 neutral variants); fresh seeds remove that
  bias, so a confirmed candidate predicts what verifiers, on their own
  unpredictable seeds, will measure.

What is measured, and how, is verify.check.run_check's (the same sandbox
launcher for the arena's device, harness, pairing and verdict a verifier
uses); this module adds only the head-run cache, the early stop and the
abort on a new head.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chain.metrics import to_ubpb
from chain.objects import Arena
from node.research.errors import ResearchError
from node.research.journal import Stage
from verify.check import (
    FLAG_PARENT_FAILED,
    CheckResult,
    Hooks,
    Pair,
    ParentCache,
    make_launcher,
    run_check,
)
from verify.compute import GENESIS, Position
from verify.errors import CheckAborted, NoSandboxError

if TYPE_CHECKING:
    from model.harness import Launcher

__all__ = ["Aborted", "HeadRunError", "LocalChecker", "Measured", "NoSandboxError", "local_arena",
           "new_seeds"]

EARLY_STOP_MARGINS = 2.0  # stop when one seed is worse by more than this many margins...
FUTILE_Z = 2.0  # ...or when mean + FUTILE_Z * stderr cannot reach the margin (>= 2 seeds)


class HeadRunError(ResearchError):
    """The head's own script does not run here: nothing can be measured against it."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"the head's script fails locally ({reason}): {detail[-500:]}")
        self.reason, self.detail = reason, detail


class Aborted(ResearchError):  # noqa: N818 - a control-flow signal, not a failure
    """The check was abandoned midway (a new head, or the loop is stopping)."""

    def __init__(self, why: str, stage: Stage) -> None:
        super().__init__(why)
        self.why, self.stage = why, stage


@dataclass(frozen=True)
class Measured:
    ok: bool
    ubpb: int | None
    floor_ubpb: int | None
    reason: str
    detail: str


def new_seeds(n: int) -> list[int]:
    return [int.from_bytes(os.urandom(4), "big") & 0x7FFFFFFF for _ in range(n)]


def local_arena(arena: Arena, overrides: dict[str, int]) -> Arena:
    """The arena with budget fields overridden, for local checks only (never signed or stored)."""
    if not overrides:
        return arena
    allowed = {"budget_value", "wall_cap_s", "seeds"}
    bad = set(overrides) - allowed
    if bad:
        raise ResearchError(f"cannot override {sorted(bad)}; allowed: {sorted(allowed)}")
    return arena.replace(**overrides)  # type: ignore[return-value]


class LocalChecker:
    """Runs verify.check.run_check under the (local) arena; caches the head's runs per (script, seed)."""

    def __init__(self, arena: Arena, *, threads: int = 2, unsafe_no_sandbox: bool = False,
                 overrides: dict[str, int] | None = None, launcher: Launcher | None = None) -> None:
        from model.arenas import harness_config

        self.arena = local_arena(arena, overrides or {})
        self.config = harness_config(self.arena)
        self.threads = threads
        self.unsafe_no_sandbox = unsafe_no_sandbox
        self.launcher = launcher or make_launcher(unsafe_no_sandbox, self.config.device)
        self._cache: ParentCache = {}

    def run(self, script: bytes, seed: int) -> Measured:
        """One run of `script` on `seed` (no pairing, no cache)."""
        from model.harness import run_script

        r = run_script(script, self.config, seed, launcher=self.launcher, threads=self.threads)
        if r.ok and r.val_bpb is not None and math.isfinite(r.val_bpb):
            floor = to_ubpb(r.floor_bpb) if r.floor_bpb is not None else None
            return Measured(True, to_ubpb(r.val_bpb), floor, "", r.detail)
        return Measured(False, None, None, f"{r.status}:{r.reason or 'unknown'}", r.detail)

    def forget(self, keep: bytes | None = None) -> None:
        """Drop cached head runs (all, or all but those of script `keep`)."""
        digest = hashlib.sha256(keep).digest() if keep is not None else None
        self._cache = {k: v for k, v in self._cache.items() if k[0] == digest}

    def paired(self, name: str, parent: bytes, candidate: bytes, seeds: list[int],
               margin_ubpb: int, *, cache_parent: bool,
               should_abort: Callable[[], str | None] = lambda: None,
               progress: Callable[[str], None] = lambda _: None,
               parent_position: Position = GENESIS,
               stop_early: Callable[[list[int]], str | None] | None = None,
               class_seeds: int | None = None) -> Stage:
        """One stage: run_check with early stopping against `margin_ubpb`, as a journal Stage.

        `stop_early` (the proposer's own rule) may end it after any seed too;
        `class_seeds` classes the candidate's compute after that many seeds
        (verify.check.run_check), so a class-changing candidate can stop early.
        Raises Aborted (with the partial stage) when should_abort gives a reason,
        HeadRunError when the parent itself fails here.
        """
        arena = self.arena if margin_ubpb == self.arena.margin_ubpb else self.arena.replace(
            margin_ubpb=margin_ubpb)

        gains: list[int] = []

        def on_pair(i: int, pair: Pair) -> None:
            gains.append(pair.gain_ubpb)
            mean = sum(gains) / len(gains)
            progress(f"{name} seed {i + 1}/{len(seeds)}: gain {gains[-1]:+d} ubpb (mean {mean:+.0f})")

        def stop(g: list[int]) -> str | None:
            return _futile(g, margin_ubpb) or (stop_early(g) if stop_early is not None else None)

        hooks = Hooks(should_abort=should_abort, stop_early=stop, on_pair=on_pair)
        try:
            r = run_check(parent, candidate, arena, seeds, threads=self.threads, launcher=self.launcher,
                          parent_cache=self._cache if cache_parent else None, hooks=hooks,
                          unsafe_no_sandbox=self.unsafe_no_sandbox, parent_position=parent_position,
                          class_seeds=class_seeds)
        except CheckAborted as e:
            raise Aborted(e.why, _stage(name, e.partial)) from e
        if FLAG_PARENT_FAILED in r.flags:
            raise HeadRunError(r.verdict.removeprefix("invalid:parent_"), r.detail)
        return _stage(name, r)


def _stage(name: str, r: CheckResult) -> Stage:
    gains = [q.gain_ubpb for q in r.pairs]
    mean = sum(gains) // len(gains) if gains else 0
    detail = "" if r.verdict in ("improves", "no_gain") and r.decision is not None else r.detail
    return Stage(name, [q.seed for q in r.pairs], [q.parent_ubpb for q in r.pairs],
                 [q.candidate_ubpb for q in r.pairs], [q.floor_ubpb for q in r.pairs if q.floor_ubpb is not None],
                 r.verdict, mean, _stderr(gains), detail[-1000:])


def _stderr(gains: list[int]) -> int:
    n = len(gains)
    if n < 2:
        return 0
    mean = sum(gains) / n
    var = sum((g - mean) ** 2 for g in gains) / (n - 1)
    return int(math.sqrt(var / n))


def _futile(gains: list[int], margin: int) -> str | None:
    """Why the candidate cannot reach the margin any more, or None."""
    mean = sum(gains) / len(gains)
    if mean < -EARLY_STOP_MARGINS * max(margin, 1) or (
            len(gains) >= 2 and mean + FUTILE_Z * _stderr(gains) < margin):
        return f"stopped early after {len(gains)} seeds: cannot reach the margin"
    return None
