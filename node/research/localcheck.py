"""The contributor's local paired check: the verifier's harness and statistical rule, seed by seed.

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

Both stages use model.harness.run_script (the same worker, data feed and
scorer a verifier uses), in the bubblewrap sandbox unless the operator opts
out, and verify.stats.decide for the verdict.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chain.metrics import to_ubpb
from chain.objects import Arena
from node.research.errors import ResearchError
from node.research.journal import Stage

EARLY_STOP_MARGINS = 2.0  # stop when one seed is worse by more than this many margins...
FUTILE_Z = 2.0  # ...or when mean + FUTILE_Z * stderr cannot reach the margin (>= 2 seeds)


class HeadRunError(ResearchError):
    """The head's own script does not run here: nothing can be measured against it."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"the head's script fails locally ({reason}): {detail[-500:]}")
        self.reason, self.detail = reason, detail


class NoSandboxError(ResearchError):
    def __init__(self, missing: str) -> None:
        super().__init__(
            f"no sandbox for untrusted scripts ({missing}); install bubblewrap, or pass "
            "--unsafe-no-sandbox to run scripts unconfined on this machine"
        )
        self.missing = missing


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
    """Runs scripts under the arena's harness; caches the head's runs per (script, seed)."""

    def __init__(self, arena: Arena, *, threads: int = 2, unsafe_no_sandbox: bool = False,
                 overrides: dict[str, int] | None = None) -> None:
        from model.arenas import harness_config

        self.arena = local_arena(arena, overrides or {})
        self.config = harness_config(self.arena)
        self.threads = threads
        self.launcher = _launcher(unsafe_no_sandbox)
        self._cache: dict[tuple[bytes, int], Measured] = {}

    def run(self, script: bytes, seed: int, *, cache: bool = False) -> Measured:
        key = (hashlib.sha256(script).digest(), seed)
        if cache and key in self._cache:
            return self._cache[key]
        from model.harness import run_script

        kwargs: dict[str, Any] = {"threads": self.threads}
        if self.launcher is not None:
            kwargs["launcher"] = self.launcher
        r = run_script(script, self.config, seed, **kwargs)
        if r.status == "ok" and r.val_bpb is not None and math.isfinite(r.val_bpb):
            floor = to_ubpb(r.floor_bpb) if r.floor_bpb is not None else None
            m = Measured(True, to_ubpb(r.val_bpb), floor, "", r.detail)
        else:
            m = Measured(False, None, None, f"{r.status}:{r.reason or 'unknown'}", r.detail)
        if cache and m.ok:  # a failed head run is never reused: it may have been cut short
            self._cache[key] = m
        return m

    def forget(self, keep: bytes | None = None) -> None:
        """Drop cached head runs (all, or all but those of script `keep`)."""
        digest = hashlib.sha256(keep).digest() if keep is not None else None
        self._cache = {k: v for k, v in self._cache.items() if k[0] == digest}

    def paired(self, name: str, parent: bytes, candidate: bytes, seeds: list[int],
               margin_ubpb: int, *, cache_parent: bool,
               should_abort: Callable[[], str | None] = lambda: None,
               progress: Callable[[str], None] = lambda _: None) -> Stage:
        """One stage: parent and candidate seed by seed, with early stopping; the verdict by decide()."""
        from verify.stats import decide

        p_list: list[int] = []
        c_list: list[int] = []
        f_list: list[int] = []
        done: list[int] = []

        def stage(verdict: str, detail: str = "") -> Stage:
            gains = [p - c for p, c in zip(p_list, c_list, strict=True)]
            mean = sum(gains) // len(gains) if gains else 0
            return Stage(name, list(done), list(p_list), list(c_list), list(f_list), verdict,
                         mean, _stderr(gains), detail[-1000:])

        def check_abort() -> None:
            why = should_abort()
            if why:
                raise Aborted(why, stage(f"aborted:{why}"))

        for i, seed in enumerate(seeds):
            check_abort()
            p = self.run(parent, seed, cache=cache_parent)
            check_abort()  # a run cut short by Ctrl-C or a new head says nothing about the script
            if not p.ok:
                raise HeadRunError(p.reason, p.detail)
            c = self.run(candidate, seed)
            check_abort()
            if not c.ok:
                return stage(c.reason if c.reason.startswith(("invalid", "cheat")) else
                             f"invalid:{c.reason.split(':', 1)[-1]}", c.detail)
            done.append(seed)
            p_list.append(p.ubpb or 0)
            c_list.append(c.ubpb or 0)
            if p.floor_ubpb is not None:
                f_list.append(p.floor_ubpb)
            gains = [a - b for a, b in zip(p_list, c_list, strict=True)]
            mean = sum(gains) / len(gains)
            progress(f"{name} seed {i + 1}/{len(seeds)}: gain {gains[-1]:+d} ubpb (mean {mean:+.0f})")
            if i + 1 < len(seeds) and _futile(gains, margin_ubpb):
                return stage("no_gain", f"stopped early after {i + 1} seeds: cannot reach the margin")
        d = decide(p_list, c_list, margin_ubpb)
        return stage(d.verdict)


def _stderr(gains: list[int]) -> int:
    n = len(gains)
    if n < 2:
        return 0
    mean = sum(gains) / n
    var = sum((g - mean) ** 2 for g in gains) / (n - 1)
    return int(math.sqrt(var / n))


def _futile(gains: list[int], margin: int) -> bool:
    mean = sum(gains) / len(gains)
    if mean < -EARLY_STOP_MARGINS * max(margin, 1):
        return True
    return len(gains) >= 2 and mean + FUTILE_Z * _stderr(gains) < margin


def _launcher(unsafe_no_sandbox: bool) -> Any:
    if unsafe_no_sandbox:
        from model.harness import DirectLauncher

        return DirectLauncher()
    from verify.sandbox import BubblewrapLauncher, sandbox_available

    missing = sandbox_available()
    if missing is not None:
        raise NoSandboxError(missing)
    return BubblewrapLauncher()
