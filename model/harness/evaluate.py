"""Evaluation on the trusted side: the schedule of evaluation calls, the checks, the score.

The worker's model sees validation inputs only, in batches of fixed shape
(eval_batch x eval_seq_len), in an order drawn from the run's secret key.
The trained model answers the scored batches in the worker that trained it.
A second, fresh worker loads the same model (pickled by the untrusted side,
passed through the parent as opaque bytes, never unpickled here) and answers
the probes, so nothing the first worker remembers can make the two agree:

- a scored batch *repeated* twice: any difference (between the two, or from
  the trainer's answer) means the answers depend on what the model saw
  before (`stateful_eval`);
- *mix* batches holding exact copies of scored rows next to other
  companions (any difference: `batch_mixing`) and copies whose bytes after a
  random position t are replaced by other validation text (a difference at
  positions <= t: `peeks_future`).

Comparisons are on log-probabilities, within `tolerance`. The parent holds the
targets and computes the loss; only the first occurrence of a row is scored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from model.sources import rng

VOCAB = 256
MIX_BATCHES = 2


@dataclass(frozen=True)
class RowSpec:
    src: int  # validation row
    cut: int = -1  # >= 0: bytes after position cut come from row `other`
    other: int = -1


@dataclass(frozen=True)
class CallSpec:
    kind: str  # "score" | "repeat" | "mix"
    rows: tuple[RowSpec, ...]


class EvalFailure(Exception):  # noqa: N818 - carries a verdict, not a harness fault
    def __init__(self, status: str, reason: str, detail: str) -> None:
        super().__init__(f"{status}:{reason}: {detail}")
        self.status, self.reason, self.detail = status, reason, detail


def schedule(nrows: int, batch: int, seq_len: int, key: bytes) -> tuple[list[CallSpec], list[CallSpec]]:
    """(scored calls, probe calls), each in a secret order.

    The scored calls go to the worker that trained; the probes to a fresh
    worker that loaded the trained model, so that no state (a cache of
    earlier answers, say) can carry from one to the other. A row whose future
    is replaced in a probe never appears unaltered among the probes: the
    fresh worker must not be able to look up that row's true future.
    """
    if nrows % batch or nrows < 3 * batch:
        raise ValueError(f"eval_rows {nrows} must be a multiple of eval_batch {batch}, three batches at least")
    g = np.random.Generator(np.random.PCG64(int.from_bytes(rng.subkey(key, "eval"), "little")))
    order = g.permutation(nrows).tolist()
    scored = [CallSpec("score", tuple(RowSpec(r) for r in order[i:i + batch]))
              for i in range(0, nrows, batch)]
    j = int(g.integers(0, len(scored)))
    repeat = scored[j]
    shown = {r.src for r in repeat.rows}
    outside = [r for r in g.permutation(nrows).tolist() if r not in shown]
    half = (batch + 1) // 2
    perturbed = outside[:MIX_BATCHES * half]
    exact = outside[MIX_BATCHES * half:]
    probes = [CallSpec("repeat", repeat.rows), CallSpec("repeat", repeat.rows)]
    for m in range(MIX_BATCHES):
        rows = []
        for src in perturbed[m * half:(m + 1) * half]:
            other = int((src + 1 + g.integers(0, nrows - 1)) % nrows)
            rows.append(RowSpec(src, int(g.integers(0, seq_len - 1)), other))
        for src in exact[m * (batch - half):(m + 1) * (batch - half)]:
            rows.append(RowSpec(src))
        perm = g.permutation(batch).tolist()
        probes.append(CallSpec("mix", tuple(rows[p] for p in perm)))
    order_p = g.permutation(len(probes)).tolist()
    return scored, [probes[i] for i in order_p]


def inputs(val: np.ndarray, call: CallSpec, seq_len: int) -> np.ndarray:
    x = np.empty((len(call.rows), seq_len), dtype=np.uint8)
    for i, spec in enumerate(call.rows):
        x[i] = val[spec.src * seq_len:(spec.src + 1) * seq_len]
        if spec.cut >= 0:
            o = spec.other * seq_len
            x[i, spec.cut + 1:] = val[o + spec.cut + 1:o + seq_len]
    return x


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z -= z.max(axis=-1, keepdims=True)
    z -= np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return z


@dataclass
class Scorer:
    """Consumes the logits of each call in schedule order; keeps what the checks compare."""

    val: np.ndarray
    seq_len: int
    tolerance: float
    probed: set[int]
    nll: float = 0.0
    count: int = 0
    scored: set[int] = field(default_factory=set)
    seen: dict[int, list[tuple[str, RowSpec, np.ndarray]]] = field(default_factory=dict)

    @classmethod
    def for_probes(cls, val: np.ndarray, seq_len: int, tolerance: float, probes: list[CallSpec]) -> Scorer:
        return cls(val, seq_len, tolerance, {r.src for c in probes for r in c.rows})

    def add(self, call: CallSpec, logits: np.ndarray) -> None:
        if not np.isfinite(logits).all():
            bad = int((~np.isfinite(logits)).sum())
            raise EvalFailure("invalid", "nonfinite_logits", f"{bad} non-finite logits in one evaluation call")
        logp = log_softmax(logits)
        L = self.seq_len
        for i, spec in enumerate(call.rows):
            if call.kind == "score" and spec.src not in self.scored:
                s = spec.src * L
                targets = self.val[s + 1:s + L + 1].astype(np.int64)
                self.nll -= float(logp[i, np.arange(L), targets].sum())
                self.count += L
                self.scored.add(spec.src)
            if spec.src in self.probed:
                self.seen.setdefault(spec.src, []).append((call.kind, spec, logp[i].astype(np.float32)))

    def check(self) -> None:
        """Raise the first failed check: state across calls, then batch mixing, then peeking."""
        found: dict[str, str] = {}
        for src, occ in self.seen.items():
            ref = next((lp for kind, spec, lp in occ if kind == "score"), None)
            if ref is None:
                continue
            again = [lp for kind, _, lp in occ if kind == "repeat"]
            if len(again) > 1 and not float(np.abs(again[1] - again[0]).max()) <= self.tolerance:
                found.setdefault("stateful_eval", f"row {src}: the same batch sent twice to one worker got "
                                 "different answers")
            for kind, spec, lp in occ:
                if kind == "score":
                    continue
                if spec.cut >= 0:
                    diff = float(np.abs(lp[:spec.cut + 1] - ref[:spec.cut + 1]).max())
                    slug = "peeks_future"
                    what = f"row {src}: changing bytes after position {spec.cut} moved earlier log-probs by {diff:.3g}"
                else:
                    diff = float(np.abs(lp - ref).max())
                    slug = "stateful_eval" if kind == "repeat" else "batch_mixing"
                    what = (f"row {src}: the same input gave log-probs differing by {diff:.3g} "
                            + ("in a later identical call" if kind == "repeat" else "next to other rows"))
                if not diff <= self.tolerance:
                    found.setdefault(slug, what)
        for slug in ("stateful_eval", "batch_mixing", "peeks_future"):
            if slug in found:
                raise EvalFailure("cheat", slug, found[slug] + f" (tolerance {self.tolerance:g})")

    def bpb(self) -> float:
        if not self.count:
            raise EvalFailure("invalid", "no_eval", "nothing was scored")
        return self.nll / math.log(2) / self.count
