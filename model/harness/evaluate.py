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
  companions (any difference: `batch_mixing`) and *lookahead* rows: a
  validation row whose bytes after a cut are replaced by a future drawn from
  the source given everything up to the cut (model/sources/futures.py), so
  the replacement looks like real text. A difference from the trainer's
  answer at positions <= cut is `peeks_future`.

The cuts are stratified: every position 0 .. eval_seq_len-2 is the cut of
exactly `probe_cuts` lookahead rows, each a distinct validation row that
never appears unaltered among the probes (so the fresh worker cannot look up
its true future), assigned in the run's secret order. A cut at p catches any
use, at a position <= p, of a byte after p: a model that peeks anywhere, even
at one fixed position or two bytes ahead, faces `probe_cuts` independent
chances per run of reading a future that differs from the real one.
`rows_needed` is the fewest eval_rows that hold those rows and a batch of
exact ones.

Comparisons are on log-probabilities, within `tolerance`, as the probe
answers arrive (the scorer keeps only the trainer's answers that probes will
compare). The parent holds the targets and computes the loss; only the first
occurrence of a row is scored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from model.sources import rng

if TYPE_CHECKING:
    from model.sources.futures import Futures

VOCAB = 256
MIX_BATCHES = 2  # mix calls at least
SLUGS = ("stateful_eval", "batch_mixing", "peeks_future")  # the order check() reports them in


@dataclass(frozen=True)
class RowSpec:
    src: int  # validation row
    cut: int = -1  # >= 0: bytes after position cut are a drawn future (see draw_futures)


@dataclass(frozen=True)
class CallSpec:
    kind: str  # "score" | "repeat" | "mix"
    rows: tuple[RowSpec, ...]


class EvalFailure(Exception):  # noqa: N818 - carries a verdict, not a harness fault
    def __init__(self, status: str, reason: str, detail: str) -> None:
        super().__init__(f"{status}:{reason}: {detail}")
        self.status, self.reason, self.detail = status, reason, detail


