"""The default built-in proposer: Optuna's TPE over knob moves, with a sequential early stop.

Why this shape (scripts/bench_research.py measures it against random search
and the older bandit): random search won by running many cheap experiments,
and the bandit spent its budget on full evaluations of small, poor moves. This
proposer fixes both ends:

- **What to try.** Each trial is a move of one or two knobs of the head to
  values that Optuna's TPE sampler (multivariate, conditional parameters)
  draws: `k1` (which knob), `v:<knob>` (its new value, absolute, in a range
  fixed when the study was made: learning rates and other log-scale floats
  x/÷ 8, sizes x/÷ 4, counts -2..+3, fractions 0..3x), and `pair` with `k2`,
  an optional second knob, so that two changes are also tried together. The
  objective is the paired gain the local check measured on the head (early
  stopped trials count with the gain they had when stopped; invalid ones as a
  large loss), so TPE learns which knobs and which values pay on this arena.
- **What it learned before.** A study per head. A new head whose knob values
  match one of the previous head's trials (the usual case: our own accepted
  move) inherits that study's trials, their gains shifted by that trial's
  gain, so what worked and what failed on earlier heads shapes the first
  proposals on the new one.
- **Combinations.** Once two single-knob moves on the head each gained at
  least 0.4 margins, the pair is queued as the next trial.
- **When to stop.** A candidate stops after a seed when, even taking its
  mean so far plus one standard error as its true gain, the chance that the
  remaining seeds lift the mean to what the verdict rule needs (the margin
  plus the one-sided 95% t bound) is under STOP_CHANCE; the per-seed noise
  comes from this arena's own multi-seed stages in the journal. Losers mostly
  stop after one run; the loop's own futility rule stays in force. The screen
  classes a candidate's compute on its first seed (SCREEN_CLASS_SEEDS), not
  on all, so a move that changes the compute class (a wider model, another
  batch shape) can stop after one seed too instead of running every seed at
  the parent's token count first; the confirm stage classes as verifiers do.
- **Compute.** On `compute` arenas the check trains a candidate that spends
  more compute per token on fewer tokens (verify.compute); its measured gain
  says so, and TPE stops proposing such moves unless they pay at equal
  compute. Nothing here guesses compute from knob names.

State: the studies live in an Optuna journal file in the contributor's data
directory (`research/tpe-<arena>.log`); the trial number travels in each
journal entry's change list, so results are told to the study from the
contributor journal at the next proposal, and a restart resumes both.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from journalfile import INVALID, STALE, Entry
from node.research.errors import ResearchError, SearchStateError
from node.research.knobs import BOOL, CHOICE, FRAC, INT_ADD, INT_MUL, LOG, UNIT, Knob, Value
from node.research.mutate import (
    FRAC_MAX,
    UNIT_MAX,
    Change,
    Mutation,
    fit_int,
    mutable_knobs,
    round_float,
)
from node.research.search import Candidate, arm_of, candidate_for, entry_mutation, mutation_key
from verify.stats import t95

NONE = "-"
STOP_CHANCE = 0.10  # stop a candidate when its chance of passing the verdict rule is below this
SCREEN_CLASS_SEEDS = 1  # the screen classes a candidate's compute on its first seed (then it can stop)
INVALID_MARGINS = -5.0  # an invalid candidate counts as a loss of this many margins
STARTUP_TRIALS = 6  # TPE's random trials before it models (inherited trials count)
COMBINE_MIN = 0.4  # combine single moves that each gained at least this many margins
DEFAULT_NOISE_MARGINS = 2.5  # per-seed paired-gain sd, in margins, until the journal has its own
MIN_NOISE_DF = 4

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _gamma(n: int) -> int:
    """How many of the n trials TPE models as good: the top fifth, 2 to 10 (Optuna's default is a tenth, up
    to 25; with one noisy seed per loser and few winners, a tighter good set learned a made-up landscape
    faster: tests/node/test_research_tpe.py)."""
    return min(max(2, n // 5), 10)


def skeleton(script: bytes, knobs: dict[str, Knob]) -> str:
    """A digest of the script with its knob literals blanked: trials carry over between heads with the same one."""
    out = script
    for k in sorted(knobs.values(), key=lambda k: k.start, reverse=True):
        out = out[: k.start] + b"_" + out[k.end:]
    return hashlib.sha256(out).hexdigest()[:16]


def space_for(knobs: dict[str, Knob]) -> dict[str, dict[str, Any]]:
    """The value range of each knob, centred on its current value (JSON, kept in the study)."""
    space: dict[str, dict[str, Any]] = {}
    for name, k in knobs.items():
        v = k.value
        if k.rule == BOOL:
            space[name] = {"kind": "cat", "choices": [False, True]}
        elif k.rule == CHOICE:
            space[name] = {"kind": "cat", "choices": list(k.options)}
        elif isinstance(v, bool | str):
            continue
        elif k.rule == LOG and v > 0:
            space[name] = {"kind": "float", "low": v / 8, "high": v * 8, "log": True}
        elif k.rule == UNIT and 0 < v < 1:
            gap = 1 - v
            space[name] = {"kind": "gap", "low": max(gap / 8, 1 - UNIT_MAX), "high": min(gap * 8, 0.5),
                           "log": True}
        elif k.rule == FRAC:
            space[name] = {"kind": "float", "low": 0.0, "high": min(FRAC_MAX, max(3 * v, 0.2)), "log": False}
        elif k.rule == INT_MUL and isinstance(v, int) and v >= 1:
            space[name] = {"kind": "int", "low": max(1, v // 4), "high": max(v * 4, 2), "log": True}
        elif k.rule == INT_ADD and isinstance(v, int):
            space[name] = {"kind": "int", "low": max(1 if v >= 1 else 0, v - 2), "high": v + 3, "log": False}
    return space


def _distribution(spec: dict[str, Any]) -> BaseDistribution:
    if spec["kind"] == "cat":
        return CategoricalDistribution(spec["choices"])
    if spec["kind"] == "int":
        return IntDistribution(spec["low"], spec["high"], log=spec["log"])
    return FloatDistribution(spec["low"], spec["high"], log=spec["log"])


def _contains(spec: dict[str, Any], value: Value) -> bool:
    if spec["kind"] == "cat":
        return value in spec["choices"]
    if isinstance(value, bool | str):
        return False
    x = 1 - value if spec["kind"] == "gap" else value
    return spec["low"] <= x <= spec["high"]


def _to_value(knob: Knob, spec: dict[str, Any], drawn: Any, knobs: dict[str, Knob]) -> Value | None:
    """The knob's new literal value for a drawn parameter, respecting its rule; None if it cannot move there."""
    if spec["kind"] == "cat":
        return drawn
    if spec["kind"] == "gap":
        return round_float(min(1 - float(drawn), UNIT_MAX))
    if spec["kind"] == "int":
        new = int(drawn)
        if new == knob.value:
            return new
        return fit_int(knob, new, 1 if new > knob.value else -1, knobs)
    new = round_float(float(drawn))
    if knob.rule == FRAC and new < 1e-3:
        new = 0.0
    return new


