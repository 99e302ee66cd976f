"""HarnessConfig: everything the harness needs to run one check, parsed from an arena."""

from __future__ import annotations

from dataclasses import dataclass, field

HARNESS_VERSION = "ratchet-harness-2"
BUDGET_KINDS = ("tokens", "seconds", "compute")


@dataclass(frozen=True)
class HarnessConfig:
    """What decides a score: the data source, the budget, the evaluation shape and the checks.

    `source` names the data source ("tinylang" draws a fresh language per seed;
    "text" reads a pinned file); `source_settings` holds that source's own
    parameters as strings.
    """

    source: str
    budget_kind: str  # "tokens" | "seconds" | "compute" (see verify/compute.py)
    budget_value: int
    wall_cap_s: float
    device: str = "cpu"
    eval_seq_len: int = 128  # context of every evaluation row
    eval_batch: int = 32  # rows per evaluation call
    eval_rows: int = 512  # scored rows (a multiple of eval_batch)
    max_batch_tokens: int = 1 << 20  # largest training batch (B * T) the feed serves
    max_seq_len: int = 8192
    max_model_bytes: int = 1 << 30  # the trained model, pickled, passed to the fresh evaluator
    startup_timeout_s: float = 120.0  # interpreter and torch import (a local property, not the arena's)
    probe_cuts: int = 3  # lookahead probes per position 0..eval_seq_len-2 (see evaluate.schedule)
    tolerance: float = 2e-4  # max |log-prob difference| allowed between equivalent evaluations
    source_settings: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    data_path: str = ""  # for file-backed sources
    data_sha256: str = ""  # hex
    harness: str = HARNESS_VERSION

    def setting(self, key: str, default: str) -> str:
        return dict(self.source_settings).get(key, default)

    @property
    def val_bytes(self) -> int:
        """Bytes of validation text the scored rows cover (each row predicts eval_seq_len bytes)."""
        return self.eval_rows * self.eval_seq_len + 1