def rows_needed(probe_cuts: int, seq_len: int, batch: int) -> int:
    """The fewest eval_rows that hold probe_cuts lookahead rows per cut position and a batch of exact rows."""
    need = probe_cuts * (seq_len - 1) + batch
    return max(3 * batch, -(-need // batch) * batch)


def schedule(nrows: int, batch: int, seq_len: int, key: bytes, *,
             probe_cuts: int = 3) -> tuple[list[CallSpec], list[CallSpec]]:
    """(scored calls, probe calls), each in a secret order.

    The scored calls go to the worker that trained; the probes to a fresh
    worker that loaded the trained model, so that no state (a cache of
    earlier answers, say) can carry from one to the other. A row whose future
    is replaced in a probe never appears unaltered among the probes: the
    fresh worker must not be able to look up that row's true future.
    """
    need = rows_needed(probe_cuts, seq_len, batch)
    if nrows % batch or nrows < need:
        raise ValueError(f"eval_rows {nrows} must be a multiple of eval_batch {batch} and at least {need} "
                         f"(probe_cuts {probe_cuts} at each of {seq_len - 1} positions, plus a batch)")
    g = np.random.Generator(np.random.PCG64(int.from_bytes(rng.subkey(key, "eval"), "little")))
    order = g.permutation(nrows).tolist()
    scored = [CallSpec("score", tuple(RowSpec(r) for r in order[i:i + batch]))
              for i in range(0, nrows, batch)]
    repeat = scored[int(g.integers(0, len(scored)))]
    shown = {r.src for r in repeat.rows}
    outside = [r for r in g.permutation(nrows).tolist() if r not in shown]
    cuts = g.permutation(np.tile(np.arange(seq_len - 1), probe_cuts)).tolist()
    ahead = [RowSpec(src, cut) for src, cut in zip(outside, cuts, strict=False)]
    exact = outside[len(ahead):] + sorted(shown)  # every row that is never perturbed
    per = batch - max(1, batch // 4)  # lookahead rows per mix call; the rest are exact copies
    probes = [CallSpec("repeat", repeat.rows), CallSpec("repeat", repeat.rows)]
    for part in np.array_split(np.arange(len(ahead)), max(MIX_BATCHES, -(-len(ahead) // per))):
        rows = [ahead[i] for i in part.tolist()]
        rows += [RowSpec(exact[i]) for i in g.choice(len(exact), size=batch - len(rows), replace=False).tolist()]
        perm = g.permutation(batch).tolist()
        probes.append(CallSpec("mix", tuple(rows[p] for p in perm)))
    order_p = g.permutation(len(probes)).tolist()
    return scored, [probes[i] for i in order_p]


def draw_futures(probes: list[CallSpec], seq_len: int, source: Futures, key: bytes) -> dict[int, np.ndarray]:
    """The replacement bytes of every lookahead row (keyed by its validation row), drawn from the run's key."""
    specs = sorted((r for c in probes for r in c.rows if r.cut >= 0), key=lambda r: r.src)
    g = np.random.Generator(np.random.PCG64(int.from_bytes(rng.subkey(key, "futures"), "little")))
    drawn = source.follow([r.src * seq_len + r.cut for r in specs], [seq_len - 1 - r.cut for r in specs], g)
    return {r.src: np.frombuffer(b, dtype=np.uint8) for r, b in zip(specs, drawn, strict=True)}


def inputs(val: np.ndarray, call: CallSpec, seq_len: int,
           futures: Mapping[int, np.ndarray] | None = None) -> np.ndarray:
    x = np.empty((len(call.rows), seq_len), dtype=np.uint8)
    for i, spec in enumerate(call.rows):
        x[i] = val[spec.src * seq_len:(spec.src + 1) * seq_len]
        if spec.cut >= 0:
            if futures is None:
                raise ValueError("a lookahead row needs its drawn future")
            x[i, spec.cut + 1:] = futures[spec.src]
    return x


HUGE_LOGIT = 1e37


def normalized(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(logits minus each position's max, float32; log of each position's sum of exp of that, float64).

    Their difference is the log-softmax. The exponentials run in float32 and are summed in
    float64: a score differs from an all-float64 one by about 1e-10 relative, at half the cost.
    Logits near float32's range (whose differences would overflow) are taken in float64.
    """
    if float(np.abs(logits).max(initial=0.0)) > HUGE_LOGIT:
        logits = logits.astype(np.float64)
    z = logits - logits.max(axis=-1, keepdims=True)
    return z, np.log(np.exp(z).sum(axis=-1, keepdims=True, dtype=np.float64))


@dataclass
class Scorer:
    """Consumes the logits of each call in schedule order (scored calls first) and checks probes as they come.

    It keeps, of the trainer's answers, only what probes will compare: positions
    <= cut of a lookahead row (dropped once compared), whole rows of exact copies.
    """

    val: np.ndarray
    seq_len: int
    tolerance: float
    keep: dict[int, int]  # probed row -> leading positions of the trainer's answer the probes compare
    nll: float = 0.0
    count: int = 0
    scored: set[int] = field(default_factory=set)
    refs: dict[int, np.ndarray] = field(default_factory=dict)
    uses: dict[int, int] = field(default_factory=dict)  # probe occurrences of each row not yet compared
    repeated: dict[int, np.ndarray] = field(default_factory=dict)  # first repeat answer of each row
    found: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_probes(cls, val: np.ndarray, seq_len: int, tolerance: float, probes: list[CallSpec]) -> Scorer:
        keep: dict[int, int] = {}
        uses: dict[int, int] = {}
        for c in probes:
            for r in c.rows:
                keep[r.src] = max(keep.get(r.src, 0), seq_len if r.cut < 0 else r.cut + 1)
                uses[r.src] = uses.get(r.src, 0) + 1
        return cls(val, seq_len, tolerance, keep, uses=uses)

    def add(self, call: CallSpec, logits: np.ndarray) -> None:
        if not np.isfinite(logits).all():
            bad = int((~np.isfinite(logits)).sum())
            raise EvalFailure("invalid", "nonfinite_logits", f"{bad} non-finite logits in one evaluation call")
        z, lse = normalized(logits)
        L = self.seq_len
        if call.kind != "score":
            logp = z - lse.astype(np.float32)
            for i, spec in enumerate(call.rows):
                self._compare(call.kind, spec, logp[i])
            return
        for i, spec in enumerate(call.rows):
            if spec.src not in self.scored:
                s = spec.src * L
                targets = self.val[s + 1:s + L + 1].astype(np.int64)
                self.nll -= float((z[i, np.arange(L), targets].astype(np.float64) - lse[i, :, 0]).sum())
                self.count += L
                self.scored.add(spec.src)
                if spec.src in self.keep:
                    k = self.keep[spec.src]
                    self.refs[spec.src] = z[i, :k] - lse[i, :k].astype(np.float32)

    def _compare(self, kind: str, spec: RowSpec, logp: np.ndarray) -> None:
        src = spec.src
        ref = self.refs.get(src)
        if ref is None:
            raise RuntimeError(f"probe of row {src} before the trainer's answer (schedule order broken)")
        lp = logp[:len(ref)]  # float32, or float64 for logits near float32's limit (normalized)
        if kind == "repeat":
            first = self.repeated.setdefault(src, lp)
            if first is not lp and not float(np.abs(lp - first).max()) <= self.tolerance:
                self._found("stateful_eval", f"row {src}: the same batch sent twice to one worker got "
                            "different answers")
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
            self._found(slug, what)
        self.uses[src] -= 1
        if not self.uses[src]:
            del self.refs[src]
            self.repeated.pop(src, None)

    def _found(self, slug: str, what: str) -> None:
        self.found.setdefault(slug, what)

    def check(self) -> None:
        """Raise the first failed check: state across calls, then batch mixing, then peeking."""
        for slug in SLUGS:
            if slug in self.found:
                raise EvalFailure("cheat", slug, self.found[slug] + f" (tolerance {self.tolerance:g})")

    def bpb(self) -> float:
        if not self.count:
            raise EvalFailure("invalid", "no_eval", "nothing was scored")
        return self.nll / math.log(2) / self.count