def noise_ubpb(history: list[Entry], margin_ubpb: int) -> float:
    """The pooled per-seed sd of paired gains over this journal's multi-seed stages (a prior until enough)."""
    ss = 0.0
    df = 0
    for e in history:
        for s in e.stages:
            gains = [p - c for p, c in zip(s.parent_ubpb, s.candidate_ubpb, strict=False)]
            if len(gains) >= 2:
                m = sum(gains) / len(gains)
                ss += sum((g - m) ** 2 for g in gains)
                df += len(gains) - 1
    prior = DEFAULT_NOISE_MARGINS * max(margin_ubpb, 1)
    if df < MIN_NOISE_DF:
        return prior
    # shrink toward the prior while there are few degrees of freedom
    return math.sqrt((ss + MIN_NOISE_DF * prior ** 2) / (df + MIN_NOISE_DF))


def pass_chance(gains: list[int], seeds: int, margin_ubpb: int, sigma: float) -> float:
    """The chance that `seeds` seeds end with the verdict rule's lower bound above the margin.

    Optimistic on purpose: the candidate's true gain is taken as the mean so far
    plus one standard error, and the final spread as `sigma`.
    """
    n = len(gains)
    if n >= seeds or n == 0:
        return 1.0
    sigma = max(sigma, 1.0)
    mean = sum(gains) / n
    need_final = margin_ubpb + t95(seeds - 1) * sigma / math.sqrt(seeds)
    rest = seeds - n
    need_rest = (seeds * need_final - n * mean) / rest
    mu = mean + sigma / math.sqrt(n)
    z = (need_rest - mu) / (sigma / math.sqrt(rest))
    return 0.5 * math.erfc(z / math.sqrt(2))


