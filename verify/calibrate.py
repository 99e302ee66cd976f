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


# -- candidates that spend compute instead of doing research (tests and scripts/bench_verify.py) --------
_BACKWARD = b"        loss.backward()\n"
_LOSS = b"        loss = F.cross_entropy("
_STEP_DONE = b"        step += 1\n"


def with_extra_forwards(script: bytes, n: int, when: str = "True") -> bytes:
    """The tiny reference loop plus n forward passes per step under no_grad (pure waste) while `when` holds."""
    if _BACKWARD not in script:
        raise NoKnobError("loss.backward()")
    waste = (f"        if {when}:\n            with torch.no_grad():\n"
             f"                for _ in range({n}):\n                    model(x)\n").encode()
    return script.replace(_BACKWARD, _BACKWARD + waste, 1)


def with_extra_steps(script: bytes, n: int, every: int = 1) -> bytes:
    """The tiny reference loop taking n optimizer steps on every `every`-th batch (1 on the others):
    the same tokens for (n - 1) / every + 1 times the compute."""
    if _LOSS not in script or _STEP_DONE not in script:
        raise NoKnobError("the training step")
    head, tail = script.split(_LOSS, 1)
    body, rest = tail.split(_STEP_DONE, 1)
    loop = f"        for _rep in range({n} if step % {every} == 0 else 1):\n".encode()
    inner = b"".join(b"    " + line + b"\n" for line in (_LOSS + body).rstrip(b"\n").split(b"\n"))
    return head + loop + inner + _STEP_DONE + rest


def bought_compute(script: bytes) -> list[tuple[str, bytes]]:
    """Candidates that spend 1.5x, 2x and 4x the compute on the same tokens, and one twice as wide."""
    return [("1.5x steps", with_extra_steps(script, 2, every=2)), ("2x steps", with_extra_steps(script, 2)),
            ("4x steps", with_extra_steps(script, 4)), ("2x width", perturb(script, "N_EMBD", 2.0).replace(
                b"N_EMBD = 128.0", b"N_EMBD = 128"))]
