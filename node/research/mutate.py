"""Mutations: changes of knob literals, rewritten in the script's bytes and nothing else.

A `Mutation` is a tuple of `Change(name, old, new)`. Applying it checks that
each knob still holds `old` (else `ConflictError`), rewrites the literals from
the end of the file backwards (so earlier offsets stay valid) and re-parses
the result; every byte outside those literals is identical to the input.

`step_value` moves one knob one step in a direction, by its rule: learning
rates and weight decay on a log scale, betas on log(1 - x), widths by ~19-41%
rounded to a multiple of twice the heads, counts by one. `check_rules` refuses
mutations that break rules between constants a reference script relies on
(width divisible by heads with an even head size, heads divisible by kv-heads).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from node.research.errors import ConflictError, InvalidMutationError, UnknownKnobError
from node.research.knobs import (
    BOOL,
    CHOICE,
    FRAC,
    INT_ADD,
    INT_MUL,
    LOG,
    UNIT,
    Knob,
    Value,
    is_heads,
    is_kv_heads,
    is_width,
    parse_knobs,
)

# Base factor of one step, per rule (scaled by the search's step size: factor ** scale).
STEP_FACTOR = {LOG: 1.5, UNIT: 1.6, FRAC: 1.6, INT_MUL: 1.41}
FRAC_START = 0.05  # the first non-zero value a FRAC knob at 0 steps to
FRAC_MAX = 0.9
UNIT_MAX = 0.9999
MIN_HEAD_SIZE = 4


@dataclass(frozen=True)
class Change:
    name: str
    old: Value
    new: Value

    @property
    def direction(self) -> int:
        """+1 if the value went up, -1 if down, 0 for toggles and choices."""
        if isinstance(self.old, str | bool) or isinstance(self.new, str | bool):
            return 0
        return 1 if self.new > self.old else -1

    def describe(self) -> str:
        return f"{self.name} {format_value(self.old)} -> {format_value(self.new)}"

    def to_json(self) -> dict[str, Value]:
        return {"name": self.name, "old": self.old, "new": self.new}

    @classmethod
    def from_json(cls, d: dict[str, Value]) -> Change:
        return cls(str(d["name"]), d["old"], d["new"])


@dataclass(frozen=True)
class Mutation:
    changes: tuple[Change, ...]

    def describe(self) -> str:
        return ", ".join(c.describe() for c in self.changes) or "no change"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.changes)

    def to_json(self) -> list[dict[str, Value]]:
        return [c.to_json() for c in self.changes]

    @classmethod
    def from_json(cls, items: list[dict[str, Value]]) -> Mutation:
        return cls(tuple(Change.from_json(d) for d in items))


def format_value(value: Value, like: str | None = None) -> str:
    """The Python literal text of a value; strings keep the quote style of `like`."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if like is not None and "e" in like.lower() and value != 0:
            mantissa, _, exp = f"{value:.2e}".partition("e")
            mantissa = mantissa.rstrip("0").rstrip(".")
            return f"{mantissa}e{int(exp)}"
        return repr(float(f"{value:.3g}"))
    quote = '"' if like is None or like.lstrip("rbuRBU").startswith('"') else "'"
    body = value.replace("\\", "\\\\").replace(quote, "\\" + quote)
    return f"{quote}{body}{quote}"


def round_float(value: float) -> float:
    """Floats are kept at 3 significant digits: what `format_value` writes."""
    return float(f"{value:.3g}")


def apply(script: bytes, mutation: Mutation) -> bytes:
    """`script` with each change's literal rewritten; every other byte unchanged."""
    knobs = parse_knobs(script)
    edits: list[tuple[Knob, str]] = []
    for c in mutation.changes:
        knob = knobs.get(c.name)
        if knob is None:
            raise UnknownKnobError(c.name)
        if knob.value != c.old or type(knob.value) is not type(c.old):
            raise ConflictError(c.name, c.old, knob.value)
        edits.append((knob, format_value(c.new, knob.text)))
    out = script
    for knob, text in sorted(edits, key=lambda e: e[0].start, reverse=True):
        out = out[: knob.start] + text.encode() + out[knob.end :]
    check_rules(parse_knobs(out))
    return out


def rebase(mutation: Mutation, script: bytes) -> Mutation | None:
    """The part of `mutation` that still applies to `script` (a new head), or None if nothing does.

    A change survives when its knob still holds the value it was made against;
    where the new head already moved that knob, the change is dropped rather
    than guessed at.
    """
    knobs = parse_knobs(script)
    kept = tuple(
        c for c in mutation.changes
        if c.name in knobs and knobs[c.name].value == c.old and type(knobs[c.name].value) is type(c.old)
    )
    if not kept:
        return None
    rebased = Mutation(kept)
    try:
        apply(script, rebased)
    except InvalidMutationError:
        return None
    return rebased


