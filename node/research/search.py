"""Built-in proposers: a journal-guided bandit over knob moves, and plain random search.

`BanditSearch` treats each (knob, direction) as an arm. Its reward is the
paired gain the loop measured for one-knob experiments, in units of the
arena's margin, capped at +3, with losses floored at -1 (a loss mostly says
the step was too big, not that the direction is wrong) and invalid = -2;
weighted 1.0 on the current head and 0.5 on older heads (after a change is
accepted the landscape shifts, but a direction that helped often helps
again). Arms are drawn by Thompson sampling from a Gaussian posterior whose
prior mean favours what usually matters under a short budget (learning
rates, then schedule, then capacity). Each arm's step size adapts (x1.5 after
a gain, x0.5 after a loss). It never repeats a mutation already measured on
this head, and every few experiments it combines the two best one-knob changes
that gained without clearing the margin (small gains add up).

Topics other contributors claimed are tried last, not never: a claim is an
unauthenticated hint (any fresh key can sign one), so a flood of claims may
reorder the search but cannot stall it.

`RandomSearch` is the benchmark's baseline: a uniformly random knob,
direction and step size (log-uniform 0.5-2 steps), over the same knobs.
"""

from __future__ import annotations

import difflib
import math
import os
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from journalfile import INVALID, STALE, Entry
from node.research.errors import ResearchError
from node.research.knobs import BOOL, CHOICE, INT_ADD, INT_MUL, LOG, Knob, parse_knobs
from node.research.mutate import Change, Mutation, apply, combine, mutable_knobs, step_value

HEAD_WEIGHT, OLD_WEIGHT = 1.0, 0.5
INVALID_REWARD = -2.0
LOSS_FLOOR = -1.0  # a loss mostly says the step was too big, not that the direction is wrong
MIN_SCALE, MAX_SCALE = 0.25, 4.0
COMBINE_MIN = 0.4  # combine one-knob changes that each gained at least this many margins
# Prior mean reward (in margins) of moving a knob, from what usually matters in a short
# training budget: learning rates first, then schedule and capacity, then the rest.
PRIOR_LR, PRIOR_SCHEDULE, PRIOR_CAPACITY = 0.6, 0.3, 0.2


@dataclass(frozen=True)
class Candidate:
    """A proposed script and what the journal should say about it."""

    script: bytes
    summary: str  # one line: what changed
    changes: list[dict[str, Any]] = field(default_factory=list)  # knob changes (+ step scale)
    topic: str = ""  # what a claim announces, e.g. "LR:+"
    mutation: Mutation | None = None  # set for built-in search (lets the loop rebase it)
    rejected: str = ""  # set when the proposer's own checks refused it (journaled as invalid)
    message: str = ""  # proposal message (default: the summary)
    # the proposer's own early stop over the per-seed gains so far (beside the loop's futility rule)
    stop_early: Callable[[list[int]], str | None] | None = field(default=None, compare=False)
    # screen only: class the candidate's compute after this many seeds, not all (verify.check.run_check's
    # class_seeds), so stop_early can end a class-changing candidate early too; confirm classes as verifiers do
    screen_class_seeds: int | None = None


class Proposer(Protocol):
    name: str

    def propose(self, head_script: bytes, head: bytes, history: list[Entry],
                taken: set[str], margin_ubpb: int) -> Candidate | None:
        """A candidate against `head_script`, or None if this proposer has nothing to try.

        `taken`: topics other contributors claimed on `head`; a proposer tries them last.
        """
        ...


def diffstat(old: bytes, new: bytes) -> str:
    a = old.decode("utf-8", "replace").splitlines()
    b = new.decode("utf-8", "replace").splitlines()
    plus = minus = 0
    for line in difflib.unified_diff(a, b, lineterm="", n=0):
        if line.startswith("+") and not line.startswith("+++"):
            plus += 1
        elif line.startswith("-") and not line.startswith("---"):
            minus += 1
    return f"+{plus} -{minus} lines"


def mutation_key(m: Mutation) -> str:
    return ";".join(sorted(f"{c.name}={c.new!r}" for c in m.changes))


