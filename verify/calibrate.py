"""Neutral perturbations of a training script, for calibrating the margin and testing seed grinding.

A textual no-op (a comment) trains bit for bit like its parent and proves
nothing about the rule. A *neutral perturbation* changes the training
trajectory without changing the expected quality: one numeric knob moved by
a fraction of a percent (init scale, rotary base, weight decay, final LR
fraction, learning rate). Its paired gain over the parent is pure noise, so
the fraction of such variants a rule accepts is its false-accept rate, and
the best of many on seeds the author chose is what seed grinding buys.
"""

from __future__ import annotations

import re

# (knob, relative step): meant to leave expected quality alone, which does not hold at every budget:
# at 60,000 tokens INIT_STD*1.005 (the same init, rescaled) measured a
# consistent +5,434 ubpb over three seeds, so calibrate a margin at the budget it will guard.
KNOBS: tuple[tuple[str, float], ...] = (
    ("INIT_STD", 0.005), ("ROPE_BASE", 0.002), ("WEIGHT_DECAY", 0.02), ("FINAL_LR_FRAC", 0.01),
    ("LR", 0.002), ("GRAD_CLIP", 0.005),
)


class NoKnobError(ValueError):
    def __init__(self, knob: str) -> None:
        super().__init__(f"the script has no numeric constant {knob} = <number> to perturb")
        self.knob = knob


def perturb(script: bytes, knob: str, factor: float) -> bytes:
    """`script` with the numeric constant `knob` multiplied by `factor` (first assignment only)."""
    pattern = re.compile(rb"^(" + knob.encode() + rb"\s*=\s*)([0-9][0-9_.eE+\-]*)", re.M)
    m = pattern.search(script)
    if m is None:
        raise NoKnobError(knob)
    value = float(m.group(2).replace(b"_", b""))
    new = repr(value * factor).encode()
    return script[:m.start(2)] + new + script[m.end(2):]


def neutral_variants(script: bytes, n: int) -> list[tuple[str, bytes]]:
    """n distinct neutral perturbations, named like 'INIT_STD*1.005'."""
    out: list[tuple[str, bytes]] = []
    seen = {script}
    k = 0
    while len(out) < n and k < 50 * max(n, 1):
        knob, step = KNOBS[k % len(KNOBS)]
        level = k // len(KNOBS) + 1
        factor = 1 + step * ((level + 1) // 2) * (1 if level % 2 else -1)
        k += 1
        try:
            variant = perturb(script, knob, factor)
        except NoKnobError:
            continue
        if variant not in seen:
            seen.add(variant)
            out.append((f"{knob}*{factor:g}", variant))
    return out