def check_rules(knobs: dict[str, Knob]) -> None:
    """Raise InvalidMutationError if known relations between constants are broken."""
    heads = [k for k in knobs.values() if is_heads(k.name) and isinstance(k.value, int)]
    widths = [k for k in knobs.values() if is_width(k.name) and isinstance(k.value, int)]
    kv = [k for k in knobs.values() if is_kv_heads(k.name) and isinstance(k.value, int)]
    for h in heads:
        if h.value < 1:
            raise InvalidMutationError(f"{h.name} = {h.value} < 1")
        for w in widths:
            if w.value % h.value or (w.value // h.value) % 2 or w.value // h.value < MIN_HEAD_SIZE:
                raise InvalidMutationError(
                    f"{w.name} = {w.value} must be a multiple of 2 * {h.name} = {2 * h.value}"
                    f" with heads of at least {MIN_HEAD_SIZE}"
                )
        for k in kv:
            if k.value < 1 or h.value % k.value:
                raise InvalidMutationError(f"{h.name} = {h.value} not divisible by {k.name} = {k.value}")


def step_value(knob: Knob, direction: int, scale: float, knobs: dict[str, Knob],
               rng: random.Random) -> Value | None:
    """`knob` moved one step (`scale` x its base step) in `direction`, or None if it cannot move."""
    v = knob.value
    if knob.rule == BOOL:
        return not v
    if knob.rule == CHOICE:
        others = [o for o in knob.options if o != v]
        return rng.choice(others) if others else None
    if isinstance(v, bool) or isinstance(v, str):
        return None
    factor = STEP_FACTOR.get(knob.rule, 1.5) ** max(scale, 0.05)
    if knob.rule == LOG:
        new = round_float(v * factor ** direction)
        return new if new > 0 and new != v else None
    if knob.rule == UNIT:
        gap = (1 - v) / factor ** direction
        new = round_float(min(1 - gap, UNIT_MAX))
        return new if 0 < new < 1 and new != v else None
    if knob.rule == FRAC:
        if v == 0:
            return round_float(FRAC_START * max(scale, 0.2)) if direction > 0 else None
        new = v * factor ** direction
        new = 0.0 if new < FRAC_START / 4 else round_float(min(new, FRAC_MAX))
        return new if new != v else None
    if knob.rule == INT_ADD:
        step = max(1, int(scale))  # +-1 unless the search asks for a much bigger step
        new = int(v) + direction * step
        return fit_int(knob, new, direction, knobs)
    if knob.rule == INT_MUL:
        new = round(v * factor ** direction)
        if new == v:
            new = v + direction
        return fit_int(knob, new, direction, knobs)
    return None


def fit_int(knob: Knob, new: int, direction: int, knobs: dict[str, Knob]) -> int | None:
    """The nearest value to `new`, moving in `direction`, that keeps the rules; None if none."""
    v = int(knob.value)
    lowest = 1 if v >= 1 else 0
    grain = _grain(v)
    if is_width(knob.name):
        unit = 2 * max((int(k.value) for k in knobs.values() if is_heads(k.name)), default=1)
        unit = math.lcm(max(unit, 2), grain)
        new = max(unit, round(new / unit) * unit)
        if new == v:
            new = v + direction * unit
        new = max(new, unit)
        return new if new != v else None
    if is_heads(knob.name):
        widths = [int(k.value) for k in knobs.values() if is_width(k.name)]
        kv = [int(k.value) for k in knobs.values() if is_kv_heads(k.name)]
        cand = new
        while 1 <= cand <= 4 * max(v, 1) + 8:
            ok = all(w % cand == 0 and (w // cand) % 2 == 0 and w // cand >= MIN_HEAD_SIZE for w in widths)
            ok = ok and all(cand % k == 0 for k in kv)
            if ok and cand != v:
                return cand
            cand += direction
        return None
    if knob.rule == INT_MUL and grain > 1:
        new = round(new / grain) * grain
        if new == v:
            new = v + direction * grain
    new = max(new, lowest)
    return new if new != v else None


def _grain(v: int) -> int:
    """Sizes move in round steps: multiples of the largest power of two <= v / 4."""
    return 1 << max(0, (max(v, 1) // 4).bit_length() - 1) if v >= 8 else 1


def neighbours(script: bytes, knob_name: str, direction: int, scale: float = 1.0,
               rng: random.Random | None = None) -> Mutation | None:
    """The one-knob mutation moving `knob_name` one step in `direction`, if valid."""
    rng = rng or random.Random(0)
    knobs = parse_knobs(script)
    knob = knobs.get(knob_name)
    if knob is None or not knob.mutable:
        return None
    new = step_value(knob, direction, scale, knobs, rng)
    if new is None:
        return None
    mutation = Mutation((Change(knob_name, knob.value, new),))
    try:
        apply(script, mutation)
    except InvalidMutationError:
        return None
    return mutation


def mutable_knobs(script: bytes) -> dict[str, Knob]:
    return {n: k for n, k in parse_knobs(script).items() if k.mutable}


def combine(a: Mutation, b: Mutation) -> Mutation | None:
    """Both mutations' changes together (b wins on a shared knob), or None if they overlap fully."""
    merged = {c.name: c for c in a.changes}
    for c in b.changes:
        merged[c.name] = c
    out = Mutation(tuple(merged.values()))
    return out if len(out.changes) > max(len(a.changes), len(b.changes)) else None