def arm_of(change: Change) -> str:
    d = change.direction
    return f"{change.name}:{'+' if d > 0 else '-' if d < 0 else '~'}"


def candidate_for(head_script: bytes, mutation: Mutation, scales: dict[str, float]) -> Candidate:
    script = apply(head_script, mutation)
    changes = [{**c.to_json(), "scale": round(scales.get(c.name, 1.0), 3)} for c in mutation.changes]
    topic = "+".join(sorted(arm_of(c) for c in mutation.changes))
    return Candidate(script, mutation.describe(), changes, topic, mutation)


def _arms(head_script: bytes) -> list[tuple[str, int]]:
    arms = []
    for name, knob in mutable_knobs(head_script).items():
        if knob.rule in (BOOL, CHOICE):
            arms.append((name, 0))
        else:
            arms.extend([(name, 1), (name, -1)])
    return arms


def entry_mutation(e: Entry) -> Mutation | None:
    """The knob mutation a journal entry records, or None (free-form or unreadable)."""
    try:
        return Mutation.from_json(e.changes) if e.changes else None
    except (KeyError, TypeError, ValueError):
        return None


def _reward(e: Entry, margin_ubpb: int) -> float | None:
    if e.decision is None or e.decision == STALE:
        return None
    if e.decision == INVALID:
        return INVALID_REWARD
    gain = e.mean_gain_ubpb
    if gain is None:
        return None
    return max(LOSS_FLOOR, min(3.0, gain / max(margin_ubpb, 1)))


class RandomSearch:
    """Plain random search over the same knobs: the benchmark's baseline."""

    name = "random"

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed if seed is not None else int.from_bytes(os.urandom(8), "big"))

    def propose(self, head_script: bytes, head: bytes, history: list[Entry],
                taken: set[str], margin_ubpb: int) -> Candidate | None:
        knobs = mutable_knobs(head_script)
        names = sorted(knobs)
        for _ in range(50):
            if not names:
                return None
            name = self.rng.choice(names)
            direction = self.rng.choice((-1, 1))
            scale = math.exp(self.rng.uniform(math.log(0.5), math.log(2.0)))
            new = step_value(knobs[name], direction, scale, knobs, self.rng)
            if new is None:
                continue
            mutation = Mutation((Change(name, knobs[name].value, new),))
            try:
                return candidate_for(head_script, mutation, {name: scale})
            except ResearchError:
                continue
        return None