class TpeSearch:
    """Optuna TPE over one- and two-knob moves, its studies kept in the contributor's data directory."""

    name = "tpe"

    def __init__(self, home: Path | None = None, arena: bytes = b"", seed: int | None = None,
                 seeds_per_stage: int = 3) -> None:
        self.seed = seed if seed is not None else int.from_bytes(os.urandom(4), "big")
        self.rng = random.Random(self.seed)
        self.seeds_per_stage = seeds_per_stage
        self._lock = threading.Lock()
        if home is not None:
            path = Path(home) / "research" / f"tpe-{arena.hex()[:16] or 'arena'}.log"
            path.parent.mkdir(parents=True, exist_ok=True)
            try:  # replays the whole file: a corrupt one fails here, before anything is written to it
                self.storage: optuna.storages.BaseStorage = JournalStorage(JournalFileBackend(str(path)))
            except (ValueError, KeyError, TypeError, IndexError, optuna.exceptions.OptunaError) as e:
                raise SearchStateError(path, f"{type(e).__name__}: {e}"[:200]) from e
            self.path: Path | None = path
        else:
            self.storage = optuna.storages.InMemoryStorage()
            self.path = None

    # -- studies ------------------------------------------------------------
    def _sampler(self) -> optuna.samplers.BaseSampler:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", FutureWarning)  # `gamma`: deprecated in 4.9, kept until 6
            return optuna.samplers.TPESampler(multivariate=True, group=True, n_startup_trials=STARTUP_TRIALS,
                                              gamma=_gamma, seed=self.rng.randrange(1 << 30))

    def _study(self, head: bytes, head_script: bytes, knobs: dict[str, Knob]) -> optuna.Study:
        name = f"head-{head.hex()[:24]}"
        names = optuna.get_all_study_names(self.storage)
        if name in names:
            return optuna.load_study(study_name=name, storage=self.storage, sampler=self._sampler())
        skel = skeleton(head_script, knobs)
        values = {n: k.value for n, k in knobs.items()}
        inherited, space = self._inherit(skel, values, names)
        if space is None:
            space = space_for(knobs)
        study = optuna.create_study(study_name=name, storage=self.storage, direction="maximize",
                                    sampler=self._sampler())
        study.set_user_attr("skeleton", skel)
        study.set_user_attr("space", space)
        study.set_user_attr("created", time.time())
        for t in inherited:
            study.add_trial(t)
        return study

    def _inherit(self, skel: str, values: dict[str, Value], names: list[str]
                 ) -> tuple[list[optuna.trial.FrozenTrial], dict[str, dict[str, Any]] | None]:
        """Trials of the newest study of this skeleton that has a trial matching the head, shifted by its gain."""
        best: tuple[float, optuna.Study, float] | None = None
        config = _jsonable(values)
        for n in names:
            s = optuna.load_study(study_name=n, storage=self.storage)
            if s.user_attrs.get("skeleton") != skel:
                continue
            for t in s.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
                if t.user_attrs.get("config") == config and t.value is not None:
                    created = float(s.user_attrs.get("created", 0))
                    if best is None or created > best[0]:
                        best = (created, s, float(t.value))
        if best is None:
            return [], None
        _, old, shift = best
        space: dict[str, dict[str, Any]] = old.user_attrs["space"]
        if not all(_contains(space[n], v) for n, v in values.items() if n in space):
            return [], None  # the head left the old ranges: start a fresh space around it
        out = []
        for t in old.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.value is None:
                continue
            out.append(optuna.trial.create_trial(params=t.params, distributions=t.distributions,
                                                 value=t.value - shift, user_attrs={"inherited": True}))
        return out, space

    # -- results ------------------------------------------------------------
    def _tell_all(self, history: list[Entry], margin_ubpb: int) -> None:
        names = set(optuna.get_all_study_names(self.storage))
        for name in sorted({ref[0] for e in history if e.decision is not None and (ref := _trial_ref(e))}):
            if name in names:
                self._tell_finished(optuna.load_study(study_name=name, storage=self.storage), history, margin_ubpb)

    def _tell_finished(self, study: optuna.Study, history: list[Entry], margin_ubpb: int) -> None:
        running = {t.number: t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        if not running:
            return
        for e in history:
            ref = _trial_ref(e)
            if ref is None or ref[0] != study.study_name or ref[1] not in running or e.decision is None:
                continue
            number = ref[1]
            if e.decision == STALE:
                study.tell(number, state=TrialState.FAIL)
            elif e.decision == INVALID:
                study.tell(number, INVALID_MARGINS * margin_ubpb)
            else:
                gain = e.mean_gain_ubpb
                study.tell(number, float(gain) if gain is not None else INVALID_MARGINS * margin_ubpb)
            del running[number]

    # -- proposing ----------------------------------------------------------
    def propose(self, head_script: bytes, head: bytes, history: list[Entry],
                taken: set[str], margin_ubpb: int) -> Candidate | None:
        with self._lock:
            return self._propose(head_script, head, history, taken, margin_ubpb)

    def _propose(self, head_script: bytes, head: bytes, history: list[Entry],
                 taken: set[str], margin_ubpb: int) -> Candidate | None:
        knobs = mutable_knobs(head_script)
        self._tell_all(history, margin_ubpb)  # before a new head's study inherits from an old one
        study = self._study(head, head_script, knobs)
        space: dict[str, dict[str, Any]] = study.user_attrs["space"]
        names = sorted(n for n in space if n in knobs)
        if not names:
            return None
        tried = {mutation_key(m) for e in history if e.parent == head and e.decision != STALE
                 if (m := entry_mutation(e)) is not None}
        sigma = noise_ubpb(history, margin_ubpb)
        self._enqueue_combination(study, margin_ubpb)
        tpe_sampler = study.sampler
        for attempt in range(40):
            if attempt == 10:  # the model keeps proposing what was tried: explore at random for a while
                study.sampler = optuna.samplers.RandomSampler(seed=self.rng.randrange(1 << 30))
            trial = study.ask()
            mutation = self._draw(trial, knobs, space, names)
            if mutation is None or mutation_key(mutation) in tried:
                study.tell(trial, state=TrialState.PRUNED if mutation is not None else TrialState.FAIL)
                continue
            topic = "+".join(sorted(arm_of(c) for c in mutation.changes))  # what candidate_for would name it
            if topic in taken and attempt < 20:  # others claimed it: try something else first
                study.tell(trial, state=TrialState.FAIL)
                continue
            try:
                cand = candidate_for(head_script, mutation, {})
            except ResearchError:
                study.tell(trial, INVALID_MARGINS * margin_ubpb)
                continue
            config = {n: k.value for n, k in knobs.items()}
            config.update({c.name: c.new for c in mutation.changes})
            trial.set_user_attr("config", _jsonable(config))
            ref = {"study": study.study_name, "trial": trial.number}
            changes = [{**c, **ref} for c in cand.changes]
            study.sampler = tpe_sampler
            return Candidate(cand.script, cand.summary, changes, cand.topic, cand.mutation,
                             stop_early=self._stopper(margin_ubpb, sigma), screen_class_seeds=SCREEN_CLASS_SEEDS)
        study.sampler = tpe_sampler
        return None

    def _enqueue_combination(self, study: optuna.Study, margin_ubpb: int) -> None:
        """Queue the two best single-knob moves on this head that each gained, together, once."""
        done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if not t.user_attrs.get("inherited") and t.value is not None
                and t.value >= COMBINE_MIN * margin_ubpb and not t.params.get("pair")]
        done.sort(key=lambda t: -(t.value or 0.0))
        seen = {(t.params.get("k1"), t.params.get("k2")) for t in study.get_trials(deepcopy=False)
                if t.params.get("pair")}
        for i, a in enumerate(done):
            for b in done[i + 1:]:
                ka, kb = a.params["k1"], b.params["k1"]
                if ka == kb or (ka, kb) in seen or (kb, ka) in seen:
                    continue
                study.enqueue_trial({"k1": ka, "pair": True, "k2": kb, f"v:{ka}": a.params[f"v:{ka}"],
                                     f"v:{kb}": b.params[f"v:{kb}"]}, skip_if_exists=True)
                return

    def _draw(self, trial: optuna.Trial, knobs: dict[str, Knob], space: dict[str, dict[str, Any]],
              names: list[str]) -> Mutation | None:
        first = trial.suggest_categorical("k1", names)
        second = trial.suggest_categorical("k2", names) if trial.suggest_categorical("pair", [False, True]) else NONE
        changes: list[Change] = []
        for name in dict.fromkeys([first, second]):
            if name == NONE:
                continue
            spec = space[name]
            dist = _distribution(spec)
            if isinstance(dist, CategoricalDistribution):
                drawn = trial.suggest_categorical(f"v:{name}", list(dist.choices))
            elif isinstance(dist, IntDistribution):
                drawn = trial.suggest_int(f"v:{name}", dist.low, dist.high, log=dist.log)
            else:
                drawn = trial.suggest_float(f"v:{name}", dist.low, dist.high, log=dist.log)
            new = _to_value(knobs[name], spec, drawn, knobs)
            if new is None or new == knobs[name].value or type(new) is not type(knobs[name].value):
                continue
            changes.append(Change(name, knobs[name].value, new))
        return Mutation(tuple(changes)) if changes else None

    def _stopper(self, margin_ubpb: int, sigma: float) -> Callable[[list[int]], str | None]:
        seeds = self.seeds_per_stage

        def stop(gains: list[int]) -> str | None:
            chance = pass_chance(gains, seeds, margin_ubpb, sigma)
            if chance < STOP_CHANCE:
                return (f"stopped after {len(gains)} of {seeds} seeds: {chance:.0%} chance to clear the margin "
                        f"(per-seed noise {sigma:.0f} ubpb)")
            return None

        return stop


def _trial_ref(e: Entry) -> tuple[str, int] | None:
    if not e.changes or not isinstance(e.changes[0], dict):
        return None
    study, number = e.changes[0].get("study"), e.changes[0].get("trial")
    if isinstance(study, str) and isinstance(number, int):
        return study, number
    return None


def _jsonable(values: dict[str, Value]) -> dict[str, Value]:
    return json.loads(json.dumps(values, sort_keys=True))