class BanditSearch:
    """Thompson sampling over (knob, direction) arms, guided by the journal."""

    name = "search"

    def __init__(self, seed: int | None = None, combine_every: int = 4) -> None:
        self.rng = random.Random(seed if seed is not None else int.from_bytes(os.urandom(8), "big"))
        self.combine_every = combine_every
        self._margin = 1

    def propose(self, head_script: bytes, head: bytes, history: list[Entry],
                taken: set[str], margin_ubpb: int) -> Candidate | None:
        knobs = parse_knobs(head_script)
        on_head = [e for e in history if e.parent == head and e.decision != STALE]
        tried = {mutation_key(m) for e in on_head if (m := entry_mutation(e)) is not None}
        stats, scales = self._arm_stats(history, head, margin_ubpb)

        self._margin = max(margin_ubpb, 1)
        arms = _arms(head_script)
        ranked = sorted(arms, key=lambda a: -self._sample(stats.get(_arm_name(a)), _prior(a[0], knobs)))
        for claimed in (False, True):  # unclaimed topics first; claimed ones only when none is left
            crossed = self._crossover(head_script, on_head, tried, taken, claimed)
            if crossed is not None:
                return crossed
            cand = self._one_knob(head_script, knobs, ranked, tried, scales, taken, claimed)
            if cand is not None:
                return cand
        return None

    def _one_knob(self, head_script: bytes, knobs: dict[str, Knob], ranked: list[tuple[str, int]],
                  tried: set[str], scales: dict[str, float], taken: set[str],
                  claimed: bool) -> Candidate | None:
        """The best-ranked untried one-knob move whose arm is (`claimed`) or is not claimed."""
        for name, direction in ranked:
            arm = _arm_name((name, direction))
            if (arm in taken) != claimed:
                continue
            scale = scales.get(arm, 1.0)
            for attempt in range(4):
                new = step_value(knobs[name], direction or 1, scale * (1.3 ** attempt), knobs,
                                 self.rng)
                if new is None:
                    break
                mutation = Mutation((Change(name, knobs[name].value, new),))
                if mutation_key(mutation) in tried:
                    continue
                try:
                    return candidate_for(head_script, mutation, {name: scale * 1.3 ** attempt})
                except ResearchError:
                    break
        return None

    def _arm_stats(self, history: Iterable[Entry], head: bytes,
                   margin_ubpb: int) -> tuple[dict[str, tuple[float, float]], dict[str, float]]:
        """Per arm: (weighted reward sum, weight sum); and the next step scale."""
        sums: dict[str, tuple[float, float]] = {}
        scales: dict[str, float] = {}
        for e in history:
            m = entry_mutation(e)
            r = _reward(e, margin_ubpb)
            if m is None or r is None or len(m.changes) != 1:
                continue
            arm = arm_of(m.changes[0])
            w = HEAD_WEIGHT if e.parent == head else OLD_WEIGHT
            s, n = sums.get(arm, (0.0, 0.0))
            sums[arm] = (s + w * r, n + w)
            used = float(e.changes[0].get("scale", 1.0)) if e.changes else 1.0
            scales[arm] = min(MAX_SCALE, max(MIN_SCALE, used * (1.5 if r > 0 else 0.5)))
        return sums, scales

    def _sample(self, stat: tuple[float, float] | None, prior: float = 0.0) -> float:
        s, n = stat or (0.0, 0.0)
        mean = (s + prior) / (n + 1.0)
        return self.rng.gauss(mean, 1.0 / math.sqrt(n + 1.0))

    def _crossover(self, head_script: bytes, on_head: list[Entry], tried: set[str],
                   taken: set[str], claimed: bool = False) -> Candidate | None:
        """The two best one-knob changes on this head that gained but not enough, together
        (only those whose topic is, if `claimed`, or is not, otherwise, claimed by others)."""
        done = [e for e in on_head if e.decision is not None]
        if not done or len(done) % self.combine_every:
            return None
        good = []
        for e in done:
            m = entry_mutation(e)
            gain = e.mean_gain_ubpb
            if (m is not None and len(m.changes) == 1 and gain is not None
                    and gain >= COMBINE_MIN * self._margin):
                good.append((gain, m))
        good.sort(key=lambda g: -g[0])
        for i in range(len(good)):
            for j in range(i + 1, len(good)):
                merged = combine(good[i][1], good[j][1])
                if merged is None or mutation_key(merged) in tried:
                    continue
                topic = "+".join(sorted(arm_of(c) for c in merged.changes))
                if (topic in taken) != claimed:
                    continue
                try:
                    return candidate_for(head_script, merged, {})
                except ResearchError:
                    continue
        return None


def _prior(name: str, knobs: dict[str, Knob]) -> float:
    knob = knobs.get(name)
    parts = set(name.split("[", 1)[0].split("_"))
    if knob is None:
        return 0.0
    if knob.rule == LOG and parts & {"LR", "LEARNING", "RATE"}:
        return PRIOR_LR
    if parts & {"WARMUP", "WARMDOWN", "COOLDOWN", "SCHEDULE", "DECAY"}:
        return PRIOR_SCHEDULE
    if knob.rule in (INT_ADD, INT_MUL) and parts & {"LAYER", "LAYERS", "DEPTH", "EMBD", "EMBED",
                                                     "DIM", "WIDTH", "HIDDEN", "BATCH", "SEQ"}:
        return PRIOR_CAPACITY
    return 0.0


def _arm_name(arm: tuple[str, int]) -> str:
    name, d = arm
    return f"{name}:{'+' if d > 0 else '-' if d < 0 else '~'}"
